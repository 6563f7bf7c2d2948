/**
 * What an ML team launches: model, federated schedule, privacy mechanism and phase deadlines.
 * Validated with zod at every edge (CLI, gRPC) before anything acts on it.
 */
import { z } from "zod";
import { modelSpecSchema, parameterCount, type ModelSpec } from "../model/spec.ts";
import { paddedDimension } from "../dp/index.ts";
import { DEFAULT_TRAINING, DP_TRAINING, dpServerLearningRate } from "../model/defaults.ts";
import { LEARNING_RATE_SCHEDULES } from "../model/server-optimizer.ts";
import { MAX_BITS } from "../dp/distributed-dp.ts";
import { corruptCount } from "../secagg/params.ts";
import { calibrateEvalDp, type EvalDpInput } from "../eval/eval-dp.ts";
import { SIGNAL_KINDS } from "./signal-kinds.ts";

export { modelSpecSchema };

export { SIGNAL_KINDS };

export const deadlinesSchema = z
  .object({
    selectionMs: z.number().int().min(100).max(3_600_000),
    advertiseMs: z.number().int().min(100).max(3_600_000),
    shareMs: z.number().int().min(100).max(3_600_000),
    maskedInputMs: z.number().int().min(100).max(24 * 3_600_000),
    unmaskMs: z.number().int().min(100).max(3_600_000),
  })
  .strict();

/** Largest gRPC message either side accepts (shared/transport/proto.ts uses this value). */
export const MAX_WIRE_MESSAGE_BYTES = 16 * 1024 * 1024;
/** A checkpoint is stored and sent whole; 64 MiB at most, and never more than a message can carry. */
export const MAX_CHECKPOINT_BYTES = 64 * 1024 * 1024;
/** Room for the rest of an invitation or masked-input message around the vector. */
const MESSAGE_HEADROOM = 64 * 1024;

/** Why a model cannot be trained over the wire (checkpoint or masked input too large), if it cannot. */
export function modelWireProblem(model: ModelSpec, bits: number): string | undefined {
  const params = parameterCount(model);
  const limit = Math.min(MAX_CHECKPOINT_BYTES, MAX_WIRE_MESSAGE_BYTES - MESSAGE_HEADROOM);
  const checkpoint = params * 4;
  const masked = paddedDimension(params) * (bits > 32 ? 8 : 4);
  const mib = (x: number): string => (x / 2 ** 20).toFixed(1);
  if (checkpoint > limit) return `the model has ${params} parameters: its checkpoint (${mib(checkpoint)} MiB) exceeds the ${mib(limit)} MiB one message can carry`;
  if (masked > MAX_WIRE_MESSAGE_BYTES - MESSAGE_HEADROOM) return `the model has ${params} parameters: its masked input at ${bits} bits (${mib(masked)} MiB) exceeds the ${mib(MAX_WIRE_MESSAGE_BYTES - MESSAGE_HEADROOM)} MiB one message can carry`;
  return undefined;
}

export const initialModelSchema = z
  .object({
    checkpoint: z.string().min(1).max(4096),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, "64 lowercase hex digits"),
    /** Only public data may seed a run: its training costs no privacy budget. */
    source: z.literal("public"),
    /** What the public data was (a path or a name), for the reviewer. */
    dataset: z.string().min(1).max(4096),
  })
  .strict();

/**
 * Adaptive clipping (shared/dp/adaptive-clip.ts; Andrew et al. 2021): `clip` becomes the initial
 * C, moved each round towards the `targetQuantile` of the devices' update norms. The bounds keep
 * the estimate meaningful: a quantile in [0.05, 0.95], a geometric rate ≤ 1 per round (the
 * reference uses 0.2), and count noise σ_b in devices (reference 0.05 · cohort).
 */
export const adaptiveClipSchema = z
  .object({
    targetQuantile: z.number().min(0.05).max(0.95),
    learningRate: z.number().gt(0).max(1),
    countStddev: z.number().positive().max(1e6),
  })
  .strict();

/**
 * Federated evaluation (shared/eval): every `everyRounds` training rounds and after the last one,
 * a cohort evaluates the global model on the most recent `heldOutFraction` of each device's store
 * (which local training then never uses) and returns counts only, at most
 * `maxExamplesPerDevice` examples each, summed by secure aggregation with DDG noise of
 * multiplier `noiseMultiplier` (0: exact counts, recorded in the ledger as non-private).
 */
export const evaluationSchema = z
  .object({
    everyRounds: z.number().int().min(1).max(100_000),
    heldOutFraction: z.number().min(0.01).max(0.5),
    maxExamplesPerDevice: z.number().int().min(1).max(100_000),
    noiseMultiplier: z.number().min(0).max(1000),
  })
  .strict();

