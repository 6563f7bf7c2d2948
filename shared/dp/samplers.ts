/**
 * Exact samplers of Canonne, Kamath, Steinke, "The Discrete Gaussian for Differential Privacy"
 * (NeurIPS 2020), Algorithms 1–3, driven by crypto-random bits. Parameters are exact
 * rationals (BigInt numerator/denominator); no floating point touches the randomness, so the
 * output distribution is exactly the stated one.
 *
 * These are the BigInt reference versions: any σ², slow (≈ 0.35 M Gaussian samples/s). The
 * hot path is `DiscreteGaussianSampler` (discrete-gaussian.ts), which runs the same algorithms
 * on doubles and falls back to the functions here whenever a double cannot decide exactly.
 */
import { RandomSource } from "./random-source.ts";

export interface Rational {
  num: bigint;
  den: bigint;
}

/** Bernoulli(num/den) for 0 ≤ num/den ≤ 1. */
export function bernoulli(rng: RandomSource, p: Rational): boolean {
  if (p.num <= 0n) return false;
  if (p.num >= p.den) return true;
  return rng.uniformBigInt(p.den) < p.num;
}

/** Bernoulli(exp(−γ)) for rational γ ≥ 0 (CKS Algorithm 1, with the γ > 1 decomposition). */
export function bernoulliExp(rng: RandomSource, gamma: Rational): boolean {
  if (gamma.num < 0n) throw new RangeError("bernoulliExp needs γ ≥ 0");
  let { num } = gamma;
  const { den } = gamma;
  // exp(−γ) = exp(−1)^⌊γ⌋ · exp(−(γ − ⌊γ⌋))
  while (num > den) {
    if (!bernoulliExpUnit(rng, { num: 1n, den: 1n })) return false;
    num -= den;
  }
  return bernoulliExpUnit(rng, { num, den });
}

function bernoulliExpUnit(rng: RandomSource, gamma: Rational): boolean {
  // For γ ∈ [0, 1]: K ← 1; while Bernoulli(γ/K): K ← K + 1; return K odd.
  let k = 1n;
  while (bernoulli(rng, { num: gamma.num, den: gamma.den * k })) k += 1n;
  return k % 2n === 1n;
}

/** Discrete Laplace with scale t (integer ≥ 1): P[X = x] ∝ exp(−|x|/t) (CKS Algorithm 2). */
export function discreteLaplace(rng: RandomSource, t: bigint): bigint {
  for (;;) {
    const u = rng.uniformBigInt(t);
    if (!bernoulliExp(rng, { num: u, den: t })) continue;
    let v = 0n;
    while (bernoulliExp(rng, { num: 1n, den: 1n })) v += 1n;
    const x = u + t * v;
    const negative = bernoulli(rng, { num: 1n, den: 2n });
    if (negative && x === 0n) continue;
    return negative ? -x : x;
  }
}

/** Above this the double's root is too coarse a start (see `isqrt`). */
const ISQRT_DOUBLE_START_LIMIT = 1n << 120n;

/** Integer square root floor(√n). */
export function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  // The double's root is off by up to ~√n·2⁻⁵³, and the loops below step by one: at most ~2^7 steps
  // below 2^120, but ~2^27 at 2^160, forever at 10^60, and past 2^1024 Number(n) is ∞. There Newton's
  // iteration from 2^⌈bits/2⌉ ≥ √n, which decreases monotonically to ⌊√n⌋, takes O(log bits) steps.
  if (n >= ISQRT_DOUBLE_START_LIMIT) return isqrtNewton(n);
  let x = BigInt(Math.floor(Math.sqrt(Number(n))));
  while (x * x > n) x -= 1n;
  while ((x + 1n) * (x + 1n) <= n) x += 1n;
  return x;
}

function isqrtNewton(n: bigint): bigint {
  let x = 1n << BigInt(Math.ceil(n.toString(2).length / 2));
  for (;;) {
    const next = (x + n / x) >> 1n;
    if (next >= x) return x;
    x = next;
  }
}

/**
 * Discrete Gaussian N_Z(0, σ²) for rational σ² > 0 (CKS Algorithm 3):
 * t = ⌊σ⌋ + 1; Y ~ DLap(t); accept with probability exp(−(|Y| − σ²/t)² / (2σ²)).
 */
export function discreteGaussianBigInt(rng: RandomSource, sigma2: Rational): bigint {
  if (sigma2.num <= 0n) return 0n;
  const t = isqrt(sigma2.num / sigma2.den) + 1n;
  for (;;) {
    const y = discreteLaplace(rng, t);
    const ay = y < 0n ? -y : y;
    // (|Y| − σ²/t)² / (2σ²) = (|Y|·t·den − num)² / (2 · t² · den · num)
    const diff = ay * t * sigma2.den - sigma2.num;
    const gamma = { num: diff * diff, den: 2n * t * t * sigma2.den * sigma2.num };
    if (bernoulliExp(rng, gamma)) return y;
  }
}

/** The exact rational value of a finite double (every double is m · 2^e). */
export function rationalOf(x: number): Rational {
  if (!Number.isFinite(x) || x < 0) throw new RangeError(`expected a finite non-negative number, got ${x}`);
  if (x === 0) return { num: 0n, den: 1n };
  let den = 1n;
  let v = x;
  while (!Number.isInteger(v)) {
    v *= 2;
    den *= 2n;
  }
  return { num: BigInt(v), den };
}
