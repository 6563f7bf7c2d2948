/**
 * Issue #16: executeRound (coordinator/rounds/round-runner.ts) and executeEvaluation
 * (evaluation-round.ts) end to end in this process — selection, every SecAgg phase
 * (secagg-phases.ts, consistency-phase.ts, fan-out.ts), the server step and the commit — with
 * real devices (RoundParticipant) reaching the round through the real RPC handlers
 * (test/support/round-harness.ts), so that Stryker sees the mutants of coordinator/rounds these
 * tests reach. Every scenario asserts exact values: the record, the phase counts, the config the
 * devices were sent, the model the round committed, what every device was told.
 *
 * Deadlines: a round ends each phase as soon as every expected device answered, so the phase
 * budgets are long (LONG_DEADLINES, 60 s) wherever nothing must expire; a test whose point is
 * that something ends a phase early (a disconnect, an abort) would then run into the 20 s test
 * timeout if it did not. Only the tests of a silent device use short budgets, because there the
 * deadline is what ends the phase.
 */
import { describe, expect, it } from "vitest";
import { executeRound, PublishError, type RoundCommit, type RoundResult } from "../coordinator/rounds/round-runner.ts";
import { executeEvaluation } from "../coordinator/rounds/evaluation-round.ts";
import { causeOf, describe as describeError, RoundInterrupted, statusOf } from "../coordinator/rounds/round-interrupt.ts";
import { sampleCohort } from "../coordinator/rounds/cohort.ts";
import { serverStateFromJson, serverStateToJson } from "../coordinator/rounds/server-state.ts";
import { fanOut } from "../coordinator/rounds/fan-out.ts";
import { PhaseGate } from "../coordinator/rounds/phase-gate.ts";
import { DeviceHub } from "../coordinator/rounds/device-hub.ts";
import type { ActiveRound } from "../coordinator/rounds/active-round.ts";
import { canonicalJson, publicKeyFromRaw, verifyBytes } from "../shared/crypto/index.ts";
import { calibrateDistributedDp, nextClip } from "../shared/dp/index.ts";
import { evalDpEvent, evalErrorBound, metricsFromSums } from "../shared/eval/index.ts";
import { weightsHash } from "../shared/model/index.ts";
import { attestationBody, dpInputsFor, evalDpFor, roundDpEvent, type RoundConfig, type RunSpec } from "../shared/run/index.ts";
import { bytesToField, chooseParams, FIELD_PRIME, fieldToBytes, SecAggError } from "../shared/secagg/index.ts";
import type { PhaseCounts, RunRecord } from "../coordinator/runs/run-store.ts";
import { initialWeights, LONG_DEADLINES, RoundHarness, ROUND_MODEL, ROUND_PARAMS, roundSpec, useRoundHarnesses, type HarnessDevice } from "./support/round-harness.ts";

/** Decoding is exact up to float32 and the randomized rounding (1/scale ≈ 2e-8 here): far below any wrong mean. */
const TOL = 1e-5;
const TIMEOUT = { timeout: 20_000 };
const LONG = LONG_DEADLINES;

/** Device i's update: 0.01·(i+1)·(1 + j mod 3) at coordinate j (norm < 1, under the clip of 10). */
const deltaOf = (i: number) => (cfg: RoundConfig): Float32Array => Float32Array.from({ length: cfg.parameterCount }, (_, j) => 0.01 * (i + 1) * (1 + (j % 3)));
const spec = (over: Partial<RunSpec> = {}): RunSpec => roundSpec(over);

const harness = useRoundHarnesses();

/** Devices 0…n−1 with updates deltaOf(i), each with extra behaviour if given. */
async function fleet(h: RoundHarness, n: number, extra: (i: number) => Parameters<RoundHarness["addDevice"]>[0] = () => ({})): Promise<HarnessDevice[]> {
  return h.addDevices(n, (i) => ({ delta: deltaOf(i), ...extra(i) }));
}

const counts = (over: Partial<Omit<PhaseCounts, "dropouts">> & { dropouts?: Partial<PhaseCounts["dropouts"]> } = {}): PhaseCounts => ({
  invited: 0, declined: 0, advertised: 0, shared: 0, maskedInput: 0, unmasked: 0, ...over,
  dropouts: { advertise: 0, share: 0, maskedInput: 0, unmask: 0, ...over.dropouts },
});

/** The devices that were invited (got an invitation), in cohort index order. */
function invited(h: RoundHarness): HarnessDevice[] {
  const withIndex = h.devices.flatMap((d) => d.received.flatMap((e) => (e.invite ? [{ d, index: e.invite.index }] : [])));
  return withIndex.sort((a, b) => a.index - b.index).map((x) => x.d);
}

/** The one signed config every invited device was sent (they all get the same). */
function sentConfig(h: RoundHarness): RoundConfig {
  const cfgs = h.devices.flatMap((d) => d.trained.map((t) => t.cfg));
  expect(cfgs.length).toBeGreaterThan(0);
  for (const c of cfgs) expect(c).toEqual(cfgs[0]);
  return cfgs[0]!;
}

/** The weights `old + lr · mean of the survivors' updates`, coordinate by coordinate, within TOL. */
function expectStep(weights: Float32Array, old: Float32Array, lr: number, survivors: HarnessDevice[], all: HarnessDevice[]): void {
  const idx = survivors.map((d) => all.indexOf(d));
  expect(idx.every((i) => i >= 0)).toBe(true);
  expect(weights.length).toBe(old.length);
  for (let j = 0; j < weights.length; j++) {
    const mean = idx.reduce((s, i) => s + 0.01 * (i + 1) * (1 + (j % 3)), 0) / idx.length;
    expect(Math.abs(weights[j]! - (old[j]! + lr * mean)), `coordinate ${j}`).toBeLessThan(TOL);
  }
}

async function committed(h: RoundHarness, run: RunRecord, round: number): Promise<RoundCommit> {
  const c = await h.checkpoints.committed(run.runId, round);
  expect(c).toBeDefined();
  return c!.commit as RoundCommit;
}

/** An attempt that ended before its commit point: the model and the store are as before. */
async function expectUncommitted(h: RoundHarness, run: RunRecord, round: number): Promise<void> {
  expect(await h.checkpoints.committed(run.runId, round)).toBeUndefined();
  expect((await h.checkpoints.latest(run.runId))!.hash).toBe(run.modelHash);
  expect(h.commits).toEqual([]);
  expect(h.ledgerRounds).toEqual([]);
}

/** What each device reported as the round's outcome. */
const outcomes = (devices: HarnessDevice[]) => devices.map((d) => d.events.flatMap((e) => (e.type === "outcome" ? [{ status: e.status, modelHash: e.modelHash }] : [])));

/** The round left nothing registered behind: no active round, no disconnect listener. */
function expectClosed(h: RoundHarness): void {
  expect(h.active.size).toBe(0);
  expect(h.hub.listenerCount("disconnect")).toBe(0);
}

async function play(h: RoundHarness, run: RunRecord, round = 1, attempt = 0, signal?: AbortSignal): Promise<RoundResult> {
  const res = await executeRound(h.ctx, run, round, attempt, signal);
  await h.settled();
  expectClosed(h);
  return res;
}

