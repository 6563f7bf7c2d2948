/**
 * The distributed discrete Gaussian mechanism (Kairouz, Liu, Steinke, ICML 2021), run on each
 * device before secure-aggregation masking:
 *   clip to L2 norm C → scale by γ → randomized Hadamard rotation → conditional randomized
 *   rounding (re-round until the norm is within the Δ₂ bound) → add N_Z(0, σ²) from the exact
 *   CKS sampler → reduce mod 2^bits.
 * σ² is sized so that the honest survivors alone reach the run's noise multiplier z: of the
 * `minSurvivors` inputs summed, up to `colluders` may belong to devices colluding with the
 * coordinator that leave out (or subtract) their own noise, so
 * (minSurvivors − colluders) · σ² = (z · γ · C)². The DP event records the honest count as its
 * `devices`, which is what the accountant (Prop. 14) and `verify` use. The accountant charges
 * the actual sensitivity Δ₂ of the rounded vector, so rounding never makes ε optimistic.
 *
 * Adjacency: device-level *zero-out* (a device's clipped update replaced by zeros, its noise
 * share still added). Δ₂ is one device's rounded contribution; under replace-one it would be
 * 2Δ₂, and under add/remove the device's noise share would leave with it.
 *
 * Why the discrete Gaussian rather than Skellam: Tacit's noise comes from the exact CKS
 * sampler the threat model asks for (no floating point in the noise), and its accounting
 * (Prop. 14) is a closed form that the reviewer's tool recomputes from four numbers in the
 * ledger. Skellam is closed under summation (simpler splitting) but needs an exact Poisson
 * sampler with large means, which is slower to do exactly.
 *
 * Adaptive clipping (adaptive-clip.ts, Andrew et al. 2021): the vector carries one more
 * coordinate after the rotated update, ±k for "unclipped"/"clipped" (the centred bit b − ½
 * scaled by 2k), noised with the same per-device discrete Gaussian. The update's noise is raised
 * to z_Δ and k is chosen so the count's noise is ≥ σ_b devices; the DP event then describes the
 * whole (d'+1)-vector (Δ₂ → √(Δ₂² + k²), Δ₁ → Δ₁ + k), so the accountant and `verify` charge
 * the update and the count together, from the event alone, exactly as before.
 */
import { fromSigned, toSigned, type ModularVector } from "../modular/index.ts";
import type { DistributedDiscreteGaussianEvent, DpEvent } from "./events.ts";
import { rotate, unrotate, paddedDimension } from "./rotation.ts";
import { rationalOf, type Rational } from "./samplers.ts";
import { discreteGaussianSampler } from "./discrete-gaussian.ts";
import { RandomSource } from "./random-source.ts";
import { unclippedBit, updateNoiseMultiplier } from "./adaptive-clip.ts";

export class DistributedDpError extends Error {
  override name = "DistributedDpError";
}

/** Conditional rounding fails the norm check with probability ≤ β (paper: β = e^{−1/2}). */
export const ROUNDING_BETA = Math.exp(-0.5);
/** Standard deviations of headroom kept below 2^(bits−1) for the summed coordinates. */
export const OVERFLOW_SIGMAS = 8;

export interface DistributedDpConfig {
  mechanism: "ddgauss";
  clip: number;
  noiseMultiplier: number;
  minSurvivors: number;
  /** Upper bound on the number of inputs summed (sizes the modulus headroom). */
  maxSummands: number;
  /** Survivors assumed to collude (their noise not counted): minSurvivors − colluders add noise. */
  colluders: number;
  bits: number;
  dimension: number;
  paddedDimension: number;
  rotationSeed: Uint8Array;
  /** γ: the scale applied before rounding. */
  scale: number;
  /** Δ₂ bound of one rounded, scaled, rotated contribution (Kairouz et al. eq. for β). */
  l2Bound: number;
  /** Δ₁ bound (used by Prop. 14's τ terms). */
  l1Bound: number;
  /** Each device's discrete Gaussian variance (integer domain), as an exact rational. */
  perDeviceVariance: Rational;
  /** The update's own noise multiplier: z, or z_Δ > z when the vector also carries the clip count. */
  updateNoiseMultiplier: number;
  /** k: the clip-count coordinate is ±k (0: no count coordinate, no adaptive clipping). */
  countScale: number;
  /** Length of the summed vector: paddedDimension, plus 1 with the clip-count coordinate. */
  vectorLength: number;
  /** Union bound on P[some summed coordinate leaves (−2^(bits−1), 2^(bits−1))]. */
  overflowProbabilityBound: number;
}

