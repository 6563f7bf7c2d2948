/** Training defaults, chosen with scripts/experiment-fedavg.ts (see bench/RESULTS.md). */
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
  serverOptimizer: "fedavgm",
  serverLearningRate: 1,
  serverMomentum: 0.9,
  centralizedBatchSize: 32,
  centralizedLearningRate: 0.5,
  centralizedOptimizer: "sgd",
};
