/**
 * A federated evaluation round (shared/eval): the same SecAgg phases as a training round
 * (round-runner.ts) — invite → AdvertiseKeys → ShareKeys → MaskedInput → ConsistencyCheck →
 * Unmasking — but the invitation's signed config is a `tacit-eval-v1` config, each device
 * contributes a 7-value vector of (optionally noised) held-out counts instead of a model
 * update, and the unmasked sum becomes metrics instead of a new checkpoint. The model is never
 * changed, so an evaluation that fails (too few devices, a refused aggregate) is recorded and
 * the run goes on: evaluation never blocks training.
 */
import { randomBytes, type KeyObject } from "node:crypto";
import { publicKeyFromRaw } from "../../shared/crypto/index.ts";
import { chooseParams, SecAggError } from "../../shared/secagg/index.ts";
import { checkedEvalSum, evalDpEvent, evalErrorBound, metricsFromSums, sumsFromVector, type FederatedEvalSums } from "../../shared/eval/index.ts";
import type { DpEvent } from "../../shared/dp/index.ts";
import { parameterCount } from "../../shared/model/index.ts";
import { evalDpFor, evalRoundNumber, signRoundConfig, type RoundConfig } from "../../shared/run/index.ts";
import { ActiveRound, type Attestation } from "./active-round.ts";
import { PhaseGate } from "./phase-gate.ts";
import { runConsistencyPhase } from "./consistency-phase.ts";
import { sampleCohort } from "./cohort.ts";
import { RoundInterrupted } from "./round-interrupt.ts";
import type { RoundContext } from "./round-runner.ts";
import type { RunRecord } from "../runs/run-store.ts";

/** What `tacit run status` shows and the ledger records of one evaluation. */
export interface EvaluationRecord {
  afterRound: number;
  round: number;
  status: "completed" | "aborted" | "cancelled";
  modelHash: string;
  cohort: number;
  survivors: number;
  noiseMultiplier: number;
  sums?: FederatedEvalSums;
  metrics?: ReturnType<typeof metricsFromSums>;
  /** ± bound on every summed count (probability ≤ failureProbability to exceed); 0 without noise. */
  errorBound?: { counts: number; failureProbability: number };
  detail: string;
  startedAt: number;
  endedAt: number;
}

export interface EvaluationLedgerSink {
  evaluation(e: { run: RunRecord; record: EvaluationRecord; cohort: string[]; survivors: string[]; declined: string[]; event: DpEvent | undefined; attestations: Attestation[] }): Promise<void>;
}