export interface CalibrateInput {
  mechanism?: "ddgauss" | "skellam";
  clip: number;
  noiseMultiplier: number;
  minSurvivors: number;
  expectedSurvivors: number;
  /** Colluding survivors the round tolerates (0 when absent): their noise is not counted. */
  colluders?: number;
  bits: number;
  dimension: number;
  rotationSeed: Uint8Array;
  /** Adaptive clipping: the count of unclipped devices rides along with noise std ≥ σ_b. */
  adaptiveClip?: { countStddev: number };
}

/** Largest modulus that encodes: the summed signed values must stay exact float64 integers. */
export const MAX_BITS = 52;

function roundedL2Bound(scaledClip: number, d: number): number {
  const b1 = scaledClip + Math.sqrt(d);
  const b2sq = scaledClip * scaledClip + 0.25 * d + Math.sqrt(2 * Math.log(1 / ROUNDING_BETA)) * (scaledClip + 0.5 * Math.sqrt(d));
  return Math.min(b1, Math.sqrt(b2sq));
}

/**
 * Chooses γ as large as the modulus allows. Every device uses the same rotation, so a rotated
 * coordinate of the summed signal, (H·D·Σx)_i/√d', is sub-Gaussian with variance proxy
 * ‖Σx‖²/d' ≤ (m·γC)²/d' — growth with m, not √m (aligned updates add up; Google's
 * `heuristic_scale_factor` uses the same n² growth). Rounding adds ≤ m/4 and noise m·σ².
 * Requiring OVERFLOW_SIGMAS standard deviations of the sum (plus m for rounding bias) to fit in
 * 2^(bits−1) bounds the probability that any coordinate wraps by d'·2·exp(−(2^(bits−1) − m)²/2v).
 */
export function calibrateDistributedDp(o: CalibrateInput): DistributedDpConfig {
  if (o.mechanism && o.mechanism !== "ddgauss") throw new DistributedDpError(`mechanism ${o.mechanism} is not implemented; use ddgauss`);
  if (!(o.clip > 0)) throw new DistributedDpError(`clip must be positive, got ${o.clip}`);
  if (!(o.noiseMultiplier >= 0)) throw new DistributedDpError(`noise multiplier must be ≥ 0, got ${o.noiseMultiplier}`);
  if (!(o.minSurvivors >= 1)) throw new DistributedDpError("minSurvivors must be ≥ 1");
  if (!Number.isInteger(o.bits) || o.bits < 8 || o.bits > MAX_BITS) throw new DistributedDpError(`bits must be an integer in [8, ${MAX_BITS}], got ${o.bits}`);
  const colluders = o.colluders ?? 0;
  const honest = o.minSurvivors - colluders;
  if (!Number.isInteger(colluders) || colluders < 0 || honest < 1) throw new DistributedDpError(`colluders must be an integer in [0, minSurvivors − 1], got ${o.colluders} with minSurvivors ${o.minSurvivors}`);
  const dPad = paddedDimension(o.dimension);
  const m = Math.max(o.expectedSurvivors, o.minSurvivors);
  // With the clip count, the update's multiplier is raised so both together are one z mechanism.
  let z: number;
  try {
    z = o.adaptiveClip ? updateNoiseMultiplier(o.noiseMultiplier, o.adaptiveClip.countStddev) : o.noiseMultiplier;
  } catch (err) {
    throw new DistributedDpError((err as Error).message);
  }
  const half = 2 ** (o.bits - 1);
  const k = OVERFLOW_SIGMAS;
  // std of the summed coordinate ≤ sqrt((mγC)²/d' + m/4 + m·σ²), σ² = (zγC)²/honest
  //   ≤ γC·sqrt(m²/d' + m·z²/honest) + sqrt(m/4); require k·std + m ≤ half.
  const perGamma = o.clip * Math.sqrt((m * m) / dPad + (m * z ** 2) / honest);
  const roundingStd = Math.sqrt(m / 4);
  let scale = (half - m - k * roundingStd) / (k * perGamma);
  if (o.adaptiveClip && z > 0) {
    // The clip-count coordinate sums to ±m·k with k ≈ zγC/2σ_b, plus k·√m·σ of noise: γ must
    // leave room for it too, or k would be capped and the count get more noise than σ_b.
    const countRoom = (half - 1) / (o.clip * z * (m / (2 * o.adaptiveClip.countStddev) + k * Math.sqrt(m / honest)));
    scale = Math.min(scale, countRoom);
  }
  if (!(scale > 0)) throw new DistributedDpError(`modulus 2^${o.bits} is too small for ${m} summands`);
  const sigma2 = (z * scale * o.clip) ** 2 / honest;
  // Round σ² UP to a dyadic rational: more noise than the design, never less.
  const q = 2 ** 20;
  const perDeviceVariance = rationalOf(Math.ceil(sigma2 * q) / q);
  const l2Bound = roundedL2Bound(scale * o.clip, dPad);
  const l1Bound = l2Bound * Math.min(Math.sqrt(dPad), l2Bound);
  const variance = Number(perDeviceVariance.num) / Number(perDeviceVariance.den);
  const countScale = o.adaptiveClip ? chooseCountScale(Math.sqrt(honest * variance), o.adaptiveClip.countStddev, m, variance, half) : 0;
  return {
    mechanism: "ddgauss",
    clip: o.clip,
    noiseMultiplier: o.noiseMultiplier,
    minSurvivors: o.minSurvivors,
    maxSummands: m,
    colluders,
    bits: o.bits,
    dimension: o.dimension,
    paddedDimension: dPad,
    rotationSeed: o.rotationSeed,
    scale,
    l2Bound,
    l1Bound,
    perDeviceVariance,
    updateNoiseMultiplier: z,
    countScale,
    vectorLength: dPad + (countScale > 0 ? 1 : 0),
    overflowProbabilityBound: Math.min(1, wrapProbability(scale * o.clip, m, dPad, variance, half) + (countScale > 0 ? countWrapProbability(countScale, m, variance, half) : 0)),
  };
}

