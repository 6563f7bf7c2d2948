/**
 * Active/standby coordinators with real processes (issue #18, design note §5 (e)): two
 * `tacit coordinator start` processes on one redis-server and one shared store — a directory,
 * and with TACIT_FAILOVER_STORES=directory,s3 also an S3 store (moto's S3 server on loopback) —
 * and a TCP proxy standing in for the load balancer (it sends devices to the holder of the
 * active lease). Five devices, one six-round run, and in it:
 *   - the active coordinator (A) is SIGKILLed in ShareKeys: the standby (B) takes over; A is
 *     restarted as standby (its supervisor's job);
 *   - B is SIGKILLed in MaskedInput of a later round: A takes over; B is restarted as standby;
 *   - A pauses itself (SIGSTOP) between that round's checkpoint and its put-if-absent decision,
 *     past its lease: B takes over, declares A's attempt lost and re-runs the round; once B has
 *     committed it, A is SIGCONTed — the zombie's decision loses, it stands down and exits for
 *     lack of the lease.
 * Then: the run completes; the ledger (the store's segments) verifies; each round is committed
 * once (one commit record, one completed round entry, no duplicate entry); budgets match.
 */
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Redis } from "ioredis";
import { privateKeyFromPem, signBytes } from "../shared/crypto/index.ts";
import { verifyLedger, type LedgerEntry } from "../shared/ledger/index.ts";
import { CoordinatorClient, type RunStatus } from "../client/transport/coordinator-client.ts";
import type { BudgetEntry } from "../client/participant/budget-record.ts";
import { tinyRunSpec } from "./support/cluster.ts";
import { RedisProcess } from "./support/redis-process.ts";
import { freePort } from "../coordinator/redis/embedded-redis.ts";
import { CoordinatorProcess, initCoordinatorStateDir } from "./support/coordinator-process.ts";
import { startFleetDevice, type FleetDevice } from "./support/fleet-device.ts";
import { TcpProxy } from "./support/tcp-proxy.ts";
import { openDurableStore } from "../coordinator/store/open-store.ts";
import { readLedgerText } from "../coordinator/ledger/segment-writer.ts";
import { MotoServer } from "./support/moto-server.ts";
import { ACTIVE_KEY } from "../coordinator/runs/active-lease.ts";

