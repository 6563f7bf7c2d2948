/**
 * The run lifecycle under the conditions that used to hang or corrupt a run, with a real
 * coordinator (gRPC/TLS on loopback, embedded Redis, BullMQ) and real devices:
 * - round r+1's job delivered while round r's job is still inside its commit is run, not dropped;
 * - a live run whose job was deleted is re-enqueued by the watchdog;
 * - an error at the checkpoint write, at the ledger append or in a Redis command ends the attempt
 *   cleanly (recorded in Redis and the ledger, devices told), is retried, and a persistent one
 *   fails the run with the error as its reason;
 * - cancel invites no one afterwards, stops a round in progress at its next phase boundary, and
 *   nothing about the run follows its run-end entry in the ledger;
 * - run states are a closed set: terminal states are final.
 */
import { afterEach, describe, expect, it } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Queue } from "bullmq";
import type { RoundConfig } from "../shared/run/index.ts";
import { LedgerWriter, verifyLedger, type LedgerEntry } from "../shared/ledger/index.ts";
import { ROUNDS_QUEUE } from "../coordinator/runs/run-scheduler.ts";
import { resetFaults } from "../coordinator/runs/failpoint.ts";
import { LedgerClosedError } from "../coordinator/ledger/privacy-ledger.ts";
import { RUN_TRANSITIONS, RunStore, type RunState, type RunTransition } from "../coordinator/runs/run-store.ts";
import { TestCluster, tinyRunSpec } from "./support/cluster.ts";
import { sleep, waitFor } from "./support/wait.ts";
import { ledgerText as storeLedgerText } from "./support/ledger-text.ts";

const constantDelta = (value: number) => async (cfg: RoundConfig) => ({ delta: new Float32Array(cfg.parameterCount).fill(value), loss: 1, examples: 1 });

function ledger(c: TestCluster): LedgerEntry[] {
  return storeLedgerText(c.stateDir).trim().split("\n").map((l) => JSON.parse(l) as LedgerEntry);
}

/** The run's ledger entries in order, e.g. `round 0.1 completed`, `attestation 0`, `run-end cancelled`. */
function story(c: TestCluster, runId: string): string[] {
  return ledger(c)
    .filter((e) => (e.body as { runId?: string }).runId === runId)
    .map((e) => {
      const b = e.body as { round?: number; attempt?: number; status?: string; state?: string };
      if (e.type === "round") return `round ${b.round}.${b.attempt} ${b.status}`;
      if (e.type === "attestation") return `attestation ${b.round}`;
      if (e.type === "run-end") return `run-end ${b.state}`;
      return e.type;
    });
}

const ledgerText = (c: TestCluster): string => storeLedgerText(c.stateDir);
const attested = (round: number, n: number): string[] => Array.from({ length: n }, () => `attestation ${round}`);

