/**
 * Executes one round of a run as a sequence of phases with deadlines:
 * select → invite/AdvertiseKeys → ShareKeys → MaskedInput → Unmasking → decode → server
 * optimizer → checkpoint. Whatever stops a round before its commit point — a SecAgg failure (too
 * few survivors at some phase), any other error (a full disk, a Redis error), a cancel or a
 * shutdown — ends the attempt cleanly: the model is left unchanged, every invited device is told
 * the outcome, and the scheduler records the attempt and decides whether to retry.
 * Cancels and shutdowns are seen at the next phase boundary: the running phase's gate is ended
 * at once, so a boundary is never further away than the current message fan-out.
 */
import { randomBytes } from "node:crypto";
import { SecAggError, type SecAggParams } from "../../shared/secagg/index.ts";
import type { ModularVector } from "../../shared/modular/index.ts";
import { calibrateDistributedDp, decodeAggregate, impossibleAggregate, roundEvent, type DpEvent } from "../../shared/dp/index.ts";
import { applyServerUpdateChecked, scheduledLearningRate, weightsHash } from "../../shared/model/index.ts";
import { adaptClip, dpInputsFor, roundClip, signRoundConfig, type CohortCommitment, type RoundConfig } from "../../shared/run/index.ts";
import { ActiveRound, type Attestation } from "./active-round.ts";
import type { RoundContext } from "./round-context.ts";
import { cohortTree, commonConfig, secaggParams, selectCohort } from "./round-setup.ts";
import { boundary, emptyCounts, openActiveRound, runSecAggPhases, tellCohort } from "./secagg-phases.ts";
import type { CheckpointStore } from "../runs/checkpoint-store.ts";
import type { PhaseCounts, RoundRecord, RunRecord } from "../runs/run-store.ts";
import { serverStateFromJson, serverStateToJson } from "./server-state.ts";
import { failpoint, faultpoint } from "../runs/failpoint.ts";
import { causeOf, describe, statusOf, type AbortCause } from "./round-interrupt.ts";
import { recordOffence } from "../state/offences.ts";

export type { RoundContext, RoundLedgerSink } from "./round-context.ts";
export type { AbortCause } from "./round-interrupt.ts";
export { emptyCounts } from "./secagg-phases.ts";

/** A completed round's commit record, stored in its checkpoint's metadata (JSON). */
export interface RoundCommit {
  record: RoundRecord;
  cohort: string[];
  survivors: string[];
  declines: Record<string, string>;
  event: DpEvent;
  attestations: { deviceId: string; identityPublicKey: string; body: string; signature: string }[];
}

/**
 * Names in the ledger every device the SecAgg server's reconstruction proved wrong this round,
 * once per device, whether the round then completed (wrong shares corrected) or aborted.
 */
async function nameCulprits(ctx: RoundContext, active: ActiveRound): Promise<void> {
  if (!ctx.offences) return;
  for (const [index, reason] of active.secagg.culprits) {
    const deviceId = active.deviceByIndex.get(index);
    if (deviceId) await recordOffence({ ledger: ctx.offences, hub: ctx.hub }, { deviceId, runId: active.config.runId, round: active.config.round, reason });
  }
}

/** How an attempt ended. A completed one is committed and published; the others are not. */
export type RoundResult =
  | { status: "completed"; record: RoundRecord }
  | {
      status: "aborted" | "cancelled";
      record: RoundRecord;
      cohort: string[];
      declines: Record<string, string>;
      cause: AbortCause;
    };

/**
 * An error after the round's commit point (the checkpoint is durable, publishing it failed):
 * the round is committed and must be published again, never re-run.
 */
export class PublishError extends Error {
  override name = "PublishError";
}

type Checkpoint = NonNullable<Awaited<ReturnType<CheckpointStore["latest"]>>>;

/** One attempt at a round: the model it starts from and its record as the phases fill it in. */
interface Attempt {
  ctx: RoundContext;
  run: RunRecord;
  round: number;
  attempt: number;
  signal: AbortSignal;
  current: Checkpoint;
  counts: PhaseCounts;
  base: Omit<RoundRecord, "status" | "survivors" | "modelHashAfter" | "detail" | "endedAt">;
}

/** An attempt that ends before its commit point: the model is left unchanged. */
function ended(a: Attempt, status: "aborted" | "cancelled", cause: AbortCause, detail: string, cohort: string[], declines: Record<string, string>): RoundResult {
  return { status, cause, cohort, declines, record: { ...a.base, status, survivors: 0, modelHashAfter: a.current.hash, detail, endedAt: Date.now() } };
}

/**
 * Runs one attempt at round `round`: selection, the SecAgg phases (secagg-phases.ts), then the
 * server step and the commit. A failure in selection or in the phases, and a cancel or shutdown,
 * are returned as an aborted or cancelled result; reading the checkpoint or building the config
 * may throw, and a failure after the commit point throws a PublishError.
 */
