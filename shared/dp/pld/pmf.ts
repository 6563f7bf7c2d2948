/**
 * Discretized privacy loss distributions (PLDs) on the grid {i·h : i ∈ ℤ} ∪ {+∞}, with the
 * operations of Doroshenko, Ghazi, Kamath, Kumar, Manurangsi, "Connect the Dots: Tighter
 * Discrete Approximations of Privacy Loss Distributions" (PETS 2022), and of the dp_accounting
 * PLD supplementary note ("Privacy Loss Distributions", google/differential-privacy
 * common_docs): composition is convolution, the hockey-stick divergence is
 *   δ(ε) = m_∞ + Σ_{ℓ > ε} p_ℓ · (1 − e^{ε−ℓ})                                  (Observation 1)
 * and every truncation moves mass towards larger losses (pessimistic estimate).
 */
import { AccountantInputError } from "../accountant.ts";
import { convolve, forwardToBitReversed, inverseFromBitReversed, nextPowerOfTwo } from "./fft.ts";

/** A PMF on losses (lower + i)·h, i = 0..probs.length−1, plus mass at +∞. */
export interface Pmf {
  readonly h: number;
  readonly lower: number;
  readonly probs: Float64Array;
  readonly infinityMass: number;
  /** dp_accounting keeps PMFs with ≤ 1000 points sparse; only changes how self-composition runs. */
  readonly sparse: boolean;
}

/** dp_accounting's sparse/dense threshold (`_MAX_PMF_SPARSE_SIZE`). */
export const MAX_SPARSE_SIZE = 1000;
/** Default tail mass dropped (pessimistically) at each composition, as in dp_accounting. */
export const DEFAULT_TAIL_MASS_TRUNCATION = 1e-15;

export function makePmf(h: number, lower: number, probs: Float64Array, infinityMass: number): Pmf {
  return { h, lower, probs, infinityMass, sparse: probs.length <= MAX_SPARSE_SIZE };
}

/** The PLD of a mechanism that reveals nothing: all mass at loss 0. */
export function identityPmf(h: number): Pmf {
  return makePmf(h, 0, Float64Array.of(1), 0);
}

function isIdentity(p: Pmf): boolean {
  return p.probs.length === 1 && p.lower === 0 && p.probs[0] === 1 && p.infinityMass === 0;
}

/**
 * Drops the longest prefix and suffix each of mass ≤ τ/2. The prefix mass is added to the first
 * kept point (its loss only goes up), the suffix mass goes to +∞: both pessimistic. No mass is lost.
 */
export function truncateTails(probs: Float64Array, tau: number): { offset: number; probs: Float64Array; toInfinity: number } {
  if (tau === 0) return { offset: 0, probs, toInfinity: 0 };
  const n = probs.length;
  let s = 0;
  let left = n;
  for (let i = 0; i < n; i++) {
    s += probs[i]!;
    if (s > tau / 2) {
      left = i;
      break;
    }
  }
  s = 0;
  let suffix = n;
  for (let i = n - 1; i >= 0; i--) {
    s += probs[i]!;
    if (s > tau / 2) {
      suffix = n - 1 - i;
      break;
    }
  }
  let right = n - suffix;
  right = Math.max(right, left + 1);
  let leftMass = 0;
  for (let i = 0; i < Math.min(left, n); i++) leftMass += probs[i]!;
  let rightMass = 0;
  for (let i = right; i < n; i++) rightMass += probs[i]!;
  const kept = probs.slice(left, right);
  // All the finite mass within τ/2 of the left tail: nothing is kept, so the prefix has no point to
  // join and goes to +∞ with the rest rather than vanish (which would under-count δ).
  if (kept.length === 0) return { offset: left, probs: kept, toInfinity: leftMass + rightMass };
  kept[0]! += leftMass;
  return { offset: left, probs: kept, toInfinity: rightMass };
}

function checkComposable(a: Pmf, b: Pmf): void {
  if (a.h !== b.h) throw new AccountantInputError(`cannot compose PLDs with discretization intervals ${a.h} and ${b.h}`);
}

/** The PLD of running both mechanisms: the convolution of the two PMFs; ∞-masses combine as 1 − (1−a)(1−b). */
export function composePmfs(a: Pmf, b: Pmf, tau = DEFAULT_TAIL_MASS_TRUNCATION): Pmf {
  checkComposable(a, b);
  let lower = a.lower + b.lower;
  let probs: Float64Array;
  if (isIdentity(a)) probs = b.probs.slice();
  else if (isIdentity(b)) probs = a.probs.slice();
  else probs = convolve(a.probs, b.probs);
  const inf = a.infinityMass + b.infinityMass - a.infinityMass * b.infinityMass;
  const t = truncateTails(probs, tau);
  lower += t.offset;
  return makePmf(a.h, lower, t.probs, inf + t.toInfinity);
}

