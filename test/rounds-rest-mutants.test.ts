/**
 * Issue #16: the survivors of coordinator/rounds that round-runner-mutants and rounds-mutants
 * left in secagg-phases, active-round, phase-gate and round-runner (the equivalent ones are argued
 * in the mutation notes). ActiveRound is driven directly (test/support/active-round-fixture.ts);
 * the fault points, the failpoint and the abort listener through whole in-process rounds
 * (test/support/round-harness.ts).
 */
import { getEventListeners } from "node:events";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it, vi } from "vitest";
import { signBytes } from "../shared/crypto/index.ts";
import { calibrateDistributedDp, roundEvent } from "../shared/dp/index.ts";
import { attestationMismatches, dpInputsFor, type RoundConfig } from "../shared/run/index.ts";
import { PhaseGate } from "../coordinator/rounds/phase-gate.ts";
import { executeRound } from "../coordinator/rounds/round-runner.ts";
import { resetFaults } from "../coordinator/runs/failpoint.ts";
import { selectCohort } from "../coordinator/rounds/round-setup.ts";
import type { RoundContext } from "../coordinator/rounds/round-context.ts";
import type { RunRecord } from "../coordinator/runs/run-store.ts";
import { activeRoundFixture, refusal } from "./support/active-round-fixture.ts";
import { LONG_DEADLINES, roundSpec, useRoundHarnesses } from "./support/round-harness.ts";

const TIMEOUT = { timeout: 20_000 };
const round = () => activeRoundFixture({ devices: 3, runId: "run-r", round: 2, modelHash: "cd".repeat(32) });


describe("ActiveRound before its first phase gate is open", () => {
  it("refuses a decline as already answered, and a phase message as not expected, instead of failing", () => {
    const { active } = round();
    expect(active.gate).toBeUndefined();
    expect(active.phase).toBe("advertise");
    expect(refusal(() => active.decline("dev-1", "busy"))).toStrictEqual({ code: grpc.status.FAILED_PRECONDITION, details: "device index 1 already answered the invitation" });
    expect(active.declines.size).toBe(0);
    active.phase = "share";
    expect(refusal(() => active.shares("dev-2", []))).toStrictEqual({
      code: grpc.status.FAILED_PRECONDITION,
      details: "device index 2 is not expected in phase share of round run-r/2 (dropped, duplicate, or not a survivor of the previous phase)",
    });
    expect(active.answered.share.size).toBe(0);
  });

  it("a member's disconnect with no gate open is a no-op", () => {
    const { active } = round();
    expect(() => active.dropDevice("dev-0")).not.toThrow();
    expect(() => active.dropDevice("stranger")).not.toThrow();
    expect(active.gate).toBeUndefined();
  });
});

describe("ActiveRound's refusal messages", () => {
  it("names both the claimed sender and the caller of unmasking shares", () => {
    const { active } = round();
    active.phase = "unmask";
    active.gate = new PhaseGate([0, 1, 2], Date.now() + 60_000);
    expect(refusal(() => active.unmask("dev-0", { from: 2, selfMaskShares: [], secretKeyShares: [] }))).toStrictEqual({ code: grpc.status.PERMISSION_DENIED, details: "unmasking shares claim sender 2, caller is 0" });
    active.gate.finish();
  });

  it("lists every mismatch of an attestation, separated by '; '", () => {
    const { active, ids, config } = round();
    active.gate = new PhaseGate([0, 1, 2], Date.now() + 60_000);
    active.phase = "share";
    const body = { deviceId: "dev-0", runId: "run-r", round: 2 };
    const json = JSON.stringify(body);
    const wrong = attestationMismatches(body, config as RoundConfig, "dev-0", roundEvent(calibrateDistributedDp(dpInputsFor(config))));
    expect(wrong.length).toBeGreaterThan(1);
    const r = refusal(() => active.attest("dev-0", json, signBytes(ids[0]!.privateKey, json)));
    expect(r).toStrictEqual({ code: grpc.status.INVALID_ARGUMENT, details: `attestation does not match round run-r/2: ${wrong.join("; ")}` });
    expect(r.details.split("; ")).toHaveLength(wrong.length);
    active.gate.finish();
  });
});

