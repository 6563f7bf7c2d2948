/**
 * Distributed discrete Gaussian noise on the evaluation counts (the training rounds' mechanism,
 * Kairouz–Liu–Steinke 2021, without clipping, scaling, rotation or rounding: the counts are
 * already bounded integers). Each device adds N_Z(0, σ²) to every coordinate before masking;
 * σ² is sized so that the honest survivors alone, h = minSurvivors − colluders, reach the noise
 * multiplier z against the vector's L2 sensitivity: h·σ² = (z·Δ₂)².
 *
 * Adjacency: as in training, device-level zero-out — one device's counts replaced by zeros (its
 * noise share still added). Δ₂ is then the norm of the largest vector one device may send
 * (eval-counts.ts `maxContribution`), Δ₁ its sum. The ledger records the same
 * `distributedDiscreteGaussian` event training rounds record, so the accountant and
 * `tacit verify` compose it with the rounds unchanged.
 *
 * Without noise (z = 0) the released sums carry no DP guarantee at all: the event is
 * `nonPrivate` (ε = ∞ for every device that contributed). Secure aggregation still hides each
 * device's counts among at least minSurvivors others, which is an aggregation threshold, not DP.
 */
import { discreteGaussianSampler, rationalOf, RandomSource, type DpEvent, type Rational } from "../dp/index.ts";
import { fromSigned, toSigned, type ModularVector } from "../modular/index.ts";
import { EVAL_VECTOR_LENGTH, EvalCountsError, maxContribution } from "./eval-counts.ts";

/** Standard deviations of summed noise kept below 2^(bits−1), as for training (distributed-dp.ts). */
const OVERFLOW_SIGMAS = 8;
/** Failure probability of the stated error bound (per coordinate). */
export const ERROR_BOUND_FAILURE = 1e-6;

export interface EvalDpInput {
  maxExamples: number;
  noiseMultiplier: number;
  minSurvivors: number;
  colluders: number;
  /** Upper bound on the inputs summed (the cohort size): sizes the modulus check. */
  maxSummands: number;
  bits: number;
}

export interface EvalDpConfig extends EvalDpInput {
  max: number[];
  l2Sensitivity: number;
  l1Sensitivity: number;
  /** Each device's noise variance per coordinate (exact dyadic rational, rounded up). */
  perDeviceVariance: Rational;
}

/** Bounds checks and σ²; throws EvalCountsError naming the first problem (a spec that cannot work). */
export function calibrateEvalDp(o: EvalDpInput): EvalDpConfig {
  const max = maxContribution(o.maxExamples);
  if (!(o.noiseMultiplier >= 0 && Number.isFinite(o.noiseMultiplier))) throw new EvalCountsError(`noise multiplier must be finite and ≥ 0, got ${o.noiseMultiplier}`);
  const honest = o.minSurvivors - o.colluders;
  if (!(Number.isInteger(o.colluders) && o.colluders >= 0 && honest >= 1)) throw new EvalCountsError(`colluders must be an integer in [0, minSurvivors − 1], got ${o.colluders} with minSurvivors ${o.minSurvivors}`);
  const l2Sensitivity = Math.sqrt(max.reduce((a, x) => a + x * x, 0));
  const l1Sensitivity = max.reduce((a, x) => a + x, 0);
  const sigma2 = (o.noiseMultiplier * l2Sensitivity) ** 2 / honest;
  // Round σ² up to a dyadic rational: more noise than designed, never less.
  const q = 2 ** 20;
  const perDeviceVariance = rationalOf(Math.ceil(sigma2 * q) / q);
  const m = Math.max(o.maxSummands, o.minSurvivors);
  const largest = m * Math.max(...max) + OVERFLOW_SIGMAS * Math.sqrt(m * (Number(perDeviceVariance.num) / Number(perDeviceVariance.den)));
  if (!(largest < 2 ** (o.bits - 1))) {
    throw new EvalCountsError(`evaluation counts of ${m} devices with up to ${o.maxExamples} examples each (and their noise) need ${Math.ceil(Math.log2(largest)) + 1} bits; the run's modulus has ${o.bits}`);
  }
  return { ...o, max, l2Sensitivity, l1Sensitivity, perDeviceVariance };
}

