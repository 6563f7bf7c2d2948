/**
 * Adaptive clipping (Andrew, Thakkar, McMahan, Ramaswamy, "Differentially Private Learning with
 * Adaptive Clipping", NeurIPS 2021; TFF `DifferentiallyPrivateFactory.gaussian_adaptive`,
 * tensorflow_privacy `QuantileEstimatorQuery` / `QuantileAdaptiveClipSumQuery`).
 *
 * Each round every device also reports one bit, b_i = 1 if its update norm is ≤ the round's clip
 * C (unclipped). The bits are summed privately — here, as one extra coordinate of the same
 * securely aggregated, distributed-noised vector (distributed-dp.ts) — and the server moves C
 * towards the γ-quantile of the norms with the geometric update
 *     C ← C · exp(−η_C (b̄ − γ)),
 * b̄ the noised fraction of unclipped devices. As in the reference the bit is centred
 * (b_i − ½, sensitivity ½), and its sum gets Gaussian noise of std σ_b (in devices). The two
 * releases together are one Gaussian mechanism with multiplier z when the update's multiplier is
 *     z_Δ = (z⁻² − (2σ_b)⁻²)^(−½)        (Andrew et al. §3.1; TFF `gaussian_adaptive`),
 * so a run keeps its noise multiplier z — what policies and device floors are stated in — and
 * pays for the bit by adding noise to the update. C only rescales the mechanism (noise is
 * proportional to C), so the coordinator's choice of C can never weaken the noise.
 *
 * Everything here is a pure function; the accountant sees the combined event
 * (distributed-dp.ts `roundEvent`), never these formulas.
 */

export class AdaptiveClipError extends Error {
  override name = "AdaptiveClipError";
}

/** The server-side parameters of the quantile estimate (the run spec's `adaptiveClip`). */
export interface AdaptiveClipParams {
  /** γ: the norm quantile the clip tracks (reference default 0.5). */
  targetQuantile: number;
  /** η_C: geometric learning rate (reference default 0.2). */
  learningRate: number;
  /** σ_b: std of the noise on the count of unclipped devices (reference default 0.05 · cohort). */
  countStddev: number;
}

/** Clip norms stay within the run spec's bounds for `clip`. */
export const MIN_CLIP = 1e-6;
export const MAX_CLIP = 1e6;

/**
 * z_Δ, the update's noise multiplier that makes (update, count) one Gaussian mechanism of
 * multiplier z. No noise stays no noise. Needs 2σ_b > z: otherwise the count alone would spend
 * the whole budget (TFF raises the same error).
 */
export function updateNoiseMultiplier(z: number, countStddev: number): number {
  if (!(z >= 0) || !Number.isFinite(z)) throw new AdaptiveClipError(`noise multiplier must be finite and ≥ 0, got ${z}`);
  if (!(countStddev > 0) || !Number.isFinite(countStddev)) throw new AdaptiveClipError(`count noise σ_b must be finite and > 0, got ${countStddev}`);
  if (z === 0) return 0;
  if (!(2 * countStddev > z)) throw new AdaptiveClipError(`count noise σ_b ${countStddev} is too small for noise multiplier ${z}: adaptive clipping needs 2σ_b > z`);
  return 1 / Math.sqrt(z ** -2 - (2 * countStddev) ** -2);
}

/** The multiplier of the combined release: 1/√(z_Δ⁻² + (2σ_b)⁻²) (the inverse of updateNoiseMultiplier). */
export function combinedNoiseMultiplier(zUpdate: number, countStddev: number): number {
  if (zUpdate === 0) return 0;
  return 1 / Math.sqrt(zUpdate ** -2 + (2 * countStddev) ** -2);
}

/** b_i: 1 when the update is not clipped (‖Δ‖ ≤ C), as in `QuantileEstimatorQuery`. */
export function unclippedBit(norm: number, clip: number): 0 | 1 {
  return norm <= clip ? 1 : 0;
}

/**
 * b̄ from the released sum of centred bits Σ(b_i − ½) + noise over `devices` summands: the
 * estimate shifted back by ½ and clamped to [0, 1] (post-processing; the reference clamps too).
 */
export function unclippedFraction(noisyCenteredSum: number, devices: number): number {
  if (!(devices >= 1)) throw new AdaptiveClipError(`a fraction needs ≥ 1 device, got ${devices}`);
  const f = noisyCenteredSum / devices + 0.5;
  return Number.isNaN(f) ? 0.5 : Math.min(1, Math.max(0, f));
}

/** C ← C · exp(−η (b̄ − γ)), kept within [MIN_CLIP, MAX_CLIP]. */
export function nextClip(clip: number, fraction: number, p: Pick<AdaptiveClipParams, "targetQuantile" | "learningRate">): number {
  if (!(clip > 0) || !Number.isFinite(clip)) throw new AdaptiveClipError(`clip must be finite and > 0, got ${clip}`);
  const next = clip * Math.exp(-p.learningRate * (fraction - p.targetQuantile));
  return Math.min(MAX_CLIP, Math.max(MIN_CLIP, next));
}