/** log Σ_i p_i e^{s·i} (a log-MGF over indices), NaN if the weighted sum is not positive. */
function logMgf(probs: Float64Array, s: number): number {
  const n = probs.length;
  const aMax = s > 0 ? s * (n - 1) : 0;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += probs[i]! * Math.exp(s * i - aMax);
  return sum > 0 ? Math.log(sum) + aMax : NaN;
}

/**
 * Index window [lower, upper] outside which the k-fold self-convolution has mass ≤ τ, by the
 * Chernoff bound P[S ≥ t] ≤ e^{k·log M(s) − s·t} at orders s = ±1..±20 / n (dp_accounting
 * supplementary note, eq. (5); `compute_self_convolve_bounds`).
 */
export function selfConvolveBounds(probs: Float64Array, k: number, tau: number): { lower: number; upper: number } {
  let upper = (probs.length - 1) * k;
  let lower = 0;
  if (tau === 0) return { lower, upper };
  const n = probs.length;
  const logTwoOverTau = Math.log(2 / tau);
  for (const j of [...Array.from({ length: 20 }, (_, i) => i - 20), ...Array.from({ length: 20 }, (_, i) => i + 1)]) {
    const s = j / n;
    const bound = (k * logMgf(probs, s) + logTwoOverTau) / s;
    if (!Number.isFinite(bound)) continue;
    if (s > 0) upper = Math.min(upper, Math.ceil(bound));
    else lower = Math.max(lower, Math.floor(bound));
  }
  return { lower, upper };
}

/** Reverses the low `bits` bits of i. */
function reverseBits(i: number, bits: number): number {
  let x = i;
  x = ((x >>> 1) & 0x55555555) | ((x & 0x55555555) << 1);
  x = ((x >>> 2) & 0x33333333) | ((x & 0x33333333) << 2);
  x = ((x >>> 4) & 0x0f0f0f0f) | ((x & 0x0f0f0f0f) << 4);
  x = ((x >>> 8) & 0x00ff00ff) | ((x & 0x00ff00ff) << 8);
  x = (x >>> 16) | (x << 16);
  return bits === 0 ? 0 : x >>> (32 - bits);
}

/** (re, im)^k in polar form; 0 when |·|^k underflows. */
function powComplex(re: number, im: number, k: number): [number, number] {
  const logMag = k * Math.log(Math.hypot(re, im));
  if (logMag < -745) return [0, 0];
  const mag = Math.exp(logMag);
  const ang = k * Math.atan2(im, re);
  return [mag * Math.cos(ang), mag * Math.sin(ang)];
}

/**
 * k-fold self-convolution by one FFT power: transform once (zero-padded to a power of two ≥ the
 * Chernoff window), raise every coefficient to the k-th power (polar form), transform back, and
 * read the window (the circular wrap-around only folds the ≤ τ mass outside it). The real input
 * x of length N is packed as z_j = x_{2j} + i·x_{2j+1} into one complex transform of length N/2
 * and untangled with X_k = E_k + W^k O_k, E_k = (Z_k + Z̄_{M−k})/2, O_k = (Z_k − Z̄_{M−k})/(2i),
 * W = e^{−2πi/N}, M = N/2 (the standard real-FFT split; e.g. Press et al., Numerical Recipes §12.3).
 */
export function selfConvolve(probs: Float64Array, k: number, tau: number): { offset: number; probs: Float64Array } {
  const { lower, upper } = selfConvolveBounds(probs, k, tau);
  const outLen = upper - lower + 1;
  const n = Math.max(4, nextPowerOfTwo(Math.max(outLen, probs.length)));
  const m = n / 2;
  const bits = Math.log2(m);
  const re = new Float64Array(m);
  const im = new Float64Array(m);
  for (let j = 0; j < probs.length; j++) {
    if (j & 1) im[j >> 1] = probs[j]!;
    else re[j >> 1] = probs[j]!;
  }
  forwardToBitReversed(re, im);
  // X_k^k for k and M−k together, then back to the packed spectrum Z' of the result.
  for (let a = 0; a <= m / 2; a++) {
    const b = (m - a) % m;
    const pa = reverseBits(a, bits);
    const pb = reverseBits(b, bits);
    const zar = re[pa]!;
    const zai = im[pa]!;
    const zbr = re[pb]!;
    const zbi = im[pb]!;
    if (a === 0) {
      // X_0 = Re Z_0 + Im Z_0, X_M = Re Z_0 − Im Z_0 (both real).
      const [y0] = powComplex(zar + zai, 0, k);
      const [yM] = powComplex(zar - zai, 0, k);
      re[pa] = 0.5 * (y0 + yM);
      im[pa] = 0.5 * (y0 - yM);
      continue;
    }
    const ya = spectrumPower(zar, zai, zbr, zbi, a, n, k);
    const yb = spectrumPower(zbr, zbi, zar, zai, b, n, k);
    const za = packedInverse(ya[0], ya[1], yb[0], yb[1], a, n);
    const zb = packedInverse(yb[0], yb[1], ya[0], ya[1], b, n);
    re[pa] = za[0];
    im[pa] = za[1];
    re[pb] = zb[0];
    im[pb] = zb[1];
  }
  inverseFromBitReversed(re, im);
  const out = new Float64Array(outLen);
  for (let i = 0; i < outLen; i++) {
    const j = (((i + lower) % n) + n) % n;
    out[i] = j & 1 ? im[j >> 1]! : re[j >> 1]!;
  }
  return { offset: lower, probs: out };
}