export async function executeRound(ctx: RoundContext, run: RunRecord, round: number, attempt: number, signal: AbortSignal = new AbortController().signal): Promise<RoundResult> {
  const spec = run.spec;
  const startedAt = Date.now();
  faultpoint("checkpoint-read", round);
  const current = await ctx.checkpoints.latest(run.runId);
  if (!current) throw new Error(`run ${run.runId} has no checkpoint`);
  const counts = emptyCounts();
  const secagg = { threshold: 0, degree: 0, mode: "", guarantee: "", bits: spec.bits };
  const a: Attempt = { ctx, run, round, attempt, signal, current, counts, base: { round, attempt, cohort: 0, modelHashBefore: current.hash, phases: counts, secagg, startedAt } };
  let selected: Awaited<ReturnType<typeof selectCohort>>;
  try {
    await ctx.onPhase?.(run.runId, round, "selection", { attempt, cohort: [], counts });
    selected = await selectCohort(ctx, run, signal);
  } catch (err) {
    // Nobody was invited yet: there is no one to tell.
    const cause = causeOf(err);
    return ended(a, statusOf(cause), cause, `stopped during selection: ${describe(err)}`, [], {});
  }
  const cohortIds = selected.members.map((m) => m.deviceId);
  a.base.cohort = cohortIds.length;
  counts.invited = cohortIds.length;
  if (cohortIds.length < spec.minSurvivors) {
    return ended(a, "aborted", "too-few-devices", `only ${cohortIds.length} eligible devices connected, the run needs at least minSurvivors=${spec.minSurvivors}`, cohortIds, {});
  }
  const params = secaggParams(spec, cohortIds.length);
  a.base.secagg = { threshold: params.threshold, degree: params.degree, mode: params.mode, guarantee: params.guarantee, bits: spec.bits };
  const tree = cohortTree(selected.members);
  const cohort = tree.commitment;
  const config = trainingConfig(a, cohort, params);
  // What the ledger records about this round's privacy: the pool the cohort was drawn from, the
  // sampling scheme, the collusion assumption behind σ², and the wrap-around bound.
  a.base.privacy = {
    eligible: selected.eligible.length,
    sampling: "fixed-size-without-replacement",
    colluders: params.colluders,
    honestNoiseShares: spec.minSurvivors - params.colluders,
    wrapProbability: calibrateDistributedDp(dpInputsFor(config)).overflowProbabilityBound,
  };
  const signed = signRoundConfig(config, ctx.signingKey.privateKey);
  const active = new ActiveRound(config, tree, cohortIds);
  const close = openActiveRound(ctx, active, signal);
  try {
    const { sum, survivors } = await runSecAggPhases({
      ctx, active, signal, counts,
      invitation: { json: signed.json, signature: signed.signature, weights: current.weights },
      unmaskMs: spec.deadlines.unmaskMs,
      onPhase: async (phase) => {
        await ctx.onPhase?.(run.runId, round, phase, { attempt, cohort: cohortIds, counts });
      },
      // Wrong shares were corrected (or made the round abort): their senders are named either way.
      afterReconstruction: () => nameCulprits(ctx, active),
    });
    return await commitRound(a, active, sum, survivors);
  } catch (err) {
    if (err instanceof PublishError) throw err;
    return abortAttempt(a, active, err);
  } finally {
    close();
  }
}

/** The signed config of a training attempt: what the devices train, and the DP and SecAgg they apply. */
function trainingConfig(a: Attempt, cohort: CohortCommitment, params: SecAggParams): RoundConfig {
  const { run, round, attempt, current } = a;
  const spec = run.spec;
  return {
    protocol: "tacit-round-v1",
    ...commonConfig(run, round, attempt, current.hash, cohort, params),
    training: {
      localEpochs: spec.localEpochs,
      maxLocalSteps: spec.maxLocalSteps,
      batchSize: spec.batchSize,
      learningRate: spec.clientLearningRate,
      optimizer: spec.clientOptimizer,
      seed: (spec.seed * 1_000_003 + round * 7919 + attempt) % 2 ** 31,
      // Devices keep the most recent slice of their store out of training for evaluation rounds.
      ...(spec.evaluation ? { heldOutFraction: spec.evaluation.heldOutFraction } : {}),
    },
    dp: {
      mechanism: spec.mechanism,
      // Adaptive clipping: this round's C, carried in the checkpoint (shared/run/adaptive-clip-round.ts).
      clip: roundClip(spec, current.serverState),
      noiseMultiplier: spec.noiseMultiplier,
      minSurvivors: spec.minSurvivors,
      // Upper bound on the number of inputs summed: sizes the modulus headroom.
      expectedSurvivors: cohort.size,
      // Survivors that may collude with a malicious coordinator: noise is sized without theirs.
      colluders: params.colluders,
      delta: spec.delta,
      rotationSeed: randomBytes(32).toString("base64"),
      ...(spec.adaptiveClip ? { adaptiveClip: spec.adaptiveClip } : {}),
    },
  };
}