const PHASES = ["selection", "advertise", "share", "masked-input", "unmask"];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("active/standby coordinators on a shared store", () => {
  const tmp = mkdtempSync(join(tmpdir(), "tacit-failover-"));
  const cleanup: (() => Promise<unknown> | unknown)[] = [];
  // Each scenario's processes end with it, before the next one starts.
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await Promise.resolve(f()).catch(() => undefined);
  });
  afterAll(() => {
    if (!process.env.TACIT_KEEP_FAILOVER_DIR) rmSync(tmp, { recursive: true, force: true });
  });

  // The same scenario on each DurableStore: a shared directory, and a real S3-compatible server
  // (moto's, on loopback). The S3 run is opt-in (TACIT_FAILOVER_STORES=directory,s3) for now: it
  // passed once and once failed its own precondition on a heavily loaded machine (the round B was
  // killed in had been committed by B's attempt 0, so no zombie attempt followed); the S3 store's
  // stale-writer refusal is covered by test/s3-coordinator.test.ts and test/durable-store.test.ts.
  const kinds = (process.env.TACIT_FAILOVER_STORES ?? "directory").split(",") as ("directory" | "s3")[];
  it.each(kinds)("on a %s store: a killed or paused active coordinator is replaced by the standby; each round commits once and the ledger verifies", async (kind) => {
    const t0 = Date.now();
    const dir = mkdtempSync(join(tmp, `${kind}-`));
    const redis = await RedisProcess.start(join(dir, "redis"));
    cleanup.push(() => redis.stop());
    let storeEnv: Record<string, string> = {};
    let storeUrl = pathToFileURL(join(dir, "store")).href;
    if (kind === "s3") {
      const moto = await MotoServer.start();
      cleanup.push(() => moto.stop());
      storeUrl = `s3://${await moto.bucket()}/failover`;
      storeEnv = moto.env;
    }
    const env = { ...storeEnv, TACIT_STORE_URL: storeUrl, TACIT_LEASE_TTL_MS: "3000" };
    // Both coordinators hold the same keys (one coordinator identity; the ledger has one signer).
    const stateA = join(dir, "state-a");
    initCoordinatorStateDir(stateA);
    const stateB = join(dir, "state-b");
    cpSync(stateA, stateB, { recursive: true });
    const A = new CoordinatorProcess({ stateDir: stateA, port: await freePort(), redisUrl: redis.url, logFile: join(dir, "a.log"), env });
    const B = new CoordinatorProcess({ stateDir: stateB, port: await freePort(), redisUrl: redis.url, logFile: join(dir, "b.log"), env });
    cleanup.push(() => A.kill("SIGKILL"), () => B.kill("SIGKILL"));
    const reader = new Redis(redis.url, { maxRetriesPerRequest: null });
    reader.on("error", () => undefined);
    cleanup.push(() => reader.disconnect());
    const holder = async (): Promise<CoordinatorProcess | undefined> => {
      const id = await reader.get(ACTIVE_KEY);
      const pid = id ? Number(id.split(":")[1]) : NaN;
      return [A, B].find((c) => c.child?.pid === pid && c.child.exitCode === null && c.child.signalCode === null);
    };
    const proxy = await TcpProxy.start(async () => (await holder())?.o.port);
    cleanup.push(() => proxy.close());
    const address = `localhost:${proxy.port}`;

    await A.start();
    await B.start(undefined, "standby");
    expect(await holder()).toBe(A);

    const caFile = join(stateA, "tls", "ca.pem");
    const adminKeyFile = join(stateA, "keys", "admin-1.key");
    const devices: FleetDevice[] = [];
    for (let i = 0; i < 5; i++) {
      devices.push(await startFleetDevice({ address, caFile, adminKeyFile, name: `fo-${i}`, budgetFile: join(dir, `budget-${i}.json`), trainDelayMs: 300, rpcDelayMs: 150, value: (i + 1) / 1000 }));
    }
    cleanup.push(() => devices.forEach((d) => d.stop()));

    const mlKey = privateKeyFromPem(readFileSync(join(stateA, "keys", "ml-team-1.key"), "utf8"));
    const ml = new CoordinatorClient({ address, caFile, credentials: { keyId: "ml-team-1", privateKey: mlKey.privateKey } });
    cleanup.push(() => ml.close());
    const spec = tinyRunSpec({
      name: "failover",
      rounds: 6,
      cohortSize: 5,
      minSurvivors: 3,
      populationSize: 5,
      clip: 1,
      noiseMultiplier: 0.5,
      // Selection waits until all five devices are back on the new active coordinator.
      deadlines: { ...tinyRunSpec().deadlines, selectionMs: 30_000, advertiseMs: 10_000, shareMs: 10_000, maskedInputMs: 20_000, unmaskMs: 10_000 },
    });
    const specJson = JSON.stringify(spec);
    const { runId } = await ml.unary<object, RunStatus>("RunControl", "LaunchRun", { specJson, requestSignature: Buffer.from(signBytes(mlKey.privateKey, specJson)) });
    const runKey = `tacit:run:${runId}`;

    /**
     * Resolves when the run is at `phase` or a later phase of round R or of a later round (polled
     * from Redis): a restart under load can take longer than a round, so round R may be over.
     */
    const reach = async (round: number, phase: string, timeoutMs = 90_000): Promise<string> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const cur = (await reader.hget(runKey, "currentPhase")) ?? "";
        const m = /^round (\d+): (.+)$/.exec(cur);
        if (m && Number(m[1]) >= round && PHASES.indexOf(m[2]!) >= PHASES.indexOf(phase)) return cur;
        if (Date.now() > deadline) throw new Error(`round ${round} did not reach ${phase} within ${timeoutMs} ms (at "${cur}")`);
        await sleep(25);
      }
    };
    const becomesActive = async (c: CoordinatorProcess, timeoutMs = 60_000): Promise<number> => {
      const start = Date.now();
      while ((await holder()) !== c) {
        if (Date.now() - start > timeoutMs) throw new Error(`${c.o.stateDir} did not take the lease`);
        await sleep(50);
      }
      return Date.now() - start;
    };
    const store = openDurableStore(storeUrl, env);
    const events: string[] = [];

    // SIGKILL A in ShareKeys; B takes over; A comes back as standby, armed to pause before its
    // next commit. (Rounds are named as reached: restarts under load take a varying number of rounds.)
    let at = await reach(0, "share");
    const r0 = Number(/^round (\d+)/.exec(at)![1]);
    expect(at).toMatch(new RegExp(`^round ${r0}: (share|masked-input)$`));
    await A.kill("SIGKILL");
    events.push(`A SIGKILL at "${at}"; B active after ${await becomesActive(B)} ms`);
    // A's restart is not awaited here: on a loaded machine starting a process can take longer
    // than B needs for the rest of the run (once all six rounds were done before A was back, and
    // round r0 + 1 was never seen in MaskedInput). A only has to be a standby before B is killed.
    const aBack = A.start("before-commit:*", "standby");
    // SIGKILL B in MaskedInput; A takes over; B comes back as standby.
    at = await reach(r0 + 1, "masked-input");
    const r1 = Number(/^round (\d+)/.exec(at)![1]);
    // Polled every 25 ms: on a loaded machine the short MaskedInput phase may already have
    // given way to Unmasking. Either is a kill after the masked inputs started flowing.
    expect(at).toMatch(new RegExp(`^round ${r1}: (masked-input|unmask)$`));
    await B.kill("SIGKILL");
    await aBack;
    events.push(`B SIGKILL at "${at}"; A active after ${await becomesActive(A)} ms`);
    await B.start(undefined, "standby");
    // A re-runs round r1 and stops itself right before deciding its attempt; B takes over and re-runs it.
    const paused = Date.now();
    await becomesActive(B, 180_000);
    events.push(`A paused before committing round ${r1}; B holds the lease`);
    const commitOf = async (): Promise<{ attempt: number } | undefined> => {
      const b = await store.get(`commits/${runId}/${String(r1).padStart(5, "0")}.json`);
      return b ? (JSON.parse(b.toString()) as { attempt: number }) : undefined;
    };
    while (!(await commitOf())) {
      if (Date.now() - paused > 240_000) throw new Error(`B did not commit round ${r1}`);
      await sleep(200);
    }
    const committedAttempt = (await commitOf())!.attempt;
    expect(committedAttempt).toBeGreaterThanOrEqual(2); // B's lost attempt, A's paused one, then B's
    const zombieExit = A.exited();
    A.signal("SIGCONT");
    const exitCode = await zombieExit;
    events.push(`B committed round ${r1} with attempt ${committedAttempt}; A SIGCONTed, exited ${exitCode}`);
    expect(exitCode).toBe("75");
    const aLog = readFileSync(join(dir, "a.log"), "utf8");
    expect(aLog).toMatch(/lost the active lease; exiting/);
    if (kind === "directory") {
      // On waking, the zombie's next steps are its put-if-absent decisions (synchronous file
      // operations, before any timer can run its lease check): they lose to B's, and it stands down.
      expect(aLog).toMatch(/round attempt was decided by another coordinator; standing down/);
      expect(aLog.indexOf("standing down")).toBeLessThan(aLog.indexOf("lost the active lease"));
      events.push("zombie lost its put-if-absent decision and stood down, then exited on its lease check");
    } else {
      // On S3 its decision is an HTTP request: its lease check may run first and end it before
      // the request is answered. Either way nothing of its attempt is committed (below).
      events.push(`zombie ${/standing down/.test(aLog) ? "lost its conditional PUT and stood down" : "exited on its lease check before its conditional PUT was answered"}`);
    }
    const zombieAttempt = JSON.parse((await store.get(`attempts/${runId}/${String(r1).padStart(5, "0")}/${String(committedAttempt - 1).padStart(5, "0")}.json`))!.toString()) as { status: string };
    expect(zombieAttempt.status).toBe("lost");

    let st: RunStatus;
    for (;;) {
      st = await ml.unary<object, RunStatus>("RunControl", "GetRun", { runId }).catch(() => undefined as unknown as RunStatus);
      if (st && (st.state === "completed" || st.state === "failed")) break;
      if (Date.now() - t0 > 500_000) throw new Error(`run still ${st?.state} (${st?.currentPhase})`);
      await sleep(200);
    }
    expect(st.state, st.error).toBe("completed");
    expect(st.roundsDone).toBe(spec.rounds);

    // The store: one commit record per round.
    expect(await store.list(`commits/${runId}/`)).toHaveLength(spec.rounds);

    // The ledger: verifies; each round completed once; no round entry twice.
    const text = await readLedgerText(store);
    const findings = verifyLedger(text);
    expect(findings.violations).toEqual([]);
    const entries = text.trimEnd().split("\n").map((l) => JSON.parse(l) as LedgerEntry);
    type RoundBody = { runId: string; round: number; attempt: number; status: string; detail: string };
    const rounds = entries.filter((e) => e.type === "round").map((e) => e.body as unknown as RoundBody).filter((b) => b.runId === runId);
    const completed = rounds.filter((b) => b.status === "completed");
    expect(completed.map((b) => b.round)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(new Set(rounds.map((b) => `${b.round}/${b.attempt}`)).size).toBe(rounds.length);
    const lost = rounds.filter((b) => b.status === "aborted");
    expect(lost.map((b) => b.round)).toEqual([r0, r1, r1]);
    expect(entries.filter((e) => e.type === "run-end")).toHaveLength(1);

    // Budgets: one charge per attempt; every attested round charged; any other charge is an
    // attempt lost after the device revealed its unmasking shares (conservative by design).
    const attested = new Set(entries.filter((e) => e.type === "attestation").map((e) => `${(e.body as { deviceId: string }).deviceId}/${(e.body as { round: number }).round}`));
    const completedAttempt = new Map(completed.map((b) => [b.round, b.attempt]));
    const lostAttempts = new Set(lost.map((b) => `${b.round}/${b.attempt}`));
    let conservative = 0;
    for (const [i, d] of devices.entries()) {
      const counted = (JSON.parse(readFileSync(join(dir, `budget-${i}.json`), "utf8")) as { entries: BudgetEntry[] }).entries.filter((e) => e.runId === runId && e.outcome !== "superseded");
      const key = (e: BudgetEntry): string => `${e.round}/${e.attempt}`;
      expect(new Set(counted.map(key)).size, `${d.deviceId}: one charge per attempt`).toBe(counted.length);
      for (const b of completed) if (attested.has(`${d.deviceId}/${b.round}`)) expect(counted.some((e) => e.round === b.round && e.attempt === b.attempt)).toBe(true);
      for (const e of counted) {
        if (attested.has(`${d.deviceId}/${e.round}`) && completedAttempt.get(e.round) === e.attempt) continue;
        expect(e.revealed && lostAttempts.has(key(e)), `${d.deviceId} charged for r${e.round} a${e.attempt}, which the ledger does not attest`).toBe(true);
        conservative++;
      }
    }
    console.log(`failover on a ${kind} store (${((Date.now() - t0) / 1000).toFixed(1)} s):\n  ${events.join("\n  ")}\n  ledger: ${entries.length} entries verified; rounds committed once each; lost attempts ${lost.map((b) => `r${b.round}a${b.attempt}`).join(", ")}; ${conservative} conservative charges`);
  }, 600_000);
});