/** Y_a = X_a^k with X_a = E_a + W^a O_a from the packed spectrum values Z_a and Z_{M−a}. */
function spectrumPower(zr: number, zi: number, wr0: number, wi0: number, a: number, n: number, k: number): [number, number] {
  const er = 0.5 * (zr + wr0);
  const ei = 0.5 * (zi - wi0);
  const or = 0.5 * (zi + wi0);
  const oi = -0.5 * (zr - wr0);
  const ang = (-2 * Math.PI * a) / n;
  const c = Math.cos(ang);
  const s = Math.sin(ang);
  return powComplex(er + (or * c - oi * s), ei + (or * s + oi * c), k);
}

/** Z'_a = E'_a + i·O'_a with E'_a = (Y_a + Ȳ_{M−a})/2, O'_a = (Y_a − Ȳ_{M−a})·W^{−a}/2. */
function packedInverse(yr: number, yi: number, vr: number, vi: number, a: number, n: number): [number, number] {
  const er = 0.5 * (yr + vr);
  const ei = 0.5 * (yi - vi);
  const dr = 0.5 * (yr - vr);
  const di = 0.5 * (yi + vi);
  const ang = (-2 * Math.PI * a) / n;
  const c = Math.cos(ang);
  const s = Math.sin(ang);
  const or = dr * c + di * s;
  const oi = di * c - dr * s;
  return [er - oi, ei + or];
}

/** The PLD of k independent runs of the same mechanism. */
export function selfComposePmf(p: Pmf, k: number, tau = DEFAULT_TAIL_MASS_TRUNCATION): Pmf {
  if (!Number.isInteger(k) || k < 1) throw new AccountantInputError(`self-composition count must be a positive integer, got ${k}`);
  if (p.sparse) {
    if (k === 1) return p;
    if (p.probs.length ** k <= MAX_SPARSE_SIZE) {
      let r = p;
      for (let i = 2; i <= k; i++) r = composePmfs(r, p, i === k ? tau : 0);
      return r;
    }
  }
  const { offset, probs } = selfConvolve(p.probs, k, tau);
  // ∞-mass after k runs is 1 − (1 − m)^k, plus the ≤ τ truncated by the Chernoff window.
  const inf = tau - Math.expm1(k * Math.log1p(-p.infinityMass));
  return makePmf(p.h, p.lower * k + offset, probs, inf);
}

/** δ(ε) = m_∞ + Σ_{ℓ > ε} p_ℓ (1 − e^{ε−ℓ}). */
export function pmfDeltaForEpsilon(p: Pmf, epsilon: number): number {
  if (epsilon === Infinity) return p.infinityMass;
  let delta = p.infinityMass;
  for (let i = p.probs.length - 1; i >= 0; i--) {
    const loss = (p.lower + i) * p.h;
    if (!(loss > epsilon)) break;
    delta += -Math.expm1(epsilon - loss) * p.probs[i]!;
  }
  return delta;
}

/**
 * The smallest ε ≥ 0 with δ(ε) ≤ δ: scanning losses from the top, δ(ε) = U − e^ε·L on each
 * segment (U = mass above ε including ∞, L = Σ p_ℓ e^{−ℓ} over it), so ε = log((U − δ)/L).
 */
export function pmfEpsilonForDelta(p: Pmf, delta: number): number {
  if (p.infinityMass > delta) return Infinity;
  let upper = p.infinityMass;
  let lower = 0;
  const top = (p.lower + p.probs.length - 1) * p.h;
  for (let i = p.probs.length - 1; i >= 0; i--) {
    const loss = top - (p.probs.length - 1 - i) * p.h;
    const prob = p.probs[i]!;
    if (upper > delta && lower > 0 && Math.log((upper - delta) / lower) >= loss) break;
    upper += prob;
    lower += Math.exp(-loss) * prob;
    // e^{−ℓ} underflows (ℓ > 745): δ(ε) = U on (previous grid point, ℓ], so ε is ℓ up to an
    // e^{−745}-sized term; answer the next grid point, where δ is certainly ≤ the target.
    if (upper >= delta && lower === 0) return Math.max(0, loss + p.h);
  }
  if (upper <= lower + delta) return 0;
  return Math.log((upper - delta) / lower);
}
