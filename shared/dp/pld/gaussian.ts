/**
 * Privacy loss of the (Poisson-subsampled) Gaussian mechanism with sensitivity 1 under the
 * add/remove relation, as in dp_accounting's `GaussianPrivacyLoss` (privacy_loss_mechanism.py)
 * and the PLD supplementary note §"Sub-sampling":
 *   REMOVE: μ_upper = q·N(−1, σ²) + (1−q)·N(0, σ²), μ_lower = N(0, σ²)
 *   ADD:    μ_upper = N(0, σ²),  μ_lower = q·N(1, σ²) + (1−q)·N(0, σ²)
 * Without sampling the loss is ℓ(x) = (−½ − x)/σ² (REMOVE), with sampling
 * ℓ_q(x) = log(1 − q + q·e^{ℓ(x)}); ADD is ℓ_add(x) = −ℓ_remove(−x). Both are decreasing in x, so
 * the hockey-stick divergence is δ(ε) = μ_upper(X ≤ x_ε) − e^ε μ_lower(X ≤ x_ε) with x_ε the
 * inverse loss (Balle & Wang 2018, Thm. 8, for q = 1).
 */
import { connectDotsFixedGap } from "./connect-dots.ts";
import { normalCdf, normalLogCdf, normalPpf } from "./normal.ts";
import type { Pmf } from "./pmf.ts";

export type Adjacency = "remove" | "add";

/** ln of the noise mass dp_accounting may discard from each tail (`log_mass_truncation_bound`). */
export const LOG_MASS_TRUNCATION_BOUND = -50;

/** log(a·e^b + c) without overflow (dp_accounting `common.log_a_times_exp_b_plus_c`). */
export function logATimesExpBPlusC(a: number, b: number, c: number): number {
  const logAdd = (x: number, y: number): number => Math.max(x, y) + Math.log1p(Math.exp(Math.min(x, y) - Math.max(x, y)));
  const logSub = (x: number, y: number): number => (y >= x ? NaN : x + Math.log1p(-Math.exp(y - x)));
  if (a === 0) return Math.log(c);
  if (a < 0) return c <= 0 ? NaN : logSub(Math.log(c), Math.log(-a) + b);
  if (b === 0) return Math.log(a + c);
  const d = b + Math.log(a);
  if (c === 0) return d;
  return c < 0 ? logSub(d, Math.log(-c)) : logAdd(d, Math.log(c));
}

function logAddExp(x: number, y: number): number {
  if (x === -Infinity) return y;
  if (y === -Infinity) return x;
  const m = Math.max(x, y);
  return m + Math.log1p(Math.exp(Math.min(x, y) - m));
}

export class GaussianPrivacyLoss {
  constructor(
    readonly sigma: number,
    readonly q: number,
    readonly adjacency: Adjacency,
  ) {
    if (!(sigma > 0)) throw new RangeError(`σ must be positive, got ${sigma}`);
    if (!(q > 0 && q <= 1)) throw new RangeError(`sampling probability must be in (0, 1], got ${q}`);
  }

  private lossRemove(x: number): number {
    const l = (-0.5 - x) / (this.sigma * this.sigma);
    return this.q === 1 ? l : logATimesExpBPlusC(this.q, l, 1 - this.q);
  }

  /** ℓ(x) = log(μ_upper(x)/μ_lower(x)), non-increasing in x. */
  loss(x: number): number {
    return this.adjacency === "remove" ? this.lossRemove(x) : -this.lossRemove(-x);
  }

  private muUpperCdf(x: number): number {
    const s = this.sigma;
    if (this.adjacency === "add") return normalCdf(x / s);
    if (this.q === 1) return normalCdf((x + 1) / s);
    return (1 - this.q) * normalCdf(x / s) + this.q * normalCdf((x + 1) / s);
  }

  private muLowerLogCdf(x: number): number {
    const s = this.sigma;
    if (this.adjacency === "remove") return normalLogCdf(x / s);
    if (this.q === 1) return normalLogCdf((x - 1) / s);
    return logAddExp(Math.log1p(-this.q) + normalLogCdf(x / s), Math.log(this.q) + normalLogCdf((x - 1) / s));
  }

  /** Hockey-stick divergence δ(ε) of μ_upper from μ_lower, clipped to [0, 1]. */
  deltaForEpsilon(eps: number): number {
    const s2 = this.sigma * this.sigma;
    const q = this.q;
    let x: number;
    if (this.adjacency === "remove") {
      if (q === 1) x = -0.5 - eps * s2;
      else {
        // δ = 1 − e^ε once e^ε·μ_lower ≤ μ_upper everywhere (ε ≤ log(1 − q)).
        if (eps <= Math.log1p(-q)) return Math.min(1, Math.max(0, -Math.expm1(eps)));
        const l = logATimesExpBPlusC(1 / q, eps, 1 - 1 / q);
        x = -0.5 - l * s2;
      }
    } else {
      if (q === 1) x = 0.5 - eps * s2;
      else {
        // δ = 0 once ε ≥ −log(1 − q): e^ε·μ_lower ≥ μ_upper everywhere.
        if (eps >= -Math.log1p(-q)) return 0;
        const arg = logATimesExpBPlusC(1 / q, -eps, 1 - 1 / q);
        if (!(arg > -Infinity)) return 0;
        x = 0.5 + arg * s2;
      }
    }
    const d = this.muUpperCdf(x) - Math.exp(eps + this.muLowerLogCdf(x));
    return Math.min(1, Math.max(0, d));
  }