/**
 * k for the clip-count coordinate: the honest noise S (std of the summed noise, integer units)
 * must be ≥ 2σ_b·k, i.e. the count's multiplier S/k ≥ 2σ_b, so k = ⌊S / 2σ_b⌋ — rounding down
 * only adds count noise. Without noise the count is exact and k = 1. The summed coordinate
 * (|Σ±k| ≤ m·k, plus OVERFLOW_SIGMAS noise deviations) must fit below 2^(bits−1).
 */
function chooseCountScale(honestNoiseStd: number, countStddev: number, m: number, variance: number, half: number): number {
  const fit = Math.floor((half - OVERFLOW_SIGMAS * Math.sqrt(m * variance) - 1) / m);
  const k = Math.min(honestNoiseStd > 0 ? Math.floor(honestNoiseStd / (2 * countStddev)) : 1, fit);
  if (!(k >= 1)) throw new DistributedDpError(`the clip count cannot be encoded: with ${m} summands, count noise σ_b ${countStddev} and this modulus, its scale k is ${k} < 1`);
  return k;
}

/** P[the summed clip-count coordinate leaves (−half, half)] (sub-Gaussian tail of its noise). */
function countWrapProbability(k: number, m: number, sigma2: number, half: number): number {
  return 2 * Math.exp(-((half - m * k) ** 2) / (2 * m * sigma2));
}

/** Union bound over d' coordinates on P[a summed coordinate leaves (−half, half)] (sub-Gaussian tail). */
function wrapProbability(scaledClip: number, m: number, dPad: number, sigma2: number, half: number): number {
  const v = (m * scaledClip) ** 2 / dPad + m / 4 + m * sigma2;
  return Math.min(1, dPad * 2 * Math.exp(-((half - m) ** 2) / (2 * v)));
}

function l2(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s);
}