describe("PhaseGate", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("clears its deadline timer when it finishes early", () => {
    vi.useFakeTimers();
    const gate = new PhaseGate([0, 1], Date.now() + 60_000);
    expect(vi.getTimerCount()).toBe(1);
    gate.settle(0);
    expect(vi.getTimerCount()).toBe(1);
    gate.settle(1);
    expect(vi.getTimerCount()).toBe(0);
    const other = new PhaseGate([0], Date.now() + 60_000);
    other.finish();
    expect(vi.getTimerCount()).toBe(0);
    // A gate with nobody expected finishes at once and keeps no timer either.
    new PhaseGate([], Date.now() + 60_000);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("selectCohort", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("with a selection budget of 0 samples at once, without waiting for one more poll", async () => {
    // The clock stands still and no timer fires: the deadline (now + 0) has been reached, so it
    // must take the devices there are now rather than sleep 100 ms for more.
    vi.useFakeTimers({ toFake: ["Date", "setTimeout", "clearTimeout"] });
    const polls: number[] = [];
    const ctx = {
      hub: { eligibleDevices: () => (polls.push(Date.now()), ["dev-a"]) },
      registry: { get: async (id: string) => ({ identityPublicKey: `key-${id}` }) },
    } as unknown as RoundContext;
    const run = { runId: "run-s", spec: roundSpec({ cohortSize: 3, deadlines: { ...LONG_DEADLINES, selectionMs: 0 } }) } as unknown as RunRecord;
    let done: Awaited<ReturnType<typeof selectCohort>> | undefined;
    const p = selectCohort(ctx, run, new AbortController().signal).then((r) => (done = r));
    for (let i = 0; i < 20 && !done; i++) await Promise.resolve();
    expect(vi.getTimerCount()).toBe(0);
    expect(done).toStrictEqual({ eligible: ["dev-a"], members: [{ deviceId: "dev-a", identityPublicKey: "key-dev-a" }] });
    expect(polls).toHaveLength(1);
    await p;
  });
});

describe("whole rounds: the round's abort listener, the fault points and the failpoint", () => {
  const harness = useRoundHarnesses();
  const env = { faults: process.env.TACIT_FAULTS, failpoint: process.env.TACIT_FAILPOINT };
  afterEach(() => {
    vi.restoreAllMocks();
    for (const [k, v] of [["TACIT_FAULTS", env.faults], ["TACIT_FAILPOINT", env.failpoint]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    resetFaults();
  });

  it("removes its abort listener from the caller's signal when the round ends", TIMEOUT, async () => {
    const h = await harness();
    await h.addDevices(5, () => ({ delta: 0.01 }));
    const run = await h.startRun(roundSpec({ deadlines: LONG_DEADLINES }));
    const ctrl = new AbortController();
    expect(getEventListeners(ctrl.signal, "abort")).toHaveLength(0);
    const res = await executeRound(h.ctx, run, 1, 0, ctrl.signal);
    await h.settled();
    expect(res.status).toBe("completed");
    expect(getEventListeners(ctrl.signal, "abort")).toHaveLength(0);
  });

  it("throws the injected fault at checkpoint-read before anything else", TIMEOUT, async () => {
    const h = await harness();
    const run = await h.startRun(roundSpec({ deadlines: LONG_DEADLINES }));
    process.env.TACIT_FAULTS = "checkpoint-read:1:1";
    await expect(executeRound(h.ctx, run, 1, 0)).rejects.toThrow("injected fault at checkpoint-read in round 1 (ENOSPC: no space left on device)");
    expect(h.commits).toEqual([]);
  });

  it("aborts the attempt on the injected fault at checkpoint-write, committing nothing", TIMEOUT, async () => {
    const h = await harness();
    await h.addDevices(5, () => ({ delta: 0.01 }));
    const run = await h.startRun(roundSpec({ deadlines: LONG_DEADLINES }));
    process.env.TACIT_FAULTS = "checkpoint-write:1:1";
    const res = await executeRound(h.ctx, run, 1, 0);
    await h.settled();
    expect(res.status).toBe("aborted");
    expect(res.record.detail).toContain("injected fault at checkpoint-write in round 1 (ENOSPC: no space left on device)");
    expect(await h.checkpoints.committed(run.runId, 1)).toBeUndefined();
    expect(h.commits).toEqual([]);
  });

  it("reaches the after-checkpoint failpoint once the checkpoint is written", TIMEOUT, async () => {
    const h = await harness();
    await h.addDevices(5, () => ({ delta: 0.01 }));
    const run = await h.startRun(roundSpec({ deadlines: LONG_DEADLINES }));
    const kill = vi.spyOn(process, "kill").mockImplementation(() => true);
    process.env.TACIT_FAILPOINT = "after-checkpoint:1";
    const res = await executeRound(h.ctx, run, 1, 0);
    await h.settled();
    expect(kill.mock.calls).toEqual([[process.pid, "SIGKILL"]]);
    // The kill was stubbed, so the round went on and committed.
    expect(res.status).toBe("completed");
    expect(await h.checkpoints.committed(run.runId, 1)).toBeDefined();
  });
});
