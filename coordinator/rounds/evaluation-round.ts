/**
 * A federated evaluation round (shared/eval): the same SecAgg phases as a training round
 * (round-runner.ts) — invite → AdvertiseKeys → ShareKeys → MaskedInput → ConsistencyCheck →
 * Unmasking — but the invitation's signed config is a `tacit-eval-v1` config, each device
 * contributes a 7-value vector of (optionally noised) held-out counts instead of a model
 * update, and the unmasked sum becomes metrics instead of a new checkpoint. The model is never
 * changed, so an evaluation that fails (too few devices, a refused aggregate) is recorded and
 * the run goes on: evaluation never blocks training.
 */
import { randomBytes } from "node:crypto";
import type { ModularVector } from "../../shared/modular/index.ts";
import { SecAggError, type SecAggParams } from "../../shared/secagg/index.ts";
import { checkedEvalSum, evalDpEvent, evalErrorBound, metricsFromSums, sumsFromVector, type EvalDpConfig, type FederatedEvalSums } from "../../shared/eval/index.ts";
import type { DpEvent } from "../../shared/dp/index.ts";
import { evalDpFor, evalRoundNumber, signRoundConfig, type CohortCommitment, type RoundConfig } from "../../shared/run/index.ts";
import { ActiveRound, type Attestation } from "./active-round.ts";
import type { RoundContext } from "./round-context.ts";
import { cohortTree, commonConfig, secaggParams, selectCohort } from "./round-setup.ts";
import { emptyCounts, openActiveRound, runSecAggPhases, tellCohort } from "./secagg-phases.ts";
import { causeOf, describe, statusOf } from "./round-interrupt.ts";
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

/** What an evaluation knows before it invites anyone: the model it evaluates and how to record its end. */
interface Evaluation {
  run: RunRecord;
  afterRound: number;
  round: number;
  modelHash: string;
  record(status: EvaluationRecord["status"], detail: string, extra?: Partial<EvaluationRecord>): EvaluationRecord;
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
  const e: Evaluation = {
    run, afterRound, round, modelHash: current.hash,
    record: (status, detail, extra = {}) => ({ afterRound, round, status, modelHash: current.hash, cohort: 0, survivors: 0, noiseMultiplier: ev.noiseMultiplier, detail, startedAt, endedAt: Date.now(), ...extra }),
  };
  let selected: Awaited<ReturnType<typeof selectCohort>>;
  try {
    selected = await selectCohort(ctx, run, signal);
  } catch (err) {
    return e.record(statusOf(causeOf(err)), `stopped during selection: ${describe(err)}`);
  }
  const cohortIds = selected.members.map((m) => m.deviceId);
  if (cohortIds.length < spec.minSurvivors) return e.record("aborted", `only ${cohortIds.length} eligible devices connected, the evaluation needs at least minSurvivors=${spec.minSurvivors}`, { cohort: cohortIds.length });

  const tree = cohortTree(selected.members);
  const cohort = tree.commitment;
  const config = evaluationConfig(e, cohort, secaggParams(spec, cohortIds.length));
  const dp = evalDpFor(config);
  const signed = signRoundConfig(config, ctx.signingKey.privateKey);
  const active = new ActiveRound(config, tree, cohortIds);
  const close = openActiveRound(ctx, active, signal);
  let result: EvaluationRecord;
  let survivorIds: string[] = [];
  let attestations: Attestation[] = [];
  try {
    // An evaluation persists no phase progress and names no culprits: only training rounds do.
    const { sum, survivors } = await runSecAggPhases({
      ctx, active, signal, counts: emptyCounts(),
      invitation: { json: signed.json, signature: signed.signature, weights: current.weights },
      unmaskMs: spec.deadlines.unmaskMs,
    });
    result = evaluationResult(e, dp, sum, survivors, cohort.size);
    survivorIds = survivors.map((i) => active.deviceByIndex.get(i)!);
    attestations = survivors.map((i) => active.attestations.get(i)).filter((a): a is Attestation => a !== undefined);
  } catch (err) {
    const phase = active.phase;
    active.phase = "finished";
    const why = err instanceof SecAggError ? `secure aggregation aborted in phase ${phase}` : `stopped in phase ${phase}`;
    result = e.record(statusOf(causeOf(err)), `${why}: ${describe(err)}`, { cohort: cohort.size });
  } finally {
    close();
  }
  const declined = [...active.declines.keys()].map((i) => active.deviceByIndex.get(i)!).sort();
  await ctx.evaluations.evaluation({ run, record: result, cohort: cohortIds, survivors: survivorIds, declined, event: result.status === "completed" ? evalDpEvent(dp) : undefined, attestations });
  tellCohort(ctx, active, { status: result.status, modelHash: current.hash, detail: result.detail, survivors: result.survivors });
  return result;
}

/** The signed config of an evaluation: the held-out slice to count on and the evaluation's own noise. */
function evaluationConfig(e: Evaluation, cohort: CohortCommitment, params: SecAggParams): RoundConfig {
  const spec = e.run.spec;
  const ev = spec.evaluation!;
  return {
    protocol: "tacit-eval-v1",
    ...commonConfig(e.run, e.round, 0, e.modelHash, cohort, params),
    training: { localEpochs: spec.localEpochs, maxLocalSteps: spec.maxLocalSteps, batchSize: spec.batchSize, learningRate: spec.clientLearningRate, optimizer: spec.clientOptimizer, seed: 0, heldOutFraction: ev.heldOutFraction },
    // The noise of this round is the evaluation's: devices check (and attest) this multiplier.
    dp: { mechanism: spec.mechanism, clip: spec.clip, noiseMultiplier: ev.noiseMultiplier, minSurvivors: spec.minSurvivors, expectedSurvivors: cohort.size, colluders: params.colluders, delta: spec.delta, rotationSeed: randomBytes(32).toString("base64") },
    evaluation: { afterRound: e.afterRound, maxExamplesPerDevice: ev.maxExamplesPerDevice, noiseMultiplier: ev.noiseMultiplier },
  };
}

/** The unmasked counts as metrics, with the ± bound the noise puts on every count. */
function evaluationResult(e: Evaluation, dp: EvalDpConfig, sum: ModularVector, survivors: number[], cohortSize: number): EvaluationRecord {
  // An aggregate no honest cohort can send (a device's out-of-range counts, a corrupt share) is refused.
  const sums = sumsFromVector(checkedEvalSum(sum, dp, survivors.length));
  const err = evalErrorBound(dp, survivors.length);
  return e.record("completed", `${survivors.length} of ${cohortSize} devices evaluated ${sums.examples} held-out examples`, {
    cohort: cohortSize, survivors: survivors.length, sums, metrics: metricsFromSums(sums), errorBound: { counts: err.bound, failureProbability: err.failureProbability },
  });
}