/** Decodes the noised sum, averages it over the survivors and applies the server optimizer. */
function serverStep(a: Attempt, config: RoundConfig, sum: ModularVector, survivors: number) {
  const spec = a.run.spec;
  const dp = calibrateDistributedDp(dpInputsFor(config));
  // An aggregate no honest run can produce (corrupt share, unclipped input) is never applied.
  const impossible = impossibleAggregate(sum, dp, survivors);
  if (impossible) throw new SecAggError("ABORTED", `aggregate refused: ${impossible}`);
  const deltaSum = decodeAggregate(sum, dp);
  const meanDelta = new Float32Array(config.parameterCount);
  // Uniform weighting: every survivor's delta is clipped to the same norm C, which is what
  // the sensitivity analysis assumes; weighting by example counts would let one device's
  // weight (and so its influence) exceed C / |survivors|.
  for (let i = 0; i < meanDelta.length; i++) meanDelta[i] = deltaSum[i]! / survivors;
  // Adaptive clipping: b̄ from the summed clip bits, and the next round's C (recorded in the ledger).
  const clipUpdate = adaptClip(spec, dp, sum, survivors);
  if (clipUpdate && a.base.privacy) a.base.privacy.adaptiveClip = clipUpdate;
  // Never a non-finite global model: a NaN/∞ aggregate or step aborts this attempt (issue #13).
  const next = applyServerUpdateChecked(
    serverStateFromJson(a.current.serverState),
    a.current.weights,
    meanDelta,
    { optimizer: spec.serverOptimizer, learningRate: scheduledLearningRate(spec.serverLearningRate, spec.serverLearningRateSchedule ?? "constant", a.round, spec.rounds), momentum: spec.serverMomentum },
  );
  return { dp, next, clipUpdate };
}

/** Declines by device id (the SecAgg server knows cohort indices only). */
function declinesByDevice(active: ActiveRound): Record<string, string> {
  return Object.fromEntries([...active.declines].map(([i, r]) => [active.deviceByIndex.get(i)!, r]));
}

/** The completed round's record, and the commit record its checkpoint carries. */
function roundCommit(a: Attempt, active: ActiveRound, survivors: number[], modelHashAfter: string, event: DpEvent): RoundCommit {
  const deviceOf = (i: number): string => active.deviceByIndex.get(i)!;
  const cohort = active.cohortDevices();
  const record: RoundRecord = {
    ...a.base,
    status: "completed",
    survivors: survivors.length,
    modelHashAfter,
    detail: `${survivors.length} of ${cohort.length} devices survived`,
    endedAt: Date.now(),
  };
  const attestations = survivors
    .map((i) => active.attestations.get(i))
    .filter((x): x is Attestation => x !== undefined)
    .map((x) => ({ deviceId: x.deviceId, identityPublicKey: x.identityPublicKey, body: x.body, signature: Buffer.from(x.signature).toString("base64") }));
  return { record, cohort, survivors: survivors.map(deviceOf), declines: declinesByDevice(active), event, attestations };
}

/**
 * Applies the sum and commits the round. The commit point: the checkpoint directory, carrying
 * its commit record, is renamed into place atomically. Ledger, LATEST and Redis follow (and are
 * redone after a crash), so a failure after it is a PublishError, never an aborted attempt.
 */
async function commitRound(a: Attempt, active: ActiveRound, sum: ModularVector, survivors: number[]): Promise<RoundResult> {
  const { ctx, run, round } = a;
  const { dp, next, clipUpdate } = serverStep(a, active.config, sum, survivors.length);
  const hashAfter = weightsHash(next.weights);
  const commit = roundCommit(a, active, survivors, hashAfter, roundEvent(dp));
  // The last boundary: a cancel that arrives before the commit point is never released.
  await boundary(ctx, run.runId, a.signal);
  faultpoint("checkpoint-write", round);
  await ctx.checkpoints.write(run.runId, round, run.spec.model, next.weights, { ...serverStateToJson(next.state), ...(clipUpdate ? { clip: clipUpdate.nextClip } : {}) }, commit);
  try {
    failpoint("after-checkpoint", round);
    await ctx.commit(run.runId, round);
    tellCohort(ctx, active, { status: "completed", modelHash: hashAfter, detail: commit.record.detail, survivors: survivors.length });
  } catch (err) {
    throw new PublishError(`round ${round} of run ${run.runId} is committed, but publishing it failed: ${describe(err)}`, { cause: err });
  }
  return { status: "completed", record: commit.record };
}

/** Ends an attempt stopped before its commit point: its cause recorded, every invited device told. */
function abortAttempt(a: Attempt, active: ActiveRound, err: unknown): RoundResult {
  const phase = active.phase;
  active.phase = "finished";
  const cause = causeOf(err);
  const status = statusOf(cause);
  const detail =
    cause === "secagg" ? `secure aggregation aborted in phase ${phase}: ${describe(err)}`
    : cause === "error" ? `error in phase ${phase}: ${describe(err)}`
    : `${describe(err)} during phase ${phase}`;
  const cohort = active.cohortDevices();
  const res = ended(a, status, cause, detail, cohort, declinesByDevice(active));
  tellCohort(a.ctx, active, { status, modelHash: a.current.hash, detail, survivors: 0 });
  return res;
}