describe("a completed round", () => {
  it("commits old + server step of the survivors' mean update, with its record, and tells every invited device", TIMEOUT, async () => {
    const h = await harness();
    // Six connected for a cohort of five: one is left out, and `eligible` counts six.
    const all = await fleet(h, 6);
    const run = await h.startRun(spec());
    const before = Date.now();
    const res = await play(h, run, 1, 2);
    const after = Date.now();
    expect(h.deviceErrors()).toEqual([]);
    expect(h.refusals()).toEqual([]);
    const cohort = invited(h);
    expect(cohort).toHaveLength(5);
    const left = all.filter((d) => !cohort.includes(d));
    expect(left).toHaveLength(1);
    expect(left[0]!.received).toEqual([]);
    const cfg = sentConfig(h);
    const cp = await h.checkpoints.readRound(run.runId, 1);
    const params = chooseParams({ cohortSize: 5, dropoutFraction: 0.3, corruptFraction: 0.1, minSurvivors: 3 });
    const dp = calibrateDistributedDp(dpInputsFor(cfg));
    expect(res.status).toBe("completed");
    expect(res.record).toStrictEqual({
      round: 1,
      attempt: 2,
      cohort: 5,
      modelHashBefore: run.modelHash,
      phases: counts({ invited: 5, advertised: 5, shared: 5, maskedInput: 5, unmasked: 5 }),
      secagg: { threshold: 3, degree: 4, mode: "full", guarantee: params.guarantee, bits: 32 },
      startedAt: res.record.startedAt,
      privacy: { eligible: 6, sampling: "fixed-size-without-replacement", colluders: 1, honestNoiseShares: 2, wrapProbability: dp.overflowProbabilityBound },
      status: "completed",
      survivors: 5,
      modelHashAfter: cp.hash,
      detail: "5 of 5 devices survived",
      endedAt: res.record.endedAt,
    });
    expect(params.colluders).toBe(1);
    expect(before).toBeLessThanOrEqual(res.record.startedAt);
    expect(res.record.startedAt).toBeLessThanOrEqual(res.record.endedAt);
    expect(res.record.endedAt).toBeLessThanOrEqual(after);
    // The model: fedavg at the server rate 0.5 on the mean of the five updates.
    expect(cp.hash).toBe(weightsHash(cp.weights));
    expectStep(cp.weights, initialWeights(ROUND_PARAMS), 0.5, cohort, all);
    expect(cp.meta.serverState).toStrictEqual({ step: 1 });
    // The commit record the checkpoint carries, and the ledger entry published from it.
    const commit = await committed(h, run, 1);
    const ids = cohort.map((d) => d.deviceId);
    const event = roundDpEvent(cfg);
    expect(commit.record).toEqual(res.record);
    expect(commit.cohort).toEqual(ids);
    expect(commit.survivors).toEqual(ids);
    expect(commit.declines).toEqual({});
    expect(commit.event).toEqual(event);
    expect(commit.attestations.map((a) => a.deviceId)).toEqual(ids);
    for (const [i, a] of commit.attestations.entries()) {
      const d = cohort[i]!;
      expect(a.identityPublicKey).toBe(Buffer.from(d.identity.publicRaw).toString("base64"));
      expect(a.body).toBe(canonicalJson(attestationBody(cfg, d.deviceId, event)));
      expect(verifyBytes(publicKeyFromRaw(d.identity.publicRaw), a.body, new Uint8Array(Buffer.from(a.signature, "base64")))).toBe(true);
    }
    expect(h.commits).toEqual([{ runId: run.runId, round: 1 }]);
    expect(h.ledgerRounds).toHaveLength(1);
    expect(h.ledgerRounds[0]).toMatchObject({ run, record: res.record, cohort: ids, survivors: ids, declines: {}, event });
    // Every invited device is told, once, that the round completed with the new model.
    expect(outcomes(cohort)).toEqual(cohort.map(() => [{ status: "completed", modelHash: cp.hash }]));
    for (const d of cohort) expect(d.received.at(-1)!.outcome).toEqual({ ref: { runId: run.runId, round: 1 }, status: "completed", modelHash: cp.hash, detail: "5 of 5 devices survived", survivors: 5 });
    for (const d of cohort) expect(d.budget.list().map((b) => b.outcome)).toEqual(["completed"]);
    // No offence, and every phase boundary asked whether the run was cancelled.
    expect(h.offences).toEqual([]);
    expect(h.cancelChecks).toEqual(new Array(7).fill(run.runId));
  });

  it("sends every device the signed training config: seed formula, local training, DP and SecAgg sizes, deadlines laid end to end", TIMEOUT, async () => {
    const h = await harness();
    const devices = await fleet(h, 5);
    const deadlines = { ...LONG, advertiseMs: 41_000, shareMs: 42_000, maskedInputMs: 43_000, unmaskMs: 44_000 };
    const run = await h.startRun(spec({ deadlines }));
    const before = Date.now();
    await play(h, run, 2, 3);
    const cfg = sentConfig(h);
    const params = chooseParams({ cohortSize: 5, dropoutFraction: 0.3, corruptFraction: 0.1, minSurvivors: 3 });
    expect(cfg.protocol).toBe("tacit-round-v1");
    expect(cfg.runId).toBe(run.runId);
    expect(cfg.round).toBe(2);
    expect(cfg.attempt).toBe(3);
    expect(cfg.modelHash).toBe(run.modelHash);
    expect(cfg.parameterCount).toBe(ROUND_PARAMS);
    expect(cfg.model).toEqual(ROUND_MODEL);
    expect(cfg.signals).toEqual(["commit", "file-change"]);
    expect(cfg.populationSize).toBe(10);
    expect(cfg.cohort.size).toBe(5);
    expect(cfg.training).toStrictEqual({ localEpochs: 2, maxLocalSteps: 8, batchSize: 16, learningRate: 0.1, optimizer: "sgd", seed: (123_456 * 1_000_003 + 2 * 7919 + 3) % 2 ** 31 });
    expect(cfg.training.seed).toBe(1_049_818_273);
    const { rotationSeed, ...dp } = cfg.dp;
    expect(dp).toStrictEqual({ mechanism: "ddgauss", clip: 10, noiseMultiplier: 0, minSurvivors: 3, expectedSurvivors: 5, colluders: 1, delta: 1e-6 });
    expect(Buffer.from(rotationSeed, "base64")).toHaveLength(32);
    const { roundSeed, ...secagg } = cfg.secagg;
    expect(secagg).toStrictEqual({ bits: 32, threshold: params.threshold, degree: params.degree, mode: params.mode, guarantee: params.guarantee });
    expect(Buffer.from(roundSeed, "base64")).toHaveLength(32);
    expect(before).toBeLessThanOrEqual(cfg.issuedAt);
    expect(cfg.deadlines).toEqual({ advertise: cfg.issuedAt + 41_000, share: cfg.issuedAt + 83_000, maskedInput: cfg.issuedAt + 126_000, unmask: cfg.issuedAt + 170_000 });
    expect(cfg).not.toHaveProperty("evaluation");
    // Each device trained from exactly the checkpoint's weights.
    for (const d of devices) for (const t of d.trained) expect([...t.weights]).toEqual([...initialWeights(ROUND_PARAMS)]);
  });

  it("a run that evaluates keeps the held-out fraction out of training; an adaptive-clip run sends its clip state", TIMEOUT, async () => {
    const h = await harness();
    await fleet(h, 5);
    const adaptiveClip = { targetQuantile: 0.5, learningRate: 0.2, countStddev: 1 };
    const evaluation = { everyRounds: 1, heldOutFraction: 0.25, maxExamplesPerDevice: 50, noiseMultiplier: 0 };
    const run = await h.startRun(spec({ evaluation, adaptiveClip }), { serverState: { step: 4, clip: 6.5 } });
    await play(h, run, 0, 0);
    const cfg = sentConfig(h);
    expect(cfg.training.heldOutFraction).toBe(0.25);
    expect(cfg.dp.adaptiveClip).toEqual(adaptiveClip);
    // This round's C comes from the checkpoint's state, not the spec's initial clip.
    expect(cfg.dp.clip).toBe(6.5);
  });

  it("onPhase is called with each phase in order, with the attempt, the cohort and the counts so far", TIMEOUT, async () => {
    const h = await harness();
    await fleet(h, 5);
    const run = await h.startRun(spec());
    const seen: boolean[] = [];
    h.atPhase = () => void seen.push(h.active.has(`${run.runId}/1`));
    await play(h, run, 1, 4);
    const ids = invited(h).map((d) => d.deviceId);
    expect(h.phases).toEqual([
      { runId: run.runId, round: 1, phase: "selection", attempt: 4, cohort: [], counts: counts() },
      { runId: run.runId, round: 1, phase: "advertise", attempt: 4, cohort: ids, counts: counts({ invited: 5 }) },
      { runId: run.runId, round: 1, phase: "share", attempt: 4, cohort: ids, counts: counts({ invited: 5, advertised: 5 }) },
      { runId: run.runId, round: 1, phase: "masked-input", attempt: 4, cohort: ids, counts: counts({ invited: 5, advertised: 5, shared: 5 }) },
      { runId: run.runId, round: 1, phase: "unmask", attempt: 4, cohort: ids, counts: counts({ invited: 5, advertised: 5, shared: 5, maskedInput: 5 }) },
    ]);
    // The round is reachable by the RPC handlers from its first phase on, and not before.
    expect(seen).toEqual([false, true, true, true, true]);
  });

  it("a context without onPhase, isCancelled and offences runs the round all the same", TIMEOUT, async () => {
    const h = await harness();
    const all = await fleet(h, 5);
    const run = await h.startRun(spec());
    const { onPhase: _p, isCancelled: _c, offences: _o, ...bare } = h.ctx;
    const res = await executeRound(bare, run, 1, 0);
    await h.settled();
    expect(res.status).toBe("completed");
    expectStep((await h.checkpoints.readRound(run.runId, 1)).weights, initialWeights(ROUND_PARAMS), 0.5, all, all);
    expect(h.phases).toEqual([]);
    expect(h.cancelChecks).toEqual([]);
  });

  it("momentum carries over through the checkpoint's server state: a second round starts from the first's model and momentum", TIMEOUT, async () => {
    const h = await harness();
    const all = await fleet(h, 5);
    const run = await h.startRun(spec({ serverOptimizer: "fedavgm", serverMomentum: 0.9, serverLearningRate: 0.5 }));
    const r0 = await play(h, run, 0, 0);
    expect(r0.status).toBe("completed");
    const cp0 = await h.checkpoints.readRound(run.runId, 0);
    const w0 = initialWeights(ROUND_PARAMS);
    expectStep(cp0.weights, w0, 0.5, all, all);
    expect(cp0.meta.serverState).toMatchObject({ step: 1, m: expect.any(String) });
    const r1 = await play(h, run, 1, 0);
    expect(r1.status).toBe("completed");
    expect(r1.record.modelHashBefore).toBe(cp0.hash);
    // The devices of round 1 trained from round 0's model.
    for (const d of all) expect([...d.trained.at(-1)!.weights]).toEqual([...cp0.weights]);
    const cp1 = await h.checkpoints.readRound(run.runId, 1);
    expect(cp1.meta.serverState).toMatchObject({ step: 2 });
    // m1 = 0.9·m0 + mean = 1.9·mean (the same updates both rounds): w2 = w1 + 0.5·1.9·mean.
    expectStep(cp1.weights, cp0.weights, 0.5 * 1.9, all, all);
    expect(h.commits).toEqual([{ runId: run.runId, round: 0 }, { runId: run.runId, round: 1 }]);
  });

  it("the server learning rate follows its schedule by round (cosine: half the rate at round 1 of 2)", TIMEOUT, async () => {
    const h = await harness();
    const all = await fleet(h, 5);
    const run = await h.startRun(spec({ rounds: 2, serverLearningRateSchedule: "cosine", serverLearningRate: 0.8 }));
    await play(h, run, 1, 0);
    expectStep((await h.checkpoints.readRound(run.runId, 1)).weights, initialWeights(ROUND_PARAMS), 0.4, all, all);
  });

  it("adaptive clipping: the unclipped fraction moves C, recorded in the ledger and carried to the next round", TIMEOUT, async () => {
    const h = await harness();
    const all = await fleet(h, 5);
    const adaptiveClip = { targetQuantile: 0.5, learningRate: 0.2, countStddev: 1 };
    const run = await h.startRun(spec({ adaptiveClip }));
    const res = await play(h, run, 0, 0);
    const cp = await h.checkpoints.readRound(run.runId, 0);
    // Every update's norm is below C = 10: the unclipped fraction is 1, and C shrinks.
    const want = nextClip(10, 1, adaptiveClip);
    expect(want).toBeLessThan(10);
    expect(res.record.privacy?.adaptiveClip).toEqual({ clip: 10, unclippedFraction: 1, nextClip: want });
    expect(cp.meta.serverState).toStrictEqual({ step: 1, clip: want });
    expectStep(cp.weights, initialWeights(ROUND_PARAMS), 0.5, all, all);
    await play(h, run, 1, 0);
    expect(all.map((d) => d.trained.at(-1)!.cfg.dp.clip)).toEqual(new Array(5).fill(want));
  });
});