/** Device side: clip → scale → rotate → conditional rounding → noise → Z_(2^bits). */
export function encodeClientUpdate(delta: Float32Array, cfg: DistributedDpConfig, rng = new RandomSource()): { encoded: ModularVector; clippedNorm: number; wasClipped: boolean } {
  if (delta.length !== cfg.dimension) throw new DistributedDpError(`update has ${delta.length} values, the round expects ${cfg.dimension}`);
  for (let i = 0; i < delta.length; i++) {
    if (!Number.isFinite(delta[i]!)) throw new DistributedDpError(`update coordinate ${i} is not finite (${delta[i]}); refusing to encode`);
  }
  const norm = l2(delta);
  const factor = norm > cfg.clip ? cfg.clip / norm : 1;
  const scaled = new Float64Array(delta.length);
  for (let i = 0; i < delta.length; i++) scaled[i] = delta[i]! * factor * cfg.scale;
  const rotated = rotate(scaled, cfg.rotationSeed);
  // Conditional randomized rounding: unbiased per coordinate, retried until within Δ₂.
  const rounded = new Float64Array(cfg.vectorLength);
  for (let attempt = 0; ; attempt++) {
    if (attempt > 1000) throw new DistributedDpError("conditional rounding did not meet the norm bound in 1000 attempts");
    let sq = 0;
    for (let i = 0; i < rotated.length; i++) {
      const f = Math.floor(rotated[i]!);
      const frac = rotated[i]! - f;
      const r = f + (rng.nextWord() < frac * 2 ** 32 ? 1 : 0);
      rounded[i] = r;
      sq += r * r;
    }
    if (Math.sqrt(sq) <= cfg.l2Bound) break;
  }
  // The centred clip bit b − ½, scaled by 2k: +k unclipped, −k clipped (adaptive-clip.ts).
  if (cfg.countScale > 0) rounded[rotated.length] = unclippedBit(norm, cfg.clip) ? cfg.countScale : -cfg.countScale;
  const noise = cfg.perDeviceVariance.num > 0n ? discreteGaussianSampler(cfg.perDeviceVariance) : undefined;
  if (cfg.bits === 32) {
    // One pass: noise added and reduced mod 2^32 straight into the output (ToUint32 of an
    // integer-valued double is its residue mod 2^32; every value here is a safe integer).
    const data = new Uint32Array(rounded.length);
    if (noise) for (let i = 0; i < rounded.length; i++) data[i] = (rounded[i]! + noise.sample(rng)) >>> 0;
    else for (let i = 0; i < rounded.length; i++) data[i] = rounded[i]! >>> 0;
    return { encoded: { bits: 32, length: rounded.length, data }, clippedNorm: norm * factor, wasClipped: factor < 1 };
  }
  if (noise) for (let i = 0; i < rounded.length; i++) rounded[i]! += noise.sample(rng);
  return { encoded: fromSigned(cfg.bits, rounded), clippedNorm: norm * factor, wasClipped: factor < 1 };
}

/** Coordinator side: the SUM of the survivors' clipped, noised updates, in model units. */
export function decodeAggregate(sum: ModularVector, cfg: DistributedDpConfig): Float32Array {
  if (sum.length !== cfg.vectorLength) throw new DistributedDpError(`aggregate has ${sum.length} values, expected ${cfg.vectorLength}`);
  const signed = toSigned(sum);
  const back = unrotate(cfg.countScale > 0 ? signed.subarray(0, cfg.paddedDimension) : signed, cfg.rotationSeed, cfg.dimension);
  const out = new Float32Array(cfg.dimension);
  for (let i = 0; i < out.length; i++) out[i] = back[i]! / cfg.scale;
  return out;
}

/**
 * The released Σ(b_i − ½) + noise of the clip count (in devices), from the summed vector's last
 * coordinate; `unclippedFraction` (adaptive-clip.ts) turns it into b̄.
 */
export function decodeCenteredCount(sum: ModularVector, cfg: DistributedDpConfig): number {
  if (cfg.countScale <= 0) throw new DistributedDpError("this round carries no clip count");
  if (sum.length !== cfg.vectorLength) throw new DistributedDpError(`aggregate has ${sum.length} values, expected ${cfg.vectorLength}`);
  return toSigned(sum)[cfg.paddedDimension]! / (2 * cfg.countScale);
}

/** The DP event of one participating device's round (no amplification). */
export function roundEvent(cfg: DistributedDpConfig): DpEvent {
  const variance = Number(cfg.perDeviceVariance.num) / Number(cfg.perDeviceVariance.den);
  const e: DistributedDiscreteGaussianEvent = {
    kind: "distributedDiscreteGaussian",
    // With the clip count, one device moves the (d'+1)-vector by ≤ √(Δ₂² + k²) (L2), Δ₁ + k (L1).
    l2Sensitivity: cfg.countScale > 0 ? Math.hypot(cfg.l2Bound, cfg.countScale) : cfg.l2Bound,
    l1Sensitivity: cfg.l1Bound + cfg.countScale,
    perDeviceVariance: variance,
    // The honest noise shares: the colluders the round tolerates are assumed to add none.
    devices: cfg.minSurvivors - cfg.colluders,
    dimension: cfg.vectorLength,
  };
  return e;
}