  /** The x-range kept after discarding ≤ e^{−50} of noise mass in each tail (dp_accounting `privacy_loss_tail`). */
  xTruncation(): { lowerX: number; upperX: number } {
    let lowerX = this.sigma * normalPpf(0.5 * Math.exp(LOG_MASS_TRUNCATION_BOUND));
    let upperX = -lowerX;
    if (this.adjacency === "add") upperX += 1;
    else lowerX -= 1;
    return { lowerX, upperX };
  }

  /** Grid indices [lo, hi] of the connect-the-dots support, ε_i = i·h. */
  gridBounds(h: number): { lo: number; hi: number } {
    const { lowerX, upperX } = this.xTruncation();
    return { lo: Math.floor(this.loss(upperX) / h), hi: Math.ceil(this.loss(lowerX) / h) };
  }

  /** Pessimistic connect-the-dots PLD on the grid h·ℤ (Doroshenko et al. 2022, Algorithm 1). */
  toPmf(h: number): Pmf {
    const { lo, hi } = this.gridBounds(h);
    const deltas = new Float64Array(hi - lo + 1);
    for (let i = lo; i <= hi; i++) deltas[i - lo] = this.deltaForEpsilon(i * h);
    return connectDotsFixedGap(h, lo, hi, deltas);
  }
}

/**
 * ε(δ) of the connect-the-dots PLD of one mechanism, evaluated without materialising it: its
 * δ(ε) equals the mechanism's at every grid point ε_i = i·h and is linear in e^ε in between
 * (Doroshenko et al. 2022, Algorithm 1 and its analysis), so ε(δ) is found by a binary search over
 * the grid and one chord. Used for the plain Gaussian, whose k-fold composition is the Gaussian
 * with σ/√k, where materialising the grid would take (ε_max − ε_min)/h ≈ 10⁸ points.
 */
export function connectDotsEpsilonForDelta(m: GaussianPrivacyLoss, h: number, delta: number): number {
  const { lo, hi } = m.gridBounds(h);
  const dAt = (i: number): number => m.deltaForEpsilon(i * h);
  if (!(delta > 0)) return Infinity;
  if (dAt(hi) > delta) return Infinity; // the ∞-mass δ_hi alone exceeds δ
  if (dAt(lo) <= delta) return Math.max(0, lo * h); // below the support: ε ≤ ε_lo (≤ 0 in practice)
  // Smallest grid index i in (lo, hi] with δ_i ≤ δ (δ_i is non-increasing).
  let a = lo + 1;
  let b = hi;
  while (a < b) {
    const mid = a + Math.floor((b - a) / 2);
    if (dAt(mid) <= delta) b = mid;
    else a = mid + 1;
  }
  return chordBelow(a);

  /** ε on the chord between grid points i−1 and i, where δ_{i−1} > δ ≥ δ_i. */
  function chordBelow(i: number): number {
    const d0 = dAt(i - 1);
    const d1 = dAt(i);
    // e^ε = e^{ε_{i−1}} + (δ_{i−1} − δ)/(δ_{i−1} − δ_i) · (e^{ε_i} − e^{ε_{i−1}})
    const t = (d0 - delta) / (d0 - d1);
    const eps = (i - 1) * h + Math.log1p(t * Math.expm1(h));
    return Math.max(0, eps);
  }
}

/** δ(ε) of the same connect-the-dots PLD (the chord through the neighbouring grid points). */
export function connectDotsDeltaForEpsilon(m: GaussianPrivacyLoss, h: number, eps: number): number {
  const { lo, hi } = m.gridBounds(h);
  const i = Math.floor(eps / h);
  if (i >= hi) return m.deltaForEpsilon(hi * h); // only the ∞-mass is above ε
  if (i < lo) return 1; // below the support (never for ε ≥ 0: the Gaussian's support starts below 0)
  const d0 = m.deltaForEpsilon(i * h);
  const d1 = m.deltaForEpsilon((i + 1) * h);
  // linear in e^ε between the grid points: weight (e^ε − e^{ε_i})/(e^{ε_{i+1}} − e^{ε_i})
  const t = Math.expm1(eps - i * h) / Math.expm1(h);
  return d0 + (d1 - d0) * Math.min(1, Math.max(0, t));
}