describe("selection", () => {
  it("too few eligible devices: aborted before anyone is invited, with the exact reason", TIMEOUT, async () => {
    const h = await harness();
    const devices = await fleet(h, 2);
    const run = await h.startRun(spec({ deadlines: { ...LONG, selectionMs: 300 } }));
    const res = await play(h, run, 1, 1);
    expect(res).toMatchObject({ status: "aborted", cause: "too-few-devices", declines: {} });
    if (res.status === "completed") throw new Error("unreachable");
    expect([...res.cohort].sort()).toEqual(devices.map((d) => d.deviceId).sort());
    expect(res.record).toStrictEqual({
      round: 1, attempt: 1, cohort: 2, modelHashBefore: run.modelHash, phases: counts({ invited: 2 }),
      secagg: { threshold: 0, degree: 0, mode: "", guarantee: "", bits: 32 },
      startedAt: res.record.startedAt, status: "aborted", survivors: 0, modelHashAfter: run.modelHash,
      detail: "only 2 eligible devices connected, the run needs at least minSurvivors=3", endedAt: res.record.endedAt,
    });
    for (const d of devices) expect(d.received).toEqual([]);
    expect(h.phases.map((p) => p.phase)).toEqual(["selection"]);
    await expectUncommitted(h, run, 1);
  });

  it("exactly minSurvivors eligible devices is enough: the cohort is what connected", TIMEOUT, async () => {
    const h = await harness();
    const devices = await fleet(h, 3);
    const run = await h.startRun(spec({ deadlines: { ...LONG, selectionMs: 300 } }));
    const res = await play(h, run);
    expect(res.status).toBe("completed");
    expect(res.record).toMatchObject({ cohort: 3, survivors: 3, detail: "3 of 3 devices survived", privacy: { eligible: 3 } });
    expectStep((await h.checkpoints.readRound(run.runId, 1)).weights, initialWeights(ROUND_PARAMS), 0.5, devices, devices);
  });

  it("an ineligible device is not counted, a deregistered one still connected is not invited", TIMEOUT, async () => {
    const h = await harness();
    const devices = await fleet(h, 5, (i) => (i === 3 ? { ineligible: true } : {}));
    expect(await h.registry.remove(devices[4]!.deviceId)).toBe(true);
    const run = await h.startRun(spec({ deadlines: { ...LONG, selectionMs: 300 } }));
    const res = await play(h, run);
    expect(res.status).toBe("completed");
    expect(res.record).toMatchObject({ cohort: 3, survivors: 3, privacy: { eligible: 4 }, phases: { invited: 3 } });
    expect(invited(h).map((d) => d.deviceId).sort()).toEqual(devices.slice(0, 3).map((d) => d.deviceId).sort());
    expect(devices[3]!.received).toEqual([]);
    expect(devices[4]!.received).toEqual([]);
    expectStep((await h.checkpoints.readRound(run.runId, 1)).weights, initialWeights(ROUND_PARAMS), 0.5, devices.slice(0, 3), devices);
  });

  it("selection waits for a cohort's worth of devices: one connecting during selection is invited", TIMEOUT, async () => {
    const h = await harness();
    await fleet(h, 4);
    const run = await h.startRun(spec());
    let late: Promise<HarnessDevice> | undefined;
    h.atPhase = (phase) => {
      if (phase === "selection") late = new Promise((r) => setTimeout(() => r(h.addDevice({ delta: deltaOf(4) })), 250));
    };
    const res = await play(h, run);
    expect(res.status).toBe("completed");
    expect(res.record.cohort).toBe(5);
    expect(invited(h)).toContain(await late);
  });
});