export const runSpecSchema = z
  .object({
    name: z.string().min(1).max(100).regex(/^[\w.-]+$/, "letters, digits, '.', '_' and '-' only"),
    model: modelSpecSchema,
    rounds: z.number().int().min(1).max(100_000),
    cohortSize: z.number().int().min(2).max(100_000),
    minSurvivors: z.number().int().min(2).max(100_000),
    /** Devices in the population the cohort is drawn from: the sampling claim behind population ε. */
    populationSize: z.number().int().min(2).max(10_000_000),
    localEpochs: z.number().int().min(1).max(100),
    /** Cap on local steps per round (FedAvg's "local steps"); bounds a round's device time. */
    maxLocalSteps: z.number().int().min(1).max(1_000_000),
    batchSize: z.number().int().min(1).max(4096),
    clientLearningRate: z.number().positive().max(100),
    clientOptimizer: z.enum(["sgd", "adam"]),
    serverOptimizer: z.enum(["fedavg", "fedavgm", "fedadam"]),
    serverLearningRate: z.number().positive().max(100),
    serverMomentum: z.number().min(0).max(0.999),
    /** How the server learning rate moves over the rounds (shared/model/server-optimizer.ts); absent: constant. */
    serverLearningRateSchedule: z.enum(LEARNING_RATE_SCHEDULES).optional(),
    clip: z.number().positive().max(1e6),
    noiseMultiplier: z.number().min(0).max(1000),
    delta: z.number().gt(0).lt(1),
    mechanism: z.enum(["ddgauss", "skellam"]),
    /** Modulus bits; above MAX_BITS (52) the summed values stop being exact float64 integers. */
    bits: z.number().int().min(32).max(MAX_BITS),
    dropoutTolerance: z.number().min(0).max(0.9),
    corruptTolerance: z.number().min(0).max(0.5),
    signals: z.array(z.enum(SIGNAL_KINDS)).min(1),
    deadlines: deadlinesSchema,
    seed: z.number().int().min(0).max(2 ** 31 - 1),
    /**
     * The initial model, trained on public data only (`tacit model pretrain`): a checkpoint on
     * the coordinator's disk pinned by the SHA-256 of its weights. Absent: seeded random init.
     */
    initialModel: initialModelSchema.optional(),
    adaptiveClip: adaptiveClipSchema.optional(),
    evaluation: evaluationSchema.optional(),
  })
  .strict()
  .refine((s) => s.minSurvivors <= s.cohortSize, { message: "minSurvivors cannot exceed cohortSize", path: ["minSurvivors"] })
  .refine((s) => s.cohortSize <= s.populationSize, { message: "cohortSize cannot exceed populationSize", path: ["cohortSize"] })
  // The noise is sized for the honest survivors alone (minSurvivors − ⌈corruptTolerance·cohortSize⌉).
  .refine((s) => s.minSurvivors > corruptCount(s.cohortSize, s.corruptTolerance), { message: "minSurvivors must exceed the colluders tolerated (⌈corruptTolerance · cohortSize⌉): the noise is sized for the honest survivors alone", path: ["minSurvivors"] })
  // z = (z_Δ⁻² + (2σ_b)⁻²)^(−½) has a solution z_Δ only when 2σ_b > z (adaptive-clip.ts).
  .refine((s) => !s.adaptiveClip || s.noiseMultiplier === 0 || 2 * s.adaptiveClip.countStddev > s.noiseMultiplier, { message: "adaptiveClip.countStddev must exceed noiseMultiplier / 2: the clip count's noise is part of the run's noise multiplier", path: ["adaptiveClip", "countStddev"] })
  // Exact counts carry no DP guarantee: on a DP run they would void the ε its rounds promise.
  .refine((s) => !(s.evaluation && s.noiseMultiplier > 0 && s.evaluation.noiseMultiplier === 0), { message: "a DP run (noiseMultiplier > 0) must noise its evaluation counts too (evaluation.noiseMultiplier > 0): exact counts carry no DP guarantee", path: ["evaluation", "noiseMultiplier"] })
  .superRefine((s, ctx) => {
    const problem = modelWireProblem(s.model, s.bits);
    if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem, path: ["model"] });
    if (s.evaluation) {
      try {
        calibrateEvalDp(evalDpInputs(s.evaluation, { minSurvivors: s.minSurvivors, colluders: corruptCount(s.cohortSize, s.corruptTolerance), maxSummands: s.cohortSize, bits: s.bits }));
      } catch (err) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: (err as Error).message, path: ["evaluation"] });
      }
    }
  });

