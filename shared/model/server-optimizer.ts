/**
 * Server optimizers applied to the mean client delta (Reddi et al., "Adaptive Federated
 * Optimization", ICLR 2021): FedAvg (x += η·Δ), FedAvgM (server momentum), FedAdam.
 * Pure functions: state in, state out.
 */
export interface ServerOptimizerConfig {
  optimizer: "fedavg" | "fedavgm" | "fedadam";
  learningRate: number;
  momentum?: number;
  beta1?: number;
  beta2?: number;
  /** FedAdam's τ (adaptivity); Reddi et al. use 1e-3. */
  epsilon?: number;
}

/**
 * How the server learning rate moves over a run's rounds. "cosine" decays η_r = η·½(1 + cos(π·r/R))
 * for round r = 0…R−1 (never reaching 0): FedAdam's late steps at full η undo what it learned
 * (held-out loss rose from round 12 of 20 on data/devactions), and the decayed ones settle it
 * (bench/RESULTS.md, "Non-DP devactions").
 */
export const LEARNING_RATE_SCHEDULES = ["constant", "cosine"] as const;
export type LearningRateSchedule = (typeof LEARNING_RATE_SCHEDULES)[number];

export function scheduledLearningRate(base: number, schedule: LearningRateSchedule, round: number, rounds: number): number {
  if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError(`a schedule needs a positive whole number of rounds, got ${rounds}`);
  if (!Number.isInteger(round) || round < 0 || round >= rounds) throw new RangeError(`round ${round} is outside the run's rounds 0…${rounds - 1}`);
  if (schedule === "constant") return base;
  return base * 0.5 * (1 + Math.cos((Math.PI * round) / rounds));
}

export interface ServerOptimizerState {
  step: number;
  m?: Float32Array;
  v?: Float32Array;
}

export function applyServerUpdate(
  state: ServerOptimizerState | null,
  weights: Float32Array,
  meanDelta: Float32Array,
  cfg: ServerOptimizerConfig,
): { weights: Float32Array; state: ServerOptimizerState } {
  if (weights.length !== meanDelta.length) throw new Error(`delta has ${meanDelta.length} values, model has ${weights.length}`);
  const n = weights.length;
  const out = new Float32Array(n);
  const step = (state?.step ?? 0) + 1;
  const lr = cfg.learningRate;
  if (cfg.optimizer === "fedavg") {
    for (let i = 0; i < n; i++) out[i] = weights[i]! + lr * meanDelta[i]!;
    return { weights: out, state: { step } };
  }
  if (cfg.optimizer === "fedavgm") {
    const beta = cfg.momentum ?? 0.9;
    const m = state?.m && state.m.length === n ? Float32Array.from(state.m) : new Float32Array(n);
    for (let i = 0; i < n; i++) {
      m[i] = beta * m[i]! + meanDelta[i]!;
      out[i] = weights[i]! + lr * m[i]!;
    }
    return { weights: out, state: { step, m } };
  }
  const b1 = cfg.beta1 ?? 0.9;
  const b2 = cfg.beta2 ?? 0.99;
  const tau = cfg.epsilon ?? 1e-3;
  const m = state?.m && state.m.length === n ? Float32Array.from(state.m) : new Float32Array(n);
  const v = state?.v && state.v.length === n ? Float32Array.from(state.v) : new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const d = meanDelta[i]!;
    m[i] = b1 * m[i]! + (1 - b1) * d;
    v[i] = b2 * v[i]! + (1 - b2) * d * d;
    out[i] = weights[i]! + (lr * m[i]!) / (Math.sqrt(v[i]!) + tau);
  }
  return { weights: out, state: { step, m, v } };
}
