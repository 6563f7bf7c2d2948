/**
 * The simulation's defaults, which differ for DP runs: the measured recipe (bench/RESULTS.md,
 * ../shared/findings/dp-utility-2026-11-30.md) is DP-FedAvg with server momentum, every
 * eligible device in every round, about two local epochs capped at 16 steps, clip 1 with the
 * server step scaled to it, noise sized for 90 % of the cohort, and 10 rounds (more rounds need
 * more noise per round at the same ε). Runs without noise keep the non-DP defaults.
 */
import { TIED_COPY_MODEL_SPEC, DEFAULT_PRETRAIN, DEFAULT_TRAINING, DENSE_COPY_MODEL_SPEC, DP_DEFAULT_CLIP, DP_TRAINING, DEFAULT_PERSONALIZATION, validateFederatedWeight, type LearningRateSchedule, type ModelSpec, type PersonalizationConfig } from "../shared/model/index.ts";
import { defaultTrainingFields, dpSpecProblems, type RunSpec } from "../shared/run/index.ts";
import type { AdaptiveClipParams } from "../shared/dp/index.ts";

export type TrainingFields = ReturnType<typeof defaultTrainingFields>;

export interface RecipeInput {
  rounds?: number;
  clip?: number;
  cohort?: number;
  minSurvivors?: number;
  localEpochs?: number;
  /** Cap on a device's SGD steps per round (default 16). */
  maxLocalSteps?: number;
  serverOptimizer?: RunSpec["serverOptimizer"];
  serverLearningRate?: number;
  serverLearningRateSchedule?: LearningRateSchedule;
  /** Overrides the default personalization's base prior strength α (shared/model/personalize.ts). */
  personalizationStrength?: number;
  /** Whether the run adds DP noise (a noise multiplier > 0 or a target ε). */
  dp: boolean;
  /** Whether the run starts from a pretrained (public) model. */
  pretrained?: boolean;
  /** Adaptive clipping (Andrew et al. 2021): `clip` becomes the initial C. */
  adaptiveClip?: boolean;
  /** The federated model's weight in the released mixture with the public model (1: unmixed). */
  releaseMix?: number;
}

export interface Recipe {
  /**
   * DP runs and runs from a public pretrained model use the tied-output model with the
   * context-copy path (ε 8 on devactions-large: 57.6 % against 54.9 % without it); plain
   * federated runs the dense model with it, which their defaults were measured with (the tied
   * model at the non-DP client learning rate 0.5 diverged within 5 rounds).
   */
  model: ModelSpec;
  rounds: number;
  clip: number;
  cohort: number;
  minSurvivors: number;
  training: TrainingFields;
  /** How each device personalizes the global model for the personalized evaluation. */
  personalization: PersonalizationConfig;
  /** `--centralized`: how each epoch over the pooled data trains. */
  centralized: { batchSize: number; learningRate: number; optimizer: "sgd" | "adam" };
  /** The quantile estimate's parameters when the run clips adaptively. */
  adaptiveClip?: AdaptiveClipParams;
  /**
   * The federated model's weight w in the released predictor (1 − w)·p_public + w·p_federated
   * (shared/model/release-mix.ts); absent: the federated model is released alone.
   */
  releaseMix?: number;
}

export class RecipeError extends Error {
  override name = "RecipeError";
}

/** DP runs: rounds at ε 8 peak near 10 (findings); non-DP runs: 20. */
export const DP_DEFAULT_ROUNDS = 10;
export const DEFAULT_ROUNDS = 20;
/**
 * Adaptive clipping with the reference's defaults (TFF `gaussian_adaptive`): track the median
 * norm (γ 0.5), geometric rate η 0.2, count noise σ_b = 0.05 · cohort devices.
 */
export function defaultAdaptiveClip(cohort: number): AdaptiveClipParams {
  return { targetQuantile: 0.5, learningRate: 0.2, countStddev: Math.max(1e-3, 0.05 * cohort) };
}

/**
 * DP runs from a public model release the mixture of the two at this federated weight: chosen on a
 * validation carve (the newest 20 % of each device's training events, never the held-out 30 %),
 * where 0.75 scored best (55.06 %; 0.6–0.85 within 0.4 points)
 * (bench/RESULTS.md, "The released mixture").
 */
export const DP_RELEASE_MIX = 0.75;