describe("run lifecycle", () => {
  let cluster: TestCluster | undefined;
  afterEach(async () => {
    delete process.env.TACIT_FAULTS;
    resetFaults();
    await cluster?.stop();
    cluster = undefined;
  });

  async function withDevices(n: number, o: { watchdogMs?: number } = {}): Promise<TestCluster> {
    cluster = await TestCluster.start(o);
    for (let i = 0; i < n; i++) await cluster.addDevice(`dev-${i}`, { train: constantDelta((i + 1) / 1000) });
    await cluster.waitConnected(n);
    return cluster;
  }

  it("runs round r+1 when its job arrives while round r's job is still finishing its commit", async () => {
    // The watchdog is pushed out of reach: only the per-attempt fencing can save this run.
    const c = await withDevices(3, { watchdogMs: 3_600_000 });
    const queue = new Queue(ROUNDS_QUEUE, { connection: c.coordinator.redis.duplicate() });
    const sched = c.coordinator.scheduler;
    const publish = sched.commit.bind(sched);
    let overlapped = 0;
    // Hold round r's job inside commit until the worker has picked up round r+1's job.
    sched.commit = async (runId: string, round: number): Promise<void> => {
      await publish(runId, round);
      const next = await queue.getJob(`${runId}-r${round + 1}-a0`);
      if (!next) return;
      const end = Date.now() + 3000;
      while (Date.now() < end && (await next.getState()) !== "active") await sleep(10);
      if ((await next.getState()) === "active") overlapped++;
      await sleep(200);
    };
    try {
      const runId = await c.launch(tinyRunSpec({ rounds: 3 }));
      const st = await c.waitRun(runId, 40_000);
      expect(st.state).toBe("completed");
      expect(overlapped).toBeGreaterThanOrEqual(1);
      expect(story(c, runId)).toEqual(["run-launch", "round 0.0 completed", ...attested(0, 3), "round 1.0 completed", ...attested(1, 3), "round 2.0 completed", ...attested(2, 3), "run-end completed"]);
    } finally {
      await queue.close();
    }
  });

  /**
   * What both watchdog tests start from: one device connected where the one-round run needs two,
   * so attempt 0 aborts and attempt 1 waits as a delayed job — which is then deleted, as if the
   * coordinator holding it had died. `selectionMs` is how long each attempt waits for devices.
   */
  async function runWithDeletedRetry(selectionMs: number, then: (c: TestCluster, runId: string, queue: Queue) => Promise<void>): Promise<void> {
    const c = await withDevices(1, { watchdogMs: 400 });
    const queue = new Queue(ROUNDS_QUEUE, { connection: c.coordinator.redis.duplicate() });
    try {
      const runId = await c.launch(tinyRunSpec({ rounds: 1, cohortSize: 2, minSurvivors: 2, populationSize: 2, deadlines: { ...tinyRunSpec().deadlines, selectionMs } }));
      const retry = await waitFor("the delayed retry job", async () => {
        const j = await queue.getJob(`${runId}-r0-a1`);
        return j && (await j.getState()) === "delayed" ? j : undefined;
      });
      await retry.remove();
      await then(c, runId, queue);
    } finally {
      await queue.close();
    }
  }

  it("the watchdog re-enqueues a live run whose job was deleted", async () => {
    await runWithDeletedRetry(4000, async (c, runId, queue) => {
      expect(await queue.getJob(`${runId}-r0-a1`)).toBeUndefined();
      await c.addDevice("dev-1", { train: constantDelta(0.002) });
      await c.waitConnected(2);
      const st = await c.waitRun(runId, 20_000);
      expect(st.state).toBe("completed");
      expect(story(c, runId)).toEqual(["run-launch", "round 0.0 aborted", "round 0.1 completed", ...attested(0, 2), "run-end completed"]);
    });
  });

  it("an attempt lost with its coordinator counts towards the round's limit", async () => {
    // Every attempt finds one device where two are needed and aborts. Attempt 1 "started" on a
    // coordinator that then died: its job is gone, its in-flight mark stays.
    await runWithDeletedRetry(2000, async (c, runId) => {
      await c.coordinator.redis.set(`tacit:run:${runId}:inflight`, "0:1");
      const st = await c.waitRun(runId, 30_000);
      expect(st.state).toBe("failed");
      expect(st.error).toMatch(/round 0 failed 3 attempts/);
      expect(story(c, runId)).toEqual(["run-launch", "round 0.0 aborted", "round 0.1 aborted", "round 0.2 aborted", "run-end failed"]);
      expect(((await c.coordinator.runs.rounds(runId)).find((r) => r.attempt === 1))!.detail).toMatch(/lost with its coordinator/);
    });
  });

  it("Redis that lost a run's last writes (a failover) takes the ledger's end instead of republishing after it", async () => {
    const c = await withDevices(3, { watchdogMs: 400 });
    const runId = await c.launch(tinyRunSpec({ rounds: 2 }));
    expect((await c.waitRun(runId)).state).toBe("completed");
    const before = ledgerText(c);
    // What a promoted replica may hold: the run still running, its last round not yet recorded.
    await c.coordinator.redis.hset(`tacit:run:${runId}`, { state: "running", roundsDone: "1", currentPhase: "round 1" });
    await c.coordinator.redis.sadd("tacit:runs:live", runId);
    const st = await waitFor("the run back to completed", async () => {
      const r = await c.coordinator.runs.get(runId);
      return r?.state === "completed" ? r : undefined;
    }, 20_000);
    expect(st.roundsDone).toBe(2);
    expect(ledgerText(c)).toBe(before);
    expect(verifyLedger(before).violations).toEqual([]);
  });

  it("a device that is no longer enrolled is not invited, and the SecAgg sizes count only the devices invited", async () => {
    const c = await withDevices(4);
    const gone = c.devices[3]!;
    // Deregistered while its stream is still in the hub (the window before the stream closes).
    expect(await c.coordinator.registry.remove(gone.deviceId)).toBe(true);
    const runId = await c.launch(tinyRunSpec({ rounds: 1, cohortSize: 4, populationSize: 4, corruptTolerance: 0 }));
    const st = await c.waitRun(runId);
    expect(st.state).toBe("completed");
    const entry = ledger(c).find((e) => e.type === "round" && (e.body as { runId: string }).runId === runId)!;
    const body = entry.body as { cohort: string[]; survivors: string[]; secagg: { threshold: number; degree: number } };
    expect(body.cohort).toHaveLength(3);
    expect(body.cohort).not.toContain(gone.deviceId);
    expect(body.secagg.degree).toBe(2); // the full graph over the 3 invited devices
    expect(gone.events).toEqual([]);
  });

  it("a failed checkpoint write aborts the attempt cleanly: recorded, devices told, round retried", async () => {
    process.env.TACIT_FAULTS = "checkpoint-write:0:1";
    const c = await withDevices(3);
    const runId = await c.launch(tinyRunSpec({ rounds: 2 }));
    const st = await c.waitRun(runId);
    expect(st.state).toBe("completed");
    expect(story(c, runId)).toEqual(["run-launch", "round 0.0 aborted", "round 0.1 completed", ...attested(0, 3), "round 1.0 completed", ...attested(1, 3), "run-end completed"]);
    const first = (await c.coordinator.runs.rounds(runId)).find((r) => r.round === 0 && r.attempt === 0)!;
    expect(first.status).toBe("aborted");
    expect(first.detail).toMatch(/error in phase .*ENOSPC/);
    for (const d of c.devices) expect(d.events).toContainEqual(expect.objectContaining({ type: "outcome", round: 0, status: "aborted" }));
    expect(verifyLedger(ledgerText(c)).violations).toEqual([]);
  });

  it("an error before anyone is invited (reading the checkpoint) ends the attempt on the record and the round is retried", async () => {
    process.env.TACIT_FAULTS = "checkpoint-read:1:1";
    const c = await withDevices(3);
    const runId = await c.launch(tinyRunSpec({ rounds: 2 }));
    const st = await c.waitRun(runId);
    expect(st.state).toBe("completed");
    expect(story(c, runId)).toEqual(["run-launch", "round 0.0 completed", ...attested(0, 3), "round 1.0 aborted", "round 1.1 completed", ...attested(1, 3), "run-end completed"]);
    const failed = (await c.coordinator.runs.rounds(runId)).find((r) => r.round === 1 && r.attempt === 0)!;
    expect(failed.detail).toMatch(/error before the round started: .*ENOSPC/);
    expect(verifyLedger(ledgerText(c)).violations).toEqual([]);
  });

  it("a failed ledger append after the commit point publishes the committed round again, never re-runs it", async () => {
    process.env.TACIT_FAULTS = "ledger-append:1:1";
    const c = await withDevices(3);
    const runId = await c.launch(tinyRunSpec({ rounds: 2 }));
    const st = await c.waitRun(runId);
    expect(st.state).toBe("completed");
    expect(story(c, runId)).toEqual(["run-launch", "round 0.0 completed", ...attested(0, 3), "round 1.0 completed", ...attested(1, 3), "run-end completed"]);
    expect(verifyLedger(ledgerText(c)).violations).toEqual([]);
  });

  it("a Redis command that keeps failing fails the run after the last attempt, with the error as its reason", async () => {
    const c = await withDevices(3);
    const runId = await c.launch(tinyRunSpec({ rounds: 2 }));
    // Round 1's state hash is made a string: every HSET on it fails with WRONGTYPE.
    await c.coordinator.redis.set(`tacit:run:${runId}:round:1`, "not a hash");
    const st = await c.waitRun(runId, 30_000);
    expect(st.state).toBe("failed");
    expect(st.error).toMatch(/round 1 failed 3 attempts.*WRONGTYPE/);
    expect(story(c, runId)).toEqual(["run-launch", "round 0.0 completed", ...attested(0, 3), "round 1.0 aborted", "round 1.1 aborted", "round 1.2 aborted", "run-end failed"]);
    const end = ledger(c).find((e) => e.type === "run-end")!;
    expect((end.body as { detail: string }).detail).toMatch(/WRONGTYPE/);
    expect(verifyLedger(ledgerText(c)).violations).toEqual([]);
  });

  it("a cancelled run invites no one, even devices that connect after the cancel", async () => {
    cluster = await TestCluster.start();
    const c = cluster;
    const runId = await c.launch(tinyRunSpec({ rounds: 1, deadlines: { ...tinyRunSpec().deadlines, selectionMs: 60_000 } }));
    await waitFor("selection", async () => (await c.coordinator.runs.get(runId))?.currentPhase.includes("selection") || undefined);
    await c.mlTeam.unary("RunControl", "CancelRun", { runId });
    expect((await c.coordinator.runs.get(runId))?.state).toBe("cancelled");
    for (let i = 0; i < 3; i++) await c.addDevice(`late-${i}`, { train: constantDelta(0.001) });
    await c.waitConnected(3);
    await sleep(1500);
    for (const d of c.devices) expect(d.events).toEqual([]);
    expect(story(c, runId)).toEqual(["run-launch", "round 0.0 cancelled", "run-end cancelled"]);
    await expect(c.mlTeam.unary("RunControl", "CancelRun", { runId })).rejects.toThrow(/already cancelled/);
    expect(verifyLedger(ledgerText(c)).violations).toEqual([]);
  });

  it("cancel stops a round in progress at its next phase boundary, recorded before the run-end", async () => {
    cluster = await TestCluster.start();
    const c = cluster;
    let release!: () => void;
    const training = new Promise<void>((r) => (release = r));
    for (let i = 0; i < 3; i++) {
      await c.addDevice(`dev-${i}`, {
        train: async (cfg) => {
          await training; // the devices are still training when the cancel arrives
          return constantDelta(0.001)(cfg);
        },
      });
    }
    await c.waitConnected(3);
    const runId = await c.launch(tinyRunSpec({ rounds: 2 }));
    await waitFor("masked-input", async () => (await c.coordinator.runs.get(runId))?.currentPhase.includes("masked-input") || undefined);
    const t0 = Date.now();
    await c.mlTeam.unary("RunControl", "CancelRun", { runId });
    expect(Date.now() - t0).toBeLessThan(10_000); // not the 30 s masked-input deadline
    release();
    await sleep(1000);
    expect(story(c, runId)).toEqual(["run-launch", "round 0.0 cancelled", "run-end cancelled"]);
    for (const d of c.devices) expect(d.events).toContainEqual(expect.objectContaining({ type: "outcome", round: 0, status: "cancelled" }));
    const run = (await c.coordinator.runs.get(runId))!;
    expect(run.state).toBe("cancelled");
    expect(run.roundsDone).toBe(0);
    // Nothing more about this run may enter the ledger, and a verifier flags it if it does.
    await expect(c.coordinator.ledger.round({ run, record: (await c.coordinator.runs.rounds(runId))[0]!, cohort: [], survivors: [], declines: {}, event: undefined, attestations: [] })).rejects.toThrow(LedgerClosedError);
    const forged = join(c.stateDir, "forged-ledger.jsonl");
    writeFileSync(forged, storeLedgerText(c.stateDir));
    const w = LedgerWriter.open(forged, c.coordinator.signingKey.privateKey);
    w.append("round", { runId, round: 0, attempt: 1, status: "aborted", modelHashBefore: run.modelHash, cohort: [], survivors: [] });
    const findings = verifyLedger(readFileSync(forged, "utf8"));
    expect(findings.violations.map((v) => v.code)).toEqual(["AFTER_RUN_END"]);
  });

  it("run states are a closed set: terminal states are final and a late writer cannot resurrect a run", async () => {
    cluster = await TestCluster.start();
    // The store itself (the coordinator's reads also check each record against the ledger).
    const runs = new RunStore(cluster.coordinator.redis);
    const states: RunState[] = ["queued", "running", "completed", "failed", "cancelled"];
    for (const from of states) {
      for (const t of Object.keys(RUN_TRANSITIONS) as RunTransition[]) {
        const runId = `run-${from}-${t}`;
        await runs.create({ runId, spec: tinyRunSpec(), state: from, roundsDone: 0, modelHash: "h", currentPhase: "", error: "", createdAt: Date.now(), requester: "ml-team-1" });
        const allowed = (RUN_TRANSITIONS[t].from as readonly RunState[]).includes(from);
        expect(await runs.tryTransition(runId, t), `${from} --${t}-->`).toBe(allowed);
        expect((await runs.get(runId))?.state).toBe(allowed ? RUN_TRANSITIONS[t].to : from);
      }
    }
    for (const terminal of ["completed", "failed", "cancelled"] as const) {
      for (const t of Object.keys(RUN_TRANSITIONS) as RunTransition[]) expect(RUN_TRANSITIONS[t].from as readonly string[]).not.toContain(terminal);
    }
    await expect(runs.transition("run-cancelled-start", "start")).rejects.toThrow(/is cancelled: cannot start/);
    expect(await runs.tryTransition("no-such-run", "cancel")).toBe(false);
    // The watchdog's index holds exactly the runs that are still live, whatever path they took.
    const live: string[] = [];
    for (const runId of await runs.list()) if (!["completed", "failed", "cancelled"].includes((await runs.get(runId))!.state)) live.push(runId);
    expect(live.length).toBeGreaterThan(0);
    expect((await runs.listLive()).sort()).toEqual(live.sort());
    // A lost index is rebuilt from the states at start-up.
    await cluster.coordinator.redis.del("tacit:runs:live");
    for (const runId of await runs.list()) await runs.indexLiveness((await runs.get(runId))!);
    expect((await runs.listLive()).sort()).toEqual(live.sort());
  });

  it("a ledger that keeps failing while an aborted attempt is recorded fails the run after the last try instead of retrying forever", async () => {
    // Round 1's checkpoint write fails (the attempt aborts) and so does every ledger append of round 1.
    process.env.TACIT_FAULTS = "checkpoint-write:1:1,ledger-append:1:1000";
    const c = await withDevices(3, { watchdogMs: 400 });
    const runId = await c.launch(tinyRunSpec({ rounds: 2 }));
    const st = await c.waitRun(runId, 40_000);
    expect(st.state).toBe("failed");
    expect(st.error).toMatch(/round 1: the coordinator could not record its attempt 3 times; last: .*ENOSPC/);
    expect(story(c, runId)).toEqual(["run-launch", "round 0.0 completed", ...attested(0, 3), "run-end failed"]);
    expect(await new RunStore(c.coordinator.redis).listLive()).not.toContain(runId);
  });

  it("a committed round whose publication keeps failing is retried, never failed, and says so in its phase", async () => {
    process.env.TACIT_FAULTS = "ledger-append:1:8";
    const c = await withDevices(3, { watchdogMs: 400 });
    const runId = await c.launch(tinyRunSpec({ rounds: 2 }));
    const phase = await waitFor("the stuck publication in the run's phase", async () => {
      const p = (await c.coordinator.runStatus(runId)).currentPhase;
      return /round 1 committed; publishing it failed \d+ times/.test(p) ? p : undefined;
    }, 40_000);
    expect(phase).toMatch(/ENOSPC/);
    const st = await c.waitRun(runId, 40_000);
    expect(st.state).toBe("completed");
    expect(story(c, runId)).toEqual(["run-launch", "round 0.0 completed", ...attested(0, 3), "round 1.0 completed", ...attested(1, 3), "run-end completed"]);
    expect(verifyLedger(ledgerText(c)).violations).toEqual([]);
  });
});