async function waitForEligible(ctx: RoundContext, want: number, deadline: number, signal: AbortSignal): Promise<string[]> {
  for (;;) {
    if (signal.aborted) throw signal.reason;
    const eligible = ctx.hub.eligibleDevices();
    if (eligible.length >= want || Date.now() >= deadline) return eligible;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Sends one message to each index; a device not connected is settled (dropped) at once. */
async function fanOut(ctx: RoundContext, active: ActiveRound, indices: number[], msg: (i: number) => Parameters<RoundContext["hub"]["send"]>[1]): Promise<void> {
  for (const [n, i] of indices.entries()) {
    if (!ctx.hub.send(active.deviceByIndex.get(i)!, msg(i))) active.gate!.settle(i);
    if (n % 64 === 63) await new Promise((r) => setImmediate(r));
  }
  await active.gate!.done;
}

/** Runs the evaluation of the model committed by training round `afterRound`; never throws for a failed round. */
export async function executeEvaluation(ctx: RoundContext & { evaluations: EvaluationLedgerSink }, run: RunRecord, afterRound: number, signal: AbortSignal): Promise<EvaluationRecord> {
  const spec = run.spec;
  const ev = spec.evaluation;
  if (!ev) throw new Error(`run ${run.runId} does not evaluate`);
  const round = evalRoundNumber(afterRound);
  const startedAt = Date.now();
  const current = await ctx.checkpoints.latest(run.runId);
  if (!current) throw new Error(`run ${run.runId} has no checkpoint`);
  const rec = (status: EvaluationRecord["status"], detail: string, extra: Partial<EvaluationRecord> = {}): EvaluationRecord => ({
    afterRound, round, status, modelHash: current.hash, cohort: 0, survivors: 0, noiseMultiplier: ev.noiseMultiplier, detail, startedAt, endedAt: Date.now(), ...extra,
  });
  const boundary = async (): Promise<void> => {
    if (signal.aborted) throw signal.reason;
    if (await ctx.isCancelled?.(run.runId)) throw new RoundInterrupted("cancelled");
  };

  let registered: { deviceId: string; identityPublicKey: string }[];
  try {
    const eligible = await waitForEligible(ctx, spec.cohortSize, Date.now() + spec.deadlines.selectionMs, signal);
    await boundary();
    registered = [];
    for (const deviceId of sampleCohort(eligible, spec.cohortSize)) {
      const r = await ctx.registry.get(deviceId);
      if (r) registered.push({ deviceId, identityPublicKey: r.identityPublicKey });
    }
  } catch (err) {
    return rec(err instanceof RoundInterrupted && err.reason === "cancelled" ? "cancelled" : "aborted", `stopped during selection: ${(err as Error).message}`);
  }
  const cohortIds = registered.map((r) => r.deviceId);
  if (cohortIds.length < spec.minSurvivors) return rec("aborted", `only ${cohortIds.length} eligible devices connected, the evaluation needs at least minSurvivors=${spec.minSurvivors}`, { cohort: cohortIds.length });

  const params = chooseParams({ cohortSize: cohortIds.length, dropoutFraction: spec.dropoutTolerance, corruptFraction: spec.corruptTolerance, minSurvivors: spec.minSurvivors });
  const identityKeys = new Map<number, KeyObject>();
  const cohort: RoundConfig["cohort"] = registered.map((r, index) => {
    identityKeys.set(index, publicKeyFromRaw(Buffer.from(r.identityPublicKey, "base64")));
    // Peers see indices and identity keys only (finding L1); index → device id stays here.
    return { index, identityPublicKey: r.identityPublicKey };
  });
  const d = spec.deadlines;
  const now = Date.now();
  const config: RoundConfig = {
    protocol: "tacit-eval-v1",
    runId: run.runId,
    round,
    attempt: 0,
    modelHash: current.hash,
    parameterCount: parameterCount(spec.model),
    model: spec.model,
    training: { localEpochs: spec.localEpochs, maxLocalSteps: spec.maxLocalSteps, batchSize: spec.batchSize, learningRate: spec.clientLearningRate, optimizer: spec.clientOptimizer, seed: 0, heldOutFraction: ev.heldOutFraction },
    // The noise of this round is the evaluation's: devices check (and attest) this multiplier.
    dp: { mechanism: spec.mechanism, clip: spec.clip, noiseMultiplier: ev.noiseMultiplier, minSurvivors: spec.minSurvivors, expectedSurvivors: cohort.length, colluders: params.colluders, delta: spec.delta, rotationSeed: randomBytes(32).toString("base64") },
    secagg: { bits: spec.bits, threshold: params.threshold, degree: params.degree, mode: params.mode, roundSeed: randomBytes(32).toString("base64"), guarantee: params.guarantee },
    signals: spec.signals,
    cohort,
    populationSize: spec.populationSize,
    deadlines: { advertise: now + d.advertiseMs, share: now + d.advertiseMs + d.shareMs, maskedInput: now + d.advertiseMs + d.shareMs + d.maskedInputMs, unmask: now + d.advertiseMs + d.shareMs + d.maskedInputMs + d.unmaskMs },
    issuedAt: now,
    evaluation: { afterRound, maxExamplesPerDevice: ev.maxExamplesPerDevice, noiseMultiplier: ev.noiseMultiplier },
  };
  const dp = evalDpFor(config);
  const signed = signRoundConfig(config, ctx.signingKey.privateKey);
  const active = new ActiveRound(config, identityKeys, cohortIds);
  ctx.active.set(active.key, active);
  const onDisconnect = (deviceId: string): void => active.dropDevice(deviceId);
  ctx.hub.on("disconnect", onDisconnect);
  const endPhase = (): void => active.gate?.finish();
  signal.addEventListener("abort", endPhase);
  const ref = { runId: run.runId, round };
  const deviceOf = (i: number): string => active.deviceByIndex.get(i)!;
  const declined = (): string[] => [...active.declines.keys()].map(deviceOf).sort();
  let result: EvaluationRecord;
  let survivorIds: string[] = [];
  let attestations: Attestation[] = [];
  try {
    active.gate = new PhaseGate(cohort.map((m) => m.index), config.deadlines.advertise);
    const invites = ctx.hub.encodeInvites({ ref, attempt: config.attempt, configJson: signed.json, configSignature: Buffer.from(signed.signature), checkpoint: Buffer.from(current.weights.buffer, current.weights.byteOffset, current.weights.byteLength) });
    await fanOut(ctx, active, cohort.map((m) => m.index), invites);
    await boundary();
    const roster = active.secagg.closeAdvertise();

    active.phase = "share";
    const advertisers = [...active.answered.advertise];
    active.gate = new PhaseGate(advertisers, config.deadlines.share);
    const rosterOf = ctx.hub.encodeRosters(ref, roster.map((k) => k.index), (i) => active.secagg.rosterFor(i));
    await fanOut(ctx, active, advertisers, rosterOf);
    await boundary();
    const inboxes = active.secagg.closeShareKeys();

    active.phase = "masked-input";
    const sharers = [...active.answered.share];
    active.gate = new PhaseGate(sharers, config.deadlines.maskedInput);
    await fanOut(ctx, active, sharers, (i) => ({ inbox: { ref, shares: (inboxes.get(i) ?? []).map((s) => ({ from: s.from, to: s.to, ciphertext: Buffer.from(s.ciphertext) })) } }));
    await boundary();
    const shown = active.secagg.closeMaskedInput();

    const request = await runConsistencyPhase({ hub: ctx.hub, active, ref, shown, deadline: Date.now() + d.unmaskMs });
    await boundary();

    active.phase = "unmask";
    const signers = (request.signatures ?? []).map((s) => s.index).sort((a, b) => a - b);
    active.gate = new PhaseGate(signers, Math.max(config.deadlines.unmask, Date.now() + d.unmaskMs));
    const unmaskOf = ctx.hub.encodeUnmaskRequests(ref, request.survivors, request.dropouts, request.signatures ?? [], (i) => active.secagg.neighbourhood(i));
    await fanOut(ctx, active, signers, unmaskOf);
    await boundary();
    const sum = active.secagg.finish();
    active.phase = "finished";

    const survivors = request.survivors;
    // An aggregate no honest cohort can send (a device's out-of-range counts, a corrupt share) is refused.
    const signedSum = checkedEvalSum(sum, dp, survivors.length);
    const sums = sumsFromVector(signedSum);
    const err = evalErrorBound(dp, survivors.length);
    survivorIds = survivors.map(deviceOf);
    attestations = survivors.map((i) => active.attestations.get(i)).filter((a): a is Attestation => a !== undefined);
    result = rec("completed", `${survivors.length} of ${cohort.length} devices evaluated ${sums.examples} held-out examples`, {
      cohort: cohort.length, survivors: survivors.length, sums, metrics: metricsFromSums(sums), errorBound: { counts: err.bound, failureProbability: err.failureProbability },
    });
  } catch (err) {
    const phase = active.phase;
    active.phase = "finished";
    const cancelled = err instanceof RoundInterrupted && err.reason === "cancelled";
    const why = err instanceof SecAggError ? `secure aggregation aborted in phase ${phase}` : `stopped in phase ${phase}`;
    result = rec(cancelled ? "cancelled" : "aborted", `${why}: ${(err as Error).message}`, { cohort: cohort.length });
  } finally {
    signal.removeEventListener("abort", endPhase);
    active.gate?.finish();
    ctx.hub.off("disconnect", onDisconnect);
    ctx.active.delete(active.key);
  }
  await ctx.evaluations.evaluation({ run, record: result, cohort: cohortIds, survivors: survivorIds, declined: declined(), event: result.status === "completed" ? evalDpEvent(dp) : undefined, attestations });
  for (const m of cohort) ctx.hub.send(cohortIds[m.index]!, { outcome: { ref, status: result.status, modelHash: current.hash, detail: result.detail, survivors: result.survivors } });
  return result;
}
