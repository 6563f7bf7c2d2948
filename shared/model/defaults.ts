import type { LearningRateSchedule } from "./server-optimizer.ts";

/**
 * Training defaults of runs without DP noise, chosen with scripts/experiment-fedavg.ts on a 30 %
 * held-out carve of data/devactions (the dense model with the copy path, in process, all 51 users
 * per round, 20 rounds; held-out top-3 after round 20, bench/RESULTS.md "Non-DP devactions"):
 * FedAdam (server lr 0.1, τ 1e-3) with 1 local epoch capped at 16 steps 58.9 % at its best round;
 * 2 epochs capped at 32 steps 58.2 % at round 20, with a cosine-decayed server rate 59.1 %, with
 * the copy weights starting at 1 59.4 % — the default. Plain FedAvg (server lr 1) wins short runs
 * (47.8 % after 10 clients × 5 rounds) but stalls at 49.8 %; FedAvgM (lr 1) 50.7 % at best and
 * unstable; client Adam was worse at every rate tried (lr 3e-3 to 0.1); 3 local epochs capped at
 * 64 steps drifted (56.5 %); server lr ≥ 0.3 diverged.
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
  serverLearningRateSchedule: LearningRateSchedule;
  centralizedBatchSize?: number;
  centralizedLearningRate?: number;
  centralizedOptimizer?: "sgd" | "adam";
}

export const DEFAULT_TRAINING: TrainingDefaults = {
  localEpochs: 2,
  maxLocalSteps: 32,
  batchSize: 64,
  clientLearningRate: 0.5,
  clientOptimizer: "sgd",
  serverOptimizer: "fedadam",
  serverLearningRate: 0.1,
  serverMomentum: 0.9,
  serverLearningRateSchedule: "cosine",
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
  serverLearningRateSchedule: "constant",
};

/** Clip norm of DP runs when none is given. */
export const DP_DEFAULT_CLIP = 1;

/** DP-FedAvgM's server learning rate for a clip norm: 2 at C = 1, scaled as 1/C, capped at 100 (the run spec's bound). */
export function dpServerLearningRate(clip: number): number {
  return Math.min(100, DP_TRAINING.serverLearningRate / clip);
}