describe("devices that decline or drop out", () => {
  it("a decline is counted and recorded by device; the round completes over the others, and the decliner is told", TIMEOUT, async () => {
    const h = await harness();
    const all = await fleet(h, 5, (i) => (i === 2 ? { decline: { code: "PAUSED", reason: "paused by the person" } } : {}));
    const run = await h.startRun(spec());
    const res = await play(h, run);
    const cp = await h.checkpoints.readRound(run.runId, 1);
    expect(res.status).toBe("completed");
    expect(res.record).toMatchObject({ cohort: 5, survivors: 4, detail: "4 of 5 devices survived", phases: counts({ invited: 5, declined: 1, advertised: 4, shared: 4, maskedInput: 4, unmasked: 4 }) });
    const others = all.filter((_, i) => i !== 2);
    expectStep(cp.weights, initialWeights(ROUND_PARAMS), 0.5, others, all);
    const commit = await committed(h, run, 1);
    expect(commit.declines).toEqual({ [all[2]!.deviceId]: "PAUSED: paused by the person" });
    expect(commit.cohort).toHaveLength(5);
    expect(commit.survivors).toEqual(commit.cohort.filter((id) => id !== all[2]!.deviceId));
    expect(h.ledgerRounds[0]!.declines).toEqual(commit.declines);
    expect(outcomes(all)).toEqual(all.map(() => [{ status: "completed", modelHash: cp.hash }]));
  });

  const dropped = {
    advertise: counts({ invited: 5, advertised: 4, shared: 4, maskedInput: 4, unmasked: 4, dropouts: { advertise: 1 } }),
    share: counts({ invited: 5, advertised: 5, shared: 4, maskedInput: 4, unmasked: 4, dropouts: { share: 1 } }),
    "masked-input": counts({ invited: 5, advertised: 5, shared: 5, maskedInput: 4, unmasked: 4, dropouts: { maskedInput: 1 } }),
    unmask: counts({ invited: 5, advertised: 5, shared: 5, maskedInput: 5, unmasked: 4, dropouts: { unmask: 1 } }),
  } as const;

  it.each(Object.keys(dropped) as (keyof typeof dropped)[])("a device whose stream closes at %s is dropped at once and counted there", TIMEOUT, async (phase) => {
    const h = await harness();
    const all = await fleet(h, 5, (i) => (i === 0 ? { dropAt: phase } : {}));
    const run = await h.startRun(spec());
    const res = await play(h, run);
    const cp = await h.checkpoints.readRound(run.runId, 1);
    // Vanishing at unmask: its input is in the sum (it was masked in), only its reveal is missing.
    const survivors = phase === "unmask" ? all : all.slice(1);
    expect(res.status).toBe("completed");
    expect(res.record.phases).toEqual(dropped[phase]);
    expect(res.record.survivors).toBe(survivors.length);
    expect(res.record.detail).toBe(`${survivors.length} of 5 devices survived`);
    expectStep(cp.weights, initialWeights(ROUND_PARAMS), 0.5, survivors, all);
    const commit = await committed(h, run, 1);
    expect([...commit.survivors].sort()).toEqual(survivors.map((d) => d.deviceId).sort());
    // The one that vanished is not told (it is gone); every other device is.
    expect(outcomes(all)).toEqual(all.map((_, i) => (i === 0 ? [] : [{ status: "completed", modelHash: cp.hash }])));
  });

  it("a device gone between two phases is settled at the next fan-out, not waited for", TIMEOUT, async () => {
    const h = await harness();
    const all = await fleet(h, 5, (i) => (i === 1 ? { disconnectAfter: "AdvertiseKeys" } : {}));
    const run = await h.startRun(spec());
    const res = await play(h, run);
    expect(res.status).toBe("completed");
    expect(res.record.phases).toEqual(counts({ invited: 5, advertised: 5, shared: 4, maskedInput: 4, unmasked: 4, dropouts: { share: 1 } }));
    expectStep((await h.checkpoints.readRound(run.runId, 1)).weights, initialWeights(ROUND_PARAMS), 0.5, all.filter((_, i) => i !== 1), all);
  });

  // A device that hangs without disconnecting: only the phase deadline ends its silence. The
  // honest devices must still finish each phase within its budget, so it leaves room for a
  // loaded CI machine (a 500 ms budget held only when the cores were free).
  const BUDGET = 1500;
  const silent = {
    invite: counts({ invited: 5, advertised: 4, shared: 4, maskedInput: 4, unmasked: 4, dropouts: { advertise: 1 } }),
    roster: counts({ invited: 5, advertised: 5, shared: 4, maskedInput: 4, unmasked: 4, dropouts: { share: 1 } }),
    inbox: counts({ invited: 5, advertised: 5, shared: 5, maskedInput: 4, unmasked: 4, dropouts: { maskedInput: 1 } }),
    // It does not sign the survivor set: it is asked for nothing, and counted as missing at unmask.
    consistency: counts({ invited: 5, advertised: 5, shared: 5, maskedInput: 5, unmasked: 4, dropouts: { unmask: 1 } }),
    unmask: counts({ invited: 5, advertised: 5, shared: 5, maskedInput: 5, unmasked: 4, dropouts: { unmask: 1 } }),
  } as const;

  it.each(Object.keys(silent) as (keyof typeof silent)[])("a device silent at its %s message is dropped at the phase deadline and counted there", TIMEOUT, async (kind) => {
    const h = await harness();
    const all = await fleet(h, 5, (i) => (i === 0 ? { silentAt: kind } : {}));
    const run = await h.startRun(spec({ deadlines: { ...LONG, advertiseMs: BUDGET, shareMs: BUDGET, maskedInputMs: BUDGET, unmaskMs: BUDGET } }));
    const res = await play(h, run);
    const cp = await h.checkpoints.readRound(run.runId, 1);
    const survivors = kind === "consistency" || kind === "unmask" ? all : all.slice(1);
    expect(h.deviceErrors()).toEqual([]);
    expect(res.status).toBe("completed");
    expect(res.record.phases).toEqual(silent[kind]);
    expect(res.record.survivors).toBe(survivors.length);
    expectStep(cp.weights, initialWeights(ROUND_PARAMS), 0.5, survivors, all);
    // It kept its connection, so it is told the outcome like everyone else.
    expect(outcomes(all)).toEqual(all.map(() => [{ status: "completed", modelHash: cp.hash }]));
  });
});

describe("the unmask phase", () => {
  it("gets its own budget from its opening even when the consistency phase ran past the signed unmask deadline", TIMEOUT, async () => {
    const h = await harness();
    // Six devices, no colluders assumed (t = 3, at least 4 needed): device 0 never sends its
    // masked input (the phase lasts until its deadline), device 1 never signs the survivor set
    // (the consistency phase lasts its full unmask budget), and the run store is slow at the
    // boundary after MaskedInput — so the unmask phase opens after the signed unmask deadline.
    const B = 1500; // room for the honest devices on a loaded machine, as BUDGET above
    const all = await fleet(h, 6, (i) => (i === 0 ? { silentAt: "inbox" } : i === 1 ? { silentAt: "consistency" } : {}));
    const run = await h.startRun(spec({ cohortSize: 6, corruptTolerance: 0, deadlines: { ...LONG, advertiseMs: B, shareMs: B, maskedInputMs: B, unmaskMs: B } }));
    const isCancelled = h.ctx.isCancelled!;
    h.ctx.isCancelled = async (runId) => {
      if (h.cancelChecks.length === 3) await new Promise((r) => setTimeout(r, 150));
      return isCancelled(runId);
    };
    let unmaskOpened = 0;
    h.atPhase = (phase) => void (phase === "unmask" && (unmaskOpened = Date.now()));
    const res = await play(h, run);
    expect(unmaskOpened).toBeGreaterThan(sentConfig(h).deadlines.unmask);
    expect(res.status).toBe("completed");
    expect(res.record.phases).toEqual(counts({ invited: 6, advertised: 6, shared: 6, maskedInput: 5, unmasked: 4, dropouts: { maskedInput: 1, unmask: 1 } }));
    expectStep((await h.checkpoints.readRound(run.runId, 1)).weights, initialWeights(ROUND_PARAMS), 0.5, all.slice(1), all);
  });
});