function variance(cfg: EvalDpConfig): number {
  return Number(cfg.perDeviceVariance.num) / Number(cfg.perDeviceVariance.den);
}

/** What the ledger and the device's budget are charged for one evaluation round. */
export function evalDpEvent(cfg: EvalDpConfig): DpEvent {
  if (cfg.perDeviceVariance.num === 0n) return { kind: "nonPrivate" };
  return {
    kind: "distributedDiscreteGaussian",
    l2Sensitivity: cfg.l2Sensitivity,
    l1Sensitivity: cfg.l1Sensitivity,
    perDeviceVariance: variance(cfg),
    devices: cfg.minSurvivors - cfg.colluders,
    dimension: EVAL_VECTOR_LENGTH,
  };
}

/** Device side: the encoded counts plus this device's noise share, in Z_(2^bits). */
export function noiseEvalVector(counts: readonly number[], cfg: EvalDpConfig, rng = new RandomSource()): ModularVector {
  if (counts.length !== EVAL_VECTOR_LENGTH) throw new EvalCountsError(`evaluation vector has ${counts.length} values, expected ${EVAL_VECTOR_LENGTH}`);
  const out = Float64Array.from(counts);
  if (cfg.perDeviceVariance.num > 0n) {
    const sampler = discreteGaussianSampler(cfg.perDeviceVariance);
    for (let i = 0; i < out.length; i++) out[i]! += sampler.sample(rng);
  }
  return fromSigned(cfg.bits, out);
}

/**
 * The stated error of every summed coordinate over `survivors` noise shares: the sum of
 * discrete Gaussians N_Z(0, σ²) is sub-Gaussian with variance proxy survivors·σ² (Canonne,
 * Kamath, Steinke 2020, Prop. 1), so |noise| > bound with probability ≤ ERROR_BOUND_FAILURE.
 * In the coordinate's own integer units (examples and hits; loss units; macro units).
 */
export function evalErrorBound(cfg: EvalDpConfig, survivors: number): { std: number; bound: number; failureProbability: number } {
  const std = Math.sqrt(survivors * variance(cfg));
  return { std, bound: std * Math.sqrt(2 * Math.log(2 / ERROR_BOUND_FAILURE)), failureProbability: ERROR_BOUND_FAILURE };
}

/**
 * Coordinator side: the signed sum, refused when no honest run could produce it — a coordinate
 * below zero or above survivors × its per-device maximum by more than the noise's stated
 * error (a device that sent out-of-range counts, a corrupt share, the wrong modulus). Without
 * noise the check is exact, including top-1 ≤ top-3 ≤ examples and devices ≤ survivors.
 */
export function checkedEvalSum(sum: ModularVector, cfg: EvalDpConfig, survivors: number): Float64Array {
  if (sum.length !== EVAL_VECTOR_LENGTH) throw new EvalCountsError(`evaluation aggregate has ${sum.length} values, expected ${EVAL_VECTOR_LENGTH}`);
  const s = toSigned(sum);
  const slack = evalErrorBound(cfg, survivors).bound;
  for (let i = 0; i < s.length; i++) {
    const hi = survivors * cfg.max[i]!;
    if (s[i]! < -slack || s[i]! > hi + slack) throw new EvalCountsError(`aggregate refused: coordinate ${i} is ${s[i]}, outside what ${survivors} devices can send [0, ${hi}]${slack > 0 ? ` ± ${slack.toFixed(1)} noise` : ""}`);
  }
  if (slack === 0 && !(s[1]! <= s[2]! && s[2]! <= s[0]!)) throw new EvalCountsError(`aggregate refused: top-1 ${s[1]} ≤ top-3 ${s[2]} ≤ examples ${s[0]} does not hold`);
  return s;
}
