/**
 * Training defaults, chosen with scripts/experiment-fedavg.ts on data/devactions (in process,
 * all 51 users per round, 20 rounds; held-out top-3 after round 20): FedAvgM (server lr 1,
 * momentum 0.9) 0.473; FedAvgM with 32 steps of 32 examples 0.40 at round 15; client Adam
 * (lr 3e-3) + FedAvg 0.19 at round 15; FedAdam (τ 1e-3) with server lr 0.03: 0.551, with server
 * lr 0.1: 0.543 already at round 10 — the default.
 * 16 local steps of 64 examples bound a round to ~25 s on two cores (see bench/RESULTS.md).
 */
export interface TrainingDefaults {
  localEpochs: number;
  maxLocalSteps: number;
  batchSize: number;
  clientLearningRate: number;
  clientOptimizer: "sgd" | "adam";
  serverOptimizer: "fedavg" | "fedavgm" | "fedadam";
  serverLearningRate: number;
  serverMomentum?: number;
  centralizedBatchSize?: number;
  centralizedLearningRate?: number;
  centralizedOptimizer?: "sgd" | "adam";
}

export const DEFAULT_TRAINING: TrainingDefaults = {
  localEpochs: 1,
  maxLocalSteps: 16,
  batchSize: 64,
  clientLearningRate: 0.5,
  clientOptimizer: "sgd",
  serverOptimizer: "fedadam",
  serverLearningRate: 0.1,
  serverMomentum: 0.9,
  centralizedBatchSize: 32,
  centralizedLearningRate: 0.5,
  centralizedOptimizer: "sgd",
};

/**
 * Training under DP noise (DP-FedAvg with server momentum), from the replica's measurements
 * (../shared/findings/dp-utility-2026-11-30.md) and re-measured in bench/RESULTS.md: FedAdam
 * normalises coordinates whose second moment is all noise and diverges, so DP runs use server
 * momentum 0.9; local work is about two epochs (min(16, ⌈2·examples/64⌉) SGD steps of 64 at
 * lr 0.1 — from the public model, lr 0.2 made 9 of 150 devices of devactions-large diverge in one
 * round here, lr 0.1 2 of 150; the replica saw ~7 % at lr 0.5); the server step is 2 at clip 1 and
 * scales as 1/clip (the mean clipped delta shrinks with the clip; see dpServerLearningRate).
 */
export const DP_TRAINING: TrainingDefaults = {
  localEpochs: 2,
  maxLocalSteps: 16,
  batchSize: 64,
  clientLearningRate: 0.1,
  clientOptimizer: "sgd",
  serverOptimizer: "fedavgm",
  serverLearningRate: 2,
  serverMomentum: 0.9,
};

/** Clip norm of DP runs when none is given. */
export const DP_DEFAULT_CLIP = 1;

/** DP-FedAvgM's server learning rate for a clip norm: 2 at C = 1, scaled as 1/C, capped at 100 (the run spec's bound). */
export function dpServerLearningRate(clip: number): number {
  return Math.min(100, DP_TRAINING.serverLearningRate / clip);
}