export type RunSpec = z.infer<typeof runSpecSchema>;
export type EvaluationSpec = z.infer<typeof evaluationSchema>;

/** The evaluation DP calibration inputs, from the spec's evaluation block and the round's SecAgg sizes. */
export function evalDpInputs(e: Pick<EvaluationSpec, "maxExamplesPerDevice" | "noiseMultiplier">, r: { minSurvivors: number; colluders: number; maxSummands: number; bits: number }): EvalDpInput {
  return { maxExamples: e.maxExamplesPerDevice, noiseMultiplier: e.noiseMultiplier, ...r };
}

/**
 * Evaluation rounds have round numbers of their own, above any training round's (rounds ≤
 * 100,000), so that devices, RPC handlers and the ledger never mistake one for the other.
 */
export const EVAL_ROUND_BASE = 1_000_000;
export const evalRoundNumber = (afterRound: number): number => EVAL_ROUND_BASE + afterRound;

/** Whether an evaluation round follows training round `round` (0-based) of a run of `rounds`. */
export function evaluatesAfter(spec: Pick<RunSpec, "rounds" | "evaluation">, round: number): boolean {
  if (!spec.evaluation) return false;
  return round === spec.rounds - 1 || (round + 1) % spec.evaluation.everyRounds === 0;
}
export type Deadlines = z.infer<typeof deadlinesSchema>;

export const DEFAULT_DEADLINES: Deadlines = {
  selectionMs: 60_000,
  advertiseMs: 30_000,
  shareMs: 30_000,
  maskedInputMs: 600_000,
  unmaskMs: 30_000,
};

/** The training fields of a run spec from the measured defaults (shared/model/defaults.ts); DP runs (`dp`) get DP-FedAvgM. */
export function defaultTrainingFields(dp?: { clip: number }): Pick<RunSpec, "localEpochs" | "maxLocalSteps" | "batchSize" | "clientLearningRate" | "clientOptimizer" | "serverOptimizer" | "serverLearningRate" | "serverMomentum" | "serverLearningRateSchedule"> {
  const t = dp ? { ...DP_TRAINING, serverLearningRate: dpServerLearningRate(dp.clip) } : DEFAULT_TRAINING;
  return {
    localEpochs: t.localEpochs,
    maxLocalSteps: t.maxLocalSteps,
    batchSize: t.batchSize,
    clientLearningRate: t.clientLearningRate,
    clientOptimizer: t.clientOptimizer,
    serverOptimizer: t.serverOptimizer,
    serverLearningRate: t.serverLearningRate,
    serverMomentum: t.serverMomentum ?? 0,
    serverLearningRateSchedule: t.serverLearningRateSchedule,
  };
}

export class RunSpecError extends Error {
  override name = "RunSpecError";
}

/** Parses untrusted JSON into a RunSpec, naming every offending field. */
export function parseRunSpec(input: unknown): RunSpec {
  let value = input;
  if (typeof input === "string") {
    try {
      value = JSON.parse(input);
    } catch (err) {
      throw new RunSpecError(`run spec is not valid JSON: ${(err as Error).message}`);
    }
  }
  const parsed = runSpecSchema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    throw new RunSpecError(`invalid run spec: ${issues}`);
  }
  return parsed.data;
}

/**
 * Why a spec is a poor idea under DP, one sentence each (empty when fine). FedAdam divides by
 * the root of a second moment that, under noise, is mostly the noise itself: its steps blow up
 * on coordinates that carry no signal (measured: ε 8 top-3 0.126 with FedAdam vs 0.42 with
 * server momentum on the same model).
 */
export function dpSpecProblems(spec: Pick<RunSpec, "noiseMultiplier" | "serverOptimizer">): string[] {
  const out: string[] = [];
  if (spec.noiseMultiplier > 0 && spec.serverOptimizer === "fedadam") {
    out.push("serverOptimizer fedadam diverges under DP noise (it normalises coordinates whose second moment is mostly noise); use fedavgm (DP-FedAvg with server momentum)");
  }
  return out;
}

/**
 * The launch-time form of `dpSpecProblems`, the one rule `tacit simulate` (simulation/recipe.ts),
 * `tacit run launch` (cli/commands/run.ts) and the coordinator's LaunchRun all apply: a spec
 * with noise and a server optimizer the DP recipe disallows is refused, naming why.
 */
export function assertDpRecipe(spec: Pick<RunSpec, "noiseMultiplier" | "serverOptimizer">): void {
  const problems = dpSpecProblems(spec);
  if (problems.length > 0) throw new RunSpecError(`refusing a DP run: ${problems.join("; ")}`);
}