/** Fraction of the cohort the DP noise is sized for (it must survive for a round to release). */
export const DP_SURVIVOR_FRACTION = 0.9;

/**
 * Fraction of the cohort SecAgg+ and the noise tolerate as colluders by default: the noise is
 * sized for minSurvivors − ⌈0.1·cohort⌉ honest devices (shared/dp/distributed-dp.ts).
 */
export const DEFAULT_CORRUPT_TOLERANCE = 0.1;

export function resolveRecipe(i: RecipeInput, population: number): Recipe {
  const clip = i.clip ?? (i.dp ? DP_DEFAULT_CLIP : 5);
  const cohort = Math.min(i.cohort ?? population, population);
  const minSurvivors = i.minSurvivors ?? (i.dp ? Math.max(2, Math.floor(cohort * DP_SURVIVOR_FRACTION)) : Math.max(2, Math.floor(cohort / 2)));
  if (minSurvivors > cohort) throw new RecipeError(`--min-survivors ${minSurvivors} exceeds the cohort of ${cohort} devices`);
  // From a pretrained model, local SGD at the non-DP default lr 0.5 diverges (training loss 1e9
  // in one round on devactions-large); such runs use the DP recipe's gentler local work.
  const gentle = !i.dp && i.pretrained ? { localEpochs: DP_TRAINING.localEpochs, maxLocalSteps: DP_TRAINING.maxLocalSteps, clientLearningRate: DP_TRAINING.clientLearningRate } : {};
  const training: TrainingFields = {
    ...defaultTrainingFields(i.dp ? { clip } : undefined),
    ...gentle,
    ...(i.localEpochs !== undefined ? { localEpochs: i.localEpochs } : {}),
    ...(i.maxLocalSteps !== undefined ? { maxLocalSteps: i.maxLocalSteps } : {}),
    ...(i.serverOptimizer !== undefined ? { serverOptimizer: i.serverOptimizer } : {}),
    ...(i.serverLearningRate !== undefined ? { serverLearningRate: i.serverLearningRate } : {}),
    ...(i.serverLearningRateSchedule !== undefined ? { serverLearningRateSchedule: i.serverLearningRateSchedule } : {}),
  };
  if (i.releaseMix !== undefined && !i.pretrained) throw new RecipeError("--release-mix mixes the federated model with the public initial model: it needs --pretrain");
  if (i.releaseMix !== undefined) validateFederatedWeight(i.releaseMix);
  const releaseMix = i.releaseMix ?? (i.dp && i.pretrained ? DP_RELEASE_MIX : undefined);
  const problems = dpSpecProblems({ noiseMultiplier: i.dp ? 1 : 0, serverOptimizer: training.serverOptimizer });
  if (problems.length > 0) throw new RecipeError(`refusing a DP run: ${problems.join("; ")}`);
  return {
    model: i.dp || i.pretrained ? TIED_COPY_MODEL_SPEC : DENSE_COPY_MODEL_SPEC,
    rounds: i.rounds ?? (i.dp ? DP_DEFAULT_ROUNDS : DEFAULT_ROUNDS),
    clip,
    cohort,
    minSurvivors,
    training,
    personalization: i.personalizationStrength === undefined ? DEFAULT_PERSONALIZATION : { ...DEFAULT_PERSONALIZATION, alpha: i.personalizationStrength },
    // From a pretrained (tied) model, SGD at lr 0.5 and batch 32 turned the weights to NaN in the
    // first epoch on devactions-large; it continues as it was pretrained (Adam 2e-3, batch 256).
    centralized: i.pretrained
      ? { batchSize: DEFAULT_PRETRAIN.batchSize, learningRate: DEFAULT_PRETRAIN.learningRate, optimizer: DEFAULT_PRETRAIN.optimizer }
      : { batchSize: DEFAULT_TRAINING.centralizedBatchSize ?? DEFAULT_TRAINING.batchSize, learningRate: DEFAULT_TRAINING.centralizedLearningRate ?? DEFAULT_TRAINING.clientLearningRate, optimizer: DEFAULT_TRAINING.centralizedOptimizer ?? DEFAULT_TRAINING.clientOptimizer },
    ...(i.adaptiveClip ? { adaptiveClip: defaultAdaptiveClip(cohort) } : {}),
    // 1 is the federated model alone: no mixture to evaluate.
    ...(releaseMix !== undefined && releaseMix < 1 ? { releaseMix } : {}),
  };
}