describe("a round that cannot complete leaves the model unchanged and tells the cohort", () => {
  const tooFew = {
    advertise: { detail: "secure aggregation aborted in phase advertise: only 3 devices advertised keys; at least 4 are needed", phases: counts({ invited: 5, advertised: 3, dropouts: { advertise: 2 } }) },
    share: { detail: "secure aggregation aborted in phase share: only 3 devices shared their keys; at least 4 are needed", phases: counts({ invited: 5, advertised: 5, shared: 3, dropouts: { share: 2 } }) },
    "masked-input": { detail: "secure aggregation aborted in phase masked-input: only 3 devices sent masked inputs; at least 4 are needed", phases: counts({ invited: 5, advertised: 5, shared: 5, maskedInput: 3, dropouts: { maskedInput: 2 } }) },
    unmask: { detail: "secure aggregation aborted in phase unmask: only 3 devices sent unmasking shares; at least 4 are needed", phases: counts({ invited: 5, advertised: 5, shared: 5, maskedInput: 5, unmasked: 3, dropouts: { unmask: 2 } }) },
  } as const;

  it.each(Object.keys(tooFew) as (keyof typeof tooFew)[])("too few survivors at %s: SecAgg aborts, named in the detail", TIMEOUT, async (phase) => {
    const h = await harness();
    const all = await fleet(h, 5, (i) => (i < 2 ? { dropAt: phase } : {}));
    const run = await h.startRun(spec());
    const res = await play(h, run, 1, 1);
    expect(res).toMatchObject({ status: "aborted", cause: "secagg", declines: {} });
    if (res.status === "completed") throw new Error("unreachable");
    expect(res.record).toMatchObject({ status: "aborted", survivors: 0, cohort: 5, modelHashBefore: run.modelHash, modelHashAfter: run.modelHash, detail: tooFew[phase].detail, phases: tooFew[phase].phases });
    expect(res.record.privacy).toMatchObject({ eligible: 5, colluders: 1 });
    expect(res.cohort).toEqual(invited(h).map((d) => d.deviceId));
    await expectUncommitted(h, run, 1);
    expect(h.checkpoints.writes).toBe(0);
    // The round refuses any late message: it is finished.
    expect(h.rounds.map((r) => r.phase)).toEqual(["finished"]);
    // Those still connected are told the round aborted, with the unchanged model.
    expect(outcomes(all)).toEqual(all.map((_, i) => (i < 2 ? [] : [{ status: "aborted", modelHash: run.modelHash }])));
    for (const d of all.slice(2)) expect(d.received.at(-1)!.outcome).toEqual({ ref: { runId: run.runId, round: 1 }, status: "aborted", modelHash: run.modelHash, detail: tooFew[phase].detail, survivors: 0 });
    // Only a device whose input left was charged; its charge is marked aborted.
    for (const d of all.slice(2)) expect(d.budget.list().map((b) => b.outcome)).toEqual(phase === "advertise" || phase === "share" ? [] : ["aborted"]);
  });

  it("a refused aggregate (a device's masked input tampered with) aborts as SecAgg", TIMEOUT, async () => {
    const h = await harness();
    const all = await fleet(h, 5, (i) => (i === 3 ? { tamper: bumpMaskedInput(2 ** 30, Infinity) } : {}));
    const run = await h.startRun(spec());
    const res = await play(h, run);
    expect(res).toMatchObject({ status: "aborted", cause: "secagg" });
    expect(res.record.detail).toMatch(/^secure aggregation aborted in phase finished: aggregate refused: the aggregate's norm \S+ exceeds what 5 clipped, noised inputs can reach \(\S+\)$/);
    await expectUncommitted(h, run, 1);
    expect(outcomes(all)).toEqual(all.map(() => [{ status: "aborted", modelHash: run.modelHash }]));
  });

  it("an error at the commit point (writing the checkpoint) aborts the attempt with cause error", TIMEOUT, async () => {
    const h = await harness();
    const all = await fleet(h, 5);
    const run = await h.startRun(spec());
    h.checkpoints.writeError = new Error("ENOSPC: no space left on device");
    const res = await play(h, run);
    expect(res).toMatchObject({ status: "aborted", cause: "error", declines: {} });
    expect(res.record).toMatchObject({ status: "aborted", survivors: 0, modelHashAfter: run.modelHash, detail: "error in phase finished: ENOSPC: no space left on device", phases: counts({ invited: 5, advertised: 5, shared: 5, maskedInput: 5, unmasked: 5 }) });
    expect(h.checkpoints.writes).toBe(1);
    await expectUncommitted(h, run, 1);
    expect(outcomes(all)).toEqual(all.map(() => [{ status: "aborted", modelHash: run.modelHash }]));
  });

  it("an error after the commit point (publishing) is a PublishError: the round stays committed, nobody is told yet", TIMEOUT, async () => {
    const h = await harness();
    const all = await fleet(h, 5);
    const run = await h.startRun(spec());
    const cause = new Error("ledger closed");
    h.commitError = cause;
    const err = await executeRound(h.ctx, run, 1, 0).then(() => undefined, (e: unknown) => e);
    await h.settled();
    expectClosed(h);
    expect(err).toBeInstanceOf(PublishError);
    expect((err as PublishError).name).toBe("PublishError");
    expect((err as PublishError).message).toBe(`round 1 of run ${run.runId} is committed, but publishing it failed: ledger closed`);
    expect((err as PublishError).cause).toBe(cause);
    expect(h.commits).toEqual([{ runId: run.runId, round: 1 }]);
    const commit = await committed(h, run, 1);
    expect(commit.record).toMatchObject({ status: "completed", survivors: 5 });
    expect(outcomes(all)).toEqual(all.map(() => []));
  });

  it("an error persisting progress (onPhase) in selection stops the attempt before anyone is invited", TIMEOUT, async () => {
    const h = await harness();
    const all = await fleet(h, 5);
    const run = await h.startRun(spec());
    h.atPhase = (phase) => {
      if (phase === "selection") throw new Error("READONLY You can't write against a read only replica.");
    };
    const res = await play(h, run);
    expect(res).toMatchObject({ status: "aborted", cause: "error", cohort: [], record: { cohort: 0, detail: "stopped during selection: READONLY You can't write against a read only replica." } });
    for (const d of all) expect(d.received).toEqual([]);
    await expectUncommitted(h, run, 1);
  });

  it("an error persisting progress (onPhase) as a phase opens aborts the attempt with cause error, the cohort told", TIMEOUT, async () => {
    const h = await harness();
    const all = await fleet(h, 5);
    const run = await h.startRun(spec());
    h.atPhase = (phase) => {
      if (phase === "advertise") throw new Error("Connection is closed.");
    };
    const res = await play(h, run);
    expect(res).toMatchObject({ status: "aborted", cause: "error", record: { cohort: 5, survivors: 0, detail: "error in phase advertise: Connection is closed.", phases: counts({ invited: 5 }) } });
    // Nobody was sent the invitation; every member is told the attempt ended.
    for (const d of all) expect(d.received.map((e) => e.event)).toEqual(["outcome"]);
    await expectUncommitted(h, run, 1);
  });

  it("a run without a checkpoint is an error thrown before anyone is invited", async () => {
    const h = await harness();
    const devices = await fleet(h, 5);
    const run: RunRecord = { runId: "run-none", spec: spec(), state: "running", roundsDone: 0, modelHash: "", currentPhase: "", error: "", createdAt: 0, requester: "x" };
    await expect(executeRound(h.ctx, run, 0, 0)).rejects.toThrow("run run-none has no checkpoint");
    await expect(executeEvaluation(h.ctx, { ...run, spec: spec({ evaluation: { everyRounds: 1, heldOutFraction: 0.2, maxExamplesPerDevice: 50, noiseMultiplier: 0 } }) }, 0, new AbortController().signal)).rejects.toThrow("run run-none has no checkpoint");
    for (const d of devices) expect(d.received).toEqual([]);
  });
});

describe("culprits", () => {
  it.each([true, false])("a device revealing a wrong (but well-formed) share is corrected for; named once when there is an offence ledger (%s)", TIMEOUT, async (withLedger) => {
    const h = await harness();
    // Six devices, no colluders assumed: t = 3 of each owner's 5 shares, so one wrong share can be located.
    const all = await fleet(h, 6, (i) => (i === 1 ? { tamper: bumpUnmaskShares } : {}));
    const run = await h.startRun(spec({ cohortSize: 6, corruptTolerance: 0 }));
    const { offences: _o, ...withoutLedger } = h.ctx;
    const res = await executeRound(withLedger ? h.ctx : withoutLedger, run, 1, 0);
    await h.settled();
    expect(res.record.secagg).toMatchObject({ threshold: 3, degree: 5 });
    expect(res.status).toBe("completed");
    expectStep((await h.checkpoints.readRound(run.runId, 1)).weights, initialWeights(ROUND_PARAMS), 0.5, all, all);
    expect(h.rounds[0]!.secagg.culprits.size).toBe(1);
    if (!withLedger) return expect(h.offences).toEqual([]);
    expect(h.offences).toHaveLength(1);
    expect(h.offences[0]).toMatchObject({ deviceId: all[1]!.deviceId, runId: run.runId, round: 1 });
    expect(h.offences[0]!.reason).toMatch(/^revealed a wrong share of device \d's self-mask seed$/);
  });
});

describe("cancels and shutdowns", () => {
  const atCheck = [
    { check: 1, detail: "stopped during selection: the run was cancelled", phases: counts() },
    { check: 2, detail: "the run was cancelled during phase advertise", phases: counts({ invited: 5 }) },
    { check: 3, detail: "the run was cancelled during phase share", phases: counts({ invited: 5, advertised: 5 }) },
    { check: 4, detail: "the run was cancelled during phase masked-input", phases: counts({ invited: 5, advertised: 5, shared: 5 }) },
    { check: 5, detail: "the run was cancelled during phase consistency", phases: counts({ invited: 5, advertised: 5, shared: 5, maskedInput: 5 }) },
    { check: 6, detail: "the run was cancelled during phase unmask", phases: counts({ invited: 5, advertised: 5, shared: 5, maskedInput: 5 }) },
    // The last boundary, before the commit point: a cancel seen there is never released.
    { check: 7, detail: "the run was cancelled during phase finished", phases: counts({ invited: 5, advertised: 5, shared: 5, maskedInput: 5, unmasked: 5 }) },
  ];

  it.each(atCheck)("a cancel seen at boundary $check ends the attempt as cancelled: $detail", TIMEOUT, async ({ check, detail, phases }) => {
    const h = await harness();
    const all = await fleet(h, 5);
    const run = await h.startRun(spec());
    h.cancelFromCheck = check;
    const res = await play(h, run);
    expect(res).toMatchObject({ status: "cancelled", cause: "cancelled", declines: {} });
    if (res.status === "completed") throw new Error("unreachable");
    expect(res.record).toMatchObject({ status: "cancelled", survivors: 0, cohort: check === 1 ? 0 : 5, modelHashAfter: run.modelHash, detail, phases });
    expect(h.cancelChecks).toHaveLength(check);
    expect(h.checkpoints.writes).toBe(0);
    expect(h.rounds.map((r) => r.phase)).toEqual(check === 1 ? [] : ["finished"]);
    await expectUncommitted(h, run, 1);
    if (check === 1) {
      expect(res.cohort).toEqual([]);
      expect(res.record).not.toHaveProperty("privacy");
      for (const d of all) expect(d.received).toEqual([]);
    } else {
      expect(res.cohort).toEqual(invited(h).map((d) => d.deviceId));
      expect(outcomes(all)).toEqual(all.map(() => [{ status: "cancelled", modelHash: run.modelHash }]));
    }
  });

  it("a run cancelled before the round starts invites nobody", TIMEOUT, async () => {
    const h = await harness();
    const all = await fleet(h, 5);
    const run = await h.startRun(spec());
    h.cancelled.add(run.runId);
    const res = await play(h, run);
    expect(res).toMatchObject({ status: "cancelled", cause: "cancelled", cohort: [], record: { detail: "stopped during selection: the run was cancelled", cohort: 0 } });
    for (const d of all) expect(d.received).toEqual([]);
  });

  it("an abort signal stops selection at once, raised before the round or while it waits for devices", TIMEOUT, async () => {
    const h = await harness();
    // Too few devices for the cohort: selection would wait its whole 60 s for more.
    const all = await fleet(h, 3);
    const run = await h.startRun(spec());
    const raised = new AbortController();
    raised.abort(new RoundInterrupted("shutdown"));
    const stopped = { status: "aborted", cause: "shutdown", cohort: [], record: { detail: "stopped during selection: the coordinator is shutting down", cohort: 0, survivors: 0 } };
    expect(await play(h, run, 1, 0, raised.signal)).toMatchObject(stopped);
    expect(h.cancelChecks).toEqual([]);
    const later = new AbortController();
    h.atPhase = (phase) => void (phase === "selection" && setTimeout(() => later.abort(new RoundInterrupted("shutdown")), 150));
    expect(await play(h, run, 1, 0, later.signal)).toMatchObject(stopped);
    for (const d of all) expect(d.received).toEqual([]);
    expect(h.cancelChecks).toEqual([]);
  });

  const reasons = [
    { reason: () => new RoundInterrupted("shutdown"), status: "aborted", cause: "shutdown", detail: "the coordinator is shutting down during phase share" },
    { reason: () => new RoundInterrupted("cancelled"), status: "cancelled", cause: "cancelled", detail: "the run was cancelled during phase share" },
    { reason: () => undefined, status: "aborted", cause: "error", detail: "error in phase share: This operation was aborted" },
  ];

  it("an abort while a phase is only being opened is seen at that phase's boundary", TIMEOUT, async () => {
    const h = await harness();
    const all = await fleet(h, 5);
    const run = await h.startRun(spec());
    const ctl = new AbortController();
    h.atPhase = (phase) => void (phase === "advertise" && ctl.abort(new RoundInterrupted("shutdown")));
    const res = await play(h, run, 1, 0, ctl.signal);
    expect(res).toMatchObject({ status: "aborted", cause: "shutdown", record: { detail: "the coordinator is shutting down during phase advertise", phases: counts({ invited: 5 }) } });
    expect(outcomes(all)).toEqual(all.map(() => [{ status: "aborted", modelHash: run.modelHash }]));
  });

  // An abort that lands between two gates (here while the phase hook awaits, as a Redis write
  // would) found no gate to end: the next phase used to fan out and then wait for a silent
  // device until its deadline (60 s here, minutes by default) before the boundary saw it.
  it.each([
    { phase: "share", event: "roster" },
    { phase: "masked-input", event: "inbox" },
    { phase: "unmask", event: "unmask" },
  ] as const)("an abort between two phases stops the round before $phase opens, with a device silent at it", TIMEOUT, async ({ phase, event }) => {
    const h = await harness();
    const all = await fleet(h, 5, (i) => (i === 0 ? { silentAt: event } : {}));
    const run = await h.startRun(spec());
    const ctl = new AbortController();
    h.atPhase = (p) => void (p === phase && ctl.abort(new RoundInterrupted("shutdown")));
    const res = await play(h, run, 1, 0, ctl.signal);
    expect(res).toMatchObject({ status: "aborted", cause: "shutdown", record: { detail: `the coordinator is shutting down during phase ${phase}`, survivors: 0, modelHashAfter: run.modelHash } });
    await expectUncommitted(h, run, 1);
    // The phase never opened: nobody was sent its message.
    for (const d of all) expect(d.received.filter((e) => e.event === event)).toEqual([]);
    expect(outcomes(all)).toEqual(all.map(() => [{ status: "aborted", modelHash: run.modelHash }]));
  });

  it.each(reasons)("an abort while a phase waits on a silent device ends that phase at once: $cause", TIMEOUT, async ({ reason, status, cause, detail }) => {
    const h = await harness();
    const ctl = new AbortController();
    // Device 0 never answers its roster (the phase would wait 60 s); device 1's ShareKeys, sent
    // while the phase is open, is when the abort comes.
    const all = await fleet(h, 5, (i) => (i === 0 ? { silentAt: "roster" } : i === 1 ? { tamper: (m, req) => (m === "ShareKeys" && ctl.abort(reason()), req) } : {}));
    const run = await h.startRun(spec());
    const res = await play(h, run, 1, 0, ctl.signal);
    expect(res).toMatchObject({ status, cause, record: { status, detail, survivors: 0, modelHashAfter: run.modelHash } });
    await expectUncommitted(h, run, 1);
    expect(outcomes(all)).toEqual(all.map(() => [{ status, modelHash: run.modelHash }]));
  });
});

describe("the evaluation round", () => {
  const counts1 = { examples: 10, top1: 3, top3: 6, loss: 12, macroTop1: 0.3, macroTop3: 0.6, devices: 1 };
  const evaluation = { everyRounds: 1, heldOutFraction: 0.2, maxExamplesPerDevice: 50, noiseMultiplier: 0 };

  it("sums the devices' held-out counts into metrics; the model is unchanged; the ledger gets the evaluation", TIMEOUT, async () => {
    const h = await harness();
    // Six devices for a cohort of six, one of which cannot evaluate (it declines).
    const all = await h.addDevices(6, (i) => (i === 5 ? {} : { evaluate: counts1 }));
    const run = await h.startRun(spec({ evaluation, cohortSize: 6 }));
    const signal = new AbortController().signal;
    const before = Date.now();
    const rec = await executeEvaluation(h.ctx, run, 1, signal);
    await h.settled();
    expectClosed(h);
    const cfg = sentConfig(h);
    const sums = { examples: 50, top1: 15, top3: 30, loss: 60, macroTop1: 1.5, macroTop3: 3, devices: 5 };
    expect(rec).toStrictEqual({
      afterRound: 1, round: 1_000_001, status: "completed", modelHash: run.modelHash, cohort: 6, survivors: 5, noiseMultiplier: 0,
      detail: "5 of 6 devices evaluated 50 held-out examples", startedAt: rec.startedAt, endedAt: rec.endedAt,
      sums, metrics: metricsFromSums(sums), errorBound: { counts: 0, failureProbability: 1e-6 },
    });
    expect(rec.metrics).toMatchObject({ top1Micro: 0.3, top3Micro: 0.6, loss: 1.2, events: 50, users: 5 });
    expect(before).toBeLessThanOrEqual(rec.startedAt);
    expect(rec.startedAt).toBeLessThanOrEqual(rec.endedAt);
    // The config: an evaluation of round 1's model, its own noise, the held-out slice.
    const params = chooseParams({ cohortSize: 6, dropoutFraction: 0.3, corruptFraction: 0.1, minSurvivors: 3 });
    expect(cfg.protocol).toBe("tacit-eval-v1");
    expect(cfg).toMatchObject({ runId: run.runId, round: 1_000_001, attempt: 0, modelHash: run.modelHash, parameterCount: ROUND_PARAMS, populationSize: 10 });
    expect(cfg.training).toStrictEqual({ localEpochs: 2, maxLocalSteps: 8, batchSize: 16, learningRate: 0.1, optimizer: "sgd", seed: 0, heldOutFraction: 0.2 });
    const { rotationSeed: _r, ...dp } = cfg.dp;
    expect(dp).toStrictEqual({ mechanism: "ddgauss", clip: 10, noiseMultiplier: 0, minSurvivors: 3, expectedSurvivors: 6, colluders: params.colluders, delta: 1e-6 });
    expect(cfg.evaluation).toStrictEqual({ afterRound: 1, maxExamplesPerDevice: 50, noiseMultiplier: 0 });
    expect(cfg.secagg).toMatchObject({ threshold: params.threshold, degree: params.degree, mode: params.mode });
    // The ledger's entry.
    const cohort = invited(h);
    const decliner = all[5]!;
    const survivors = cohort.filter((d) => d !== decliner);
    expect(h.ledgerEvaluations).toHaveLength(1);
    const entry = h.ledgerEvaluations[0]!;
    expect(entry.run).toBe(run);
    expect(entry.record).toBe(rec);
    expect(entry.cohort).toEqual(cohort.map((d) => d.deviceId));
    expect(entry.survivors).toEqual(survivors.map((d) => d.deviceId));
    expect(entry.declined).toEqual([decliner.deviceId]);
    expect(entry.event).toEqual(evalDpEvent(evalDpFor(cfg)));
    expect(entry.attestations.map((a) => a.deviceId)).toEqual(survivors.map((d) => d.deviceId));
    // Nothing of a training round: no checkpoint, no commit, no phase progress, no round ledger entry.
    expect((await h.checkpoints.latest(run.runId))!.hash).toBe(run.modelHash);
    expect(h.checkpoints.writes).toBe(0);
    expect(h.commits).toEqual([]);
    expect(h.phases).toEqual([]);
    expect(h.ledgerRounds).toEqual([]);
    expect(outcomes(all)).toEqual(all.map(() => [{ status: "completed", modelHash: run.modelHash }]));
    expect(decliner.events.find((e) => e.type === "declined")).toMatchObject({ code: "NO_EVALUATION" });
  });

  it("the devices that declined are listed by id, whatever their cohort indices", TIMEOUT, async () => {
    const h = await harness();
    // Five of six decline: too few advertise, and the aborted evaluation still names them.
    const all = await h.addDevices(6, (i) => (i === 0 ? { evaluate: counts1 } : {}));
    const run = await h.startRun(spec({ evaluation, cohortSize: 6 }));
    const rec = await executeEvaluation(h.ctx, run, 1, new AbortController().signal);
    await h.settled();
    expect(rec).toMatchObject({ status: "aborted", detail: "secure aggregation aborted in phase advertise: only 1 devices advertised keys; at least 5 are needed" });
    expect(h.ledgerEvaluations[0]!.declined).toEqual(all.slice(1).map((d) => d.deviceId).sort());
  });

  it("an evaluation's own noise multiplier is the one sent and recorded, with its error bound", TIMEOUT, async () => {
    const h = await harness();
    await h.addDevices(5, () => ({ evaluate: counts1 }));
    const run = await h.startRun(spec({ evaluation: { ...evaluation, noiseMultiplier: 0.5 } }));
    const rec = await executeEvaluation(h.ctx, run, 0, new AbortController().signal);
    await h.settled();
    const cfg = sentConfig(h);
    expect(cfg.dp.noiseMultiplier).toBe(0.5);
    expect(cfg.evaluation?.noiseMultiplier).toBe(0.5);
    const bound = evalErrorBound(evalDpFor(cfg), 5);
    expect(bound.bound).toBeGreaterThan(0);
    expect(rec).toMatchObject({ status: "completed", round: 1_000_000, afterRound: 0, noiseMultiplier: 0.5, survivors: 5, errorBound: { counts: bound.bound, failureProbability: 1e-6 } });
    expect(Math.abs(rec.sums!.examples - 50)).toBeLessThanOrEqual(bound.bound);
  });

  it("too few devices: recorded as aborted, nobody invited, no ledger entry", TIMEOUT, async () => {
    const h = await harness();
    const all = await h.addDevices(2, () => ({ evaluate: counts1 }));
    const run = await h.startRun(spec({ evaluation, deadlines: { ...LONG, selectionMs: 300 } }));
    const rec = await executeEvaluation(h.ctx, run, 1, new AbortController().signal);
    expect(rec).toStrictEqual({
      afterRound: 1, round: 1_000_001, status: "aborted", modelHash: run.modelHash, cohort: 2, survivors: 0, noiseMultiplier: 0,
      detail: "only 2 eligible devices connected, the evaluation needs at least minSurvivors=3", startedAt: rec.startedAt, endedAt: rec.endedAt,
    });
    expect(h.ledgerEvaluations).toEqual([]);
    for (const d of all) expect(d.received).toEqual([]);
    // With exactly minSurvivors devices it runs.
    await h.addDevice({ evaluate: counts1 });
    expect(await executeEvaluation(h.ctx, run, 1, new AbortController().signal)).toMatchObject({ status: "completed", cohort: 3, survivors: 3, sums: { examples: 30 } });
  });

  it("a cancel or shutdown in selection is recorded with its status", TIMEOUT, async () => {
    const h = await harness();
    await h.addDevices(5, () => ({ evaluate: counts1 }));
    const run = await h.startRun(spec({ evaluation }));
    h.cancelled.add(run.runId);
    expect(await executeEvaluation(h.ctx, run, 1, new AbortController().signal)).toMatchObject({ status: "cancelled", cohort: 0, detail: "stopped during selection: the run was cancelled" });
    h.cancelled.clear();
    const ctl = new AbortController();
    ctl.abort(new RoundInterrupted("shutdown"));
    expect(await executeEvaluation(h.ctx, run, 1, ctl.signal)).toMatchObject({ status: "aborted", cohort: 0, detail: "stopped during selection: the coordinator is shutting down" });
    expect(h.ledgerEvaluations).toEqual([]);
  });

  it("a cancel seen at a phase boundary stops it as cancelled, recorded in the ledger without survivors", TIMEOUT, async () => {
    const h = await harness();
    const all = await h.addDevices(5, () => ({ evaluate: counts1 }));
    const run = await h.startRun(spec({ evaluation }));
    h.cancelFromCheck = 3;
    const rec = await executeEvaluation(h.ctx, run, 1, new AbortController().signal);
    await h.settled();
    expect(rec).toMatchObject({ status: "cancelled", cohort: 5, survivors: 0, detail: "stopped in phase share: the run was cancelled" });
    expect(h.ledgerEvaluations).toHaveLength(1);
    expect(h.ledgerEvaluations[0]).toMatchObject({ record: rec, survivors: [], event: undefined, attestations: [] });
    expect(h.rounds.map((r) => r.phase)).toEqual(["finished"]);
    expect(outcomes(all)).toEqual(all.map(() => [{ status: "cancelled", modelHash: run.modelHash }]));
  });

  it("too few survivors: SecAgg aborts, the ledger records the attempt without survivors, devices are told", TIMEOUT, async () => {
    const h = await harness();
    const all = await h.addDevices(5, (i) => ({ evaluate: counts1, ...(i < 2 ? { dropAt: "masked-input" as const } : {}) }));
    const run = await h.startRun(spec({ evaluation }));
    const rec = await executeEvaluation(h.ctx, run, 1, new AbortController().signal);
    await h.settled();
    expectClosed(h);
    expect(rec).toStrictEqual({
      afterRound: 1, round: 1_000_001, status: "aborted", modelHash: run.modelHash, cohort: 5, survivors: 0, noiseMultiplier: 0,
      detail: "secure aggregation aborted in phase masked-input: only 3 devices sent masked inputs; at least 4 are needed", startedAt: rec.startedAt, endedAt: rec.endedAt,
    });
    expect(h.ledgerEvaluations).toHaveLength(1);
    expect(h.ledgerEvaluations[0]).toMatchObject({ record: rec, cohort: invited(h).map((d) => d.deviceId), survivors: [], declined: [], event: undefined, attestations: [] });
    expect(h.rounds.map((r) => r.phase)).toEqual(["finished"]);
    expect(outcomes(all)).toEqual(all.map((_, i) => (i < 2 ? [] : [{ status: "aborted", modelHash: run.modelHash }])));
  });

  it("an impossible aggregate is refused (not a SecAgg failure): stopped, named by its phase", TIMEOUT, async () => {
    const h = await harness();
    const all = await h.addDevices(5, (i) => ({ evaluate: counts1, ...(i === 2 ? { tamper: bumpMaskedInput(1000) } : {}) }));
    const run = await h.startRun(spec({ evaluation }));
    const rec = await executeEvaluation(h.ctx, run, 1, new AbortController().signal);
    await h.settled();
    expect(rec).toMatchObject({ status: "aborted", cohort: 5, survivors: 0, detail: "stopped in phase finished: aggregate refused: coordinate 0 is 1050, outside what 5 devices can send [0, 250]" });
    expect(rec).not.toHaveProperty("sums");
    expect(h.ledgerEvaluations[0]).toMatchObject({ survivors: [], event: undefined, attestations: [] });
    expect(outcomes(all)).toEqual(all.map(() => [{ status: "aborted", modelHash: run.modelHash }]));
  });

  it("a run that does not evaluate refuses an evaluation", async () => {
    const h = await harness();
    const run = await h.startRun(spec());
    await expect(executeEvaluation(h.ctx, run, 1, new AbortController().signal)).rejects.toThrow(`run ${run.runId} does not evaluate`);
  });
});

/** Adds `k` to the first `words` words of a masked input (mod 2^32): the sum's coordinates move by k. */
function bumpMaskedInput(k: number, words = 1) {
  return (method: string, req: Record<string, unknown>): Record<string, unknown> => {
    if (method !== "SubmitMaskedInput") return req;
    const data = Buffer.from(req.data as Buffer);
    for (let w = 0; w < Math.min(words, data.length / 4); w++) data.writeUInt32LE((data.readUInt32LE(4 * w) + k) % 2 ** 32, 4 * w);
    return { ...req, data };
  };
}

/** Adds 1 (mod p) to every self-mask share revealed: still field elements, so only the redundancy catches it. */
function bumpUnmaskShares(method: string, req: Record<string, unknown>): Record<string, unknown> {
  if (method !== "SubmitUnmasking") return req;
  const bump = (s: { owner: number; share: Buffer }) => ({ owner: s.owner, share: Buffer.from(fieldToBytes((bytesToField(new Uint8Array(s.share)) + 1n) % FIELD_PRIME)) });
  return { ...req, selfMaskShares: (req.selfMaskShares as { owner: number; share: Buffer }[]).map(bump) };
}

describe("fanOut", () => {
  it("sends each device its message, settles at once one that is not connected, and lets the event loop turn after every 64 sends", TIMEOUT, async () => {
    const hub = new DeviceHub();
    const n = 130;
    const ids = Array.from({ length: n }, (_, i) => `dev-f${i}`);
    // fanOut reads only the round's gate and its index → device map.
    const round = { gate: new PhaseGate(ids.keys(), Date.now() + 60_000), deviceByIndex: new Map(ids.map((id, i) => [i, id])) };
    const active = round as unknown as ActiveRound;
    let turned = false;
    let watching = true;
    const watch = (): void => void setImmediate(() => {
      turned = true;
      if (watching) watch();
    });
    const got: string[] = [];
    const afterTurn: number[] = [];
    for (const [i, id] of ids.entries()) {
      if (i === 5) continue;
      hub.connect(id, { write: (ev) => {
        if (turned) afterTurn.push(i);
        turned = false;
        got.push(`${id}:${(ev as { heartbeat?: { timeMs: string } }).heartbeat?.timeMs}`);
        round.gate.settle(i);
        return true;
      }, end: () => undefined }, true);
    }
    watch();
    await fanOut(hub, active, [...ids.keys()], (i) => ({ heartbeat: { timeMs: String(i * 10) } }));
    watching = false;
    expect(got).toEqual(ids.flatMap((id, i) => (i === 5 ? [] : [`${id}:${i * 10}`])));
    expect(round.gate.expects(5)).toBe(false);
    expect(afterTurn).toEqual([64, 128]);
  });
});

describe("round-interrupt", () => {
  it("names the cause of whatever stopped an attempt, and its status", () => {
    expect(causeOf(new RoundInterrupted("cancelled"))).toBe("cancelled");
    expect(causeOf(new RoundInterrupted("shutdown"))).toBe("shutdown");
    expect(causeOf(new SecAggError("TOO_FEW_SURVIVORS", "x"))).toBe("secagg");
    expect(causeOf(new Error("disk"))).toBe("error");
    expect(causeOf("a string")).toBe("error");
    expect(statusOf("cancelled")).toBe("cancelled");
    for (const c of ["too-few-devices", "secagg", "error", "shutdown"] as const) expect(statusOf(c)).toBe("aborted");
  });

  it("RoundInterrupted says why, and describe gives any thrown value's message", () => {
    const c = new RoundInterrupted("cancelled");
    expect(c).toBeInstanceOf(Error);
    expect(c.name).toBe("RoundInterrupted");
    expect(c.reason).toBe("cancelled");
    expect(c.message).toBe("the run was cancelled");
    expect(new RoundInterrupted("shutdown").message).toBe("the coordinator is shutting down");
    expect(describeError(new Error("boom"))).toBe("boom");
    expect(describeError("plain")).toBe("plain");
    expect(describeError(42)).toBe("42");
    expect(describeError(undefined)).toBe("undefined");
  });
});

describe("sampleCohort", () => {
  const pool = Array.from({ length: 10 }, (_, i) => `d${i}`);

  it("returns min(size, pool) distinct members of the pool and leaves the pool alone", () => {
    const copy = [...pool];
    for (const size of [0, 1, 3, 9, 10, 11, 50]) {
      const s = sampleCohort(pool, size);
      expect(s).toHaveLength(Math.min(size, pool.length));
      expect(new Set(s).size).toBe(s.length);
      for (const x of s) expect(pool).toContain(x);
    }
    expect(pool).toEqual(copy);
    expect(sampleCohort([], 3)).toEqual([]);
    expect([...sampleCohort(pool, 10)].sort()).toEqual([...pool].sort());
  });

  it("is a random draw: over many draws every member is chosen, in more than one order", () => {
    const chosen = new Set<string>();
    const firsts = new Set<string>();
    for (let t = 0; t < 200; t++) {
      const s = sampleCohort(pool, 3);
      s.forEach((x) => chosen.add(x));
      firsts.add(s[0]!);
    }
    // A fixed prefix, or one member never drawn, has probability below 1e-25 here.
    expect(chosen.size).toBe(10);
    expect(firsts.size).toBeGreaterThan(1);
  });
});

describe("server-state", () => {
  it("round-trips the optimizer state through JSON, moments included (also from a view into a larger buffer)", () => {
    const big = new Float32Array([9, 1.5, -2.25, 3e-7, 9]);
    const m = big.subarray(1, 4);
    const v = new Float32Array([0.5, 0.25, 4]);
    const json = serverStateToJson({ step: 7, m, v });
    expect(json).toStrictEqual({ step: 7, m: Buffer.from(new Float32Array([1.5, -2.25, 3e-7]).buffer).toString("base64"), v: Buffer.from(v.buffer).toString("base64") });
    const back = serverStateFromJson(JSON.parse(JSON.stringify(json)));
    expect(back).toStrictEqual({ step: 7, m: new Float32Array([1.5, -2.25, 3e-7]), v });
    expect(serverStateToJson({ step: 3 })).toStrictEqual({ step: 3 });
    expect(serverStateFromJson({ step: 3 })).toStrictEqual({ step: 3 });
  });

  it("is null for anything that is not an object, and step 0 when the step is missing or not a number", () => {
    for (const x of [null, undefined, 0, 5, "", "state", false, true]) expect(serverStateFromJson(x)).toBeNull();
    expect(serverStateFromJson({})).toStrictEqual({ step: 0 });
    expect(serverStateFromJson({ step: "x" })).toStrictEqual({ step: 0 });
    expect(serverStateFromJson({ step: "4" })).toStrictEqual({ step: 4 });
    expect(serverStateFromJson({ step: 2, m: "" })).toStrictEqual({ step: 2 });
  });
});
