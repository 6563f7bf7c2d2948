/**
 * The exact discrete Gaussian N_Z(0, σ²) of Canonne, Kamath, Steinke (NeurIPS 2020, Algorithms
 * 1–3) at millions of samples per second, without BigInt on the hot path.
 *
 * Every random decision in CKS is a Bernoulli(p) for some exactly known real p. We decide it as
 * [V < p] for a uniform real V = (w + W)/2^32, where w is one random 32-bit word and W ∈ [0, 1)
 * the rest of V's bits, drawn only if needed. A double x̃ approximates x = p·2^32 with a proven
 * error bound m (IEEE-754 +, −, ×, ÷ are correctly rounded): if w + 1 ≤ x̃ − m the answer is
 * "yes" whatever W is, if w ≥ x̃ + m it is "no"; only in the band between (probability
 * ≈ 2m/2^32, i.e. ~10⁻⁹ per decision) is the answer taken with the exact conditional
 * probability clamp(x − w, 0, 1), computed in BigInt. The output distribution is therefore
 * exactly CKS's — the doubles only choose which path decides, never the probabilities.
 *
 * Fast range: t = ⌊σ⌋ + 1 ≤ 2^32 (σ up to 4.29·10⁹). Larger σ² use the BigInt reference
 * (samplers.ts).
 */
import { RandomSource } from "./random-source.ts";
import { bernoulli, bernoulliExp, discreteGaussianBigInt, isqrt, type Rational } from "./samplers.ts";

const TWO32 = 4294967296;
const TWO32N = 4294967296n;
/**
 * Slack added to every word threshold. Thresholds x̃ are below 2^33, where a double's spacing
 * is ≤ 2^−20, so x̃ ± 2^−10 is still on the right side of x after its own rounding.
 */
const WORD_MARGIN = 2 ** -10;
/** Relative slack on γ̃ (the proven error is below 2^−47·(1 + c + γ); see acceptGaussian). */
const GAMMA_SLACK = 2 ** -40;
/** |Y| beyond this cannot be held exactly; P[|Y| > 2^52] < exp(−2^20) for t ≤ 2^32. */
const MAX_EXACT = 2 ** 52;
/** Bernoulli(1/K) thresholds are tabled up to this K (K > 12 has probability < 1/12!). */
const EXP1_TABLE = 16;
/** Largest t handled on the fast path (U is drawn from one 32-bit word). */
const MAX_FAST_T = 2 ** 32;

export interface DiscreteGaussianOptions {
  /**
   * Extra width, in 32-bit-word units, of the band decided in BigInt (tests widen it to drive
   * the exact fallbacks on most draws). It never changes the distribution, only the speed.
   */
  extraMargin?: number;
}

/**
 * n/d as a double for BigInts 0 ≤ n, 0 < d, within 3.1·2^−53 relative: both are cut to ≥ 64
 * significant bits (relative error ≤ 2^−63 each) before two correctly rounded conversions and
 * one correctly rounded division.
 */
function approxRatio(n: bigint, d: bigint): number {
  const shift = Math.min(n.toString(2).length, d.toString(2).length) - 64;
  if (shift > 0) {
    const s = BigInt(shift);
    return Number(n >> s) / Number(d >> s);
  }
  return Number(n) / Number(d);
}

export class DiscreteGaussianSampler {
  readonly sigma2: Rational;
  private readonly zero: boolean;
  private readonly fast: boolean;
  /** t = ⌊σ⌋ + 1, the discrete Laplace scale. */
  private readonly t: number;
  private readonly tBig: bigint;
  /** A uniform in [0, t) is ⌊w / perU⌋ for a word w < uLimit = perU·t (perU words per value). */
  private readonly uLimit: number;
  private readonly perUInv: number;
  /** 2^32/t to within 2^−53 relative: word thresholds of Bernoulli(u/(t·K)) without a division by t. */
  private readonly twoPow32OverT: number;
  /** σ²/t = m0 + muFrac, m0 an integer, muFrac ∈ [0, 1) to within 2^−51. */
  private readonly m0: number;
  private readonly muFrac: number;
  /** c = 1/(2σ²) to within 3.1·2^−53 relative; γ(y) = (|y| − σ²/t)²·c. */
  private readonly c: number;
  private readonly extra: number;
  /** Word thresholds of Bernoulli(1/K), K < EXP1_TABLE: "yes" if w + 1 ≤ yes[K], "no" if w ≥ no[K]. */
  private readonly exp1Yes: Float64Array;
  private readonly exp1No: Float64Array;

  constructor(sigma2: Rational, options: DiscreteGaussianOptions = {}) {
    if (sigma2.den <= 0n) throw new RangeError(`σ² denominator must be positive, got ${sigma2.den}`);
    if (sigma2.num < 0n) throw new RangeError(`σ² must be ≥ 0, got ${sigma2.num}/${sigma2.den}`);
    const extra = options.extraMargin ?? 0;
    if (!(extra >= 0) || !Number.isFinite(extra)) throw new RangeError(`extraMargin must be a finite number ≥ 0, got ${extra}`);
    this.sigma2 = sigma2;
    this.extra = extra;
    this.zero = sigma2.num === 0n;
    this.exp1Yes = new Float64Array(EXP1_TABLE);
    this.exp1No = new Float64Array(EXP1_TABLE);
    for (let k = 1; k < EXP1_TABLE; k++) {
      this.exp1Yes[k] = TWO32 / k - (WORD_MARGIN + extra);
      this.exp1No[k] = TWO32 / k + (WORD_MARGIN + extra);
    }
    const { num: N, den: D } = sigma2;
    const tBig = this.zero ? 1n : isqrt(N / D) + 1n;
    this.tBig = tBig;
    this.fast = !this.zero && tBig <= BigInt(MAX_FAST_T);
    this.t = this.fast ? Number(tBig) : 0;
    const perU = this.fast ? Math.floor(TWO32 / this.t) : 1;
    this.uLimit = perU * this.t;
    this.perUInv = 1 / perU;
    this.twoPow32OverT = this.fast ? TWO32 / this.t : 0;
    if (this.fast) {
      const dt = D * tBig;
      const m0 = N / dt;
      this.m0 = Number(m0);
      this.muFrac = approxRatio(N - m0 * dt, dt);
      this.c = approxRatio(D, 2n * N);
    } else {
      this.m0 = 0;
      this.muFrac = 0;
      this.c = 0;
    }
  }

  /** One exact draw from N_Z(0, σ²). */
  sample(rng: RandomSource): number {
    if (this.zero) return 0;
    if (!this.fast) return Number(discreteGaussianBigInt(rng, this.sigma2));
    const t = this.t;
    for (;;) {
      // Discrete Laplace with scale t (CKS Algorithm 2): |Y| = U + t·V, U uniform on [0, t)
      // kept with probability exp(−U/t), V geometric with P[V ≥ v] = exp(−v).
      let u: number;
      do {
        u = this.uniformBelowT(rng);
      } while (!this.bernoulliExpRatio(rng, u, t));
      let v = 0;
      while (this.bernoulliExpMinusOne(rng)) v++;
      const x = u + t * v;
      if (x > MAX_EXACT) throw new RangeError(`discrete Laplace draw ${x} is beyond 2^52 (probability < e^-1048576)`);
      const negative = rng.nextBit() === 1;
      if (negative && x === 0) continue;
      // Accept with probability exp(−(|Y| − σ²/t)² / (2σ²)) (CKS Algorithm 3).
      if (this.acceptGaussian(rng, x)) return negative ? -x : x;
    }
  }

  private uniformBelowT(rng: RandomSource): number {
    const t = this.t;
    if (t === 1) return 0;
    for (;;) {
      const w = rng.nextWord();
      // w = u·perU + r, r < perU: (w + ½)/perU is within ½/perU of no integer, and the product
      // with RN(1/perU) is off by < 2^−20/perU, so the floor is exactly u (no division, no %).
      if (w < this.uLimit) return Math.floor((w + 0.5) * this.perUInv);
    }
  }

  /**
   * Bernoulli(a/(b·k)) for safe integers 0 ≤ a ≤ b, k ≥ 1: one word, BigInt only in the band.
   * `given` is a word already drawn (and found in the band) by a caller with its own threshold.
   */
  private bernoulliRatio(rng: RandomSource, a: number, b: number, k = 1, given = -1): boolean {
    const x = (a * TWO32) / b / k; // a·2^32 is exact; two roundings, off by < 2^−20
    const m = WORD_MARGIN + this.extra;
    const w = given >= 0 ? given : rng.nextWord();
    if (w + 1 <= x - m) return true;
    if (w >= x + m) return false;
    // P[W < x − w] with x exact: (a·2^32 − w·b·k) / (b·k), clamped to [0, 1] by `bernoulli`.
    const den = BigInt(b) * BigInt(k);
    return bernoulli(rng, { num: BigInt(a) * TWO32N - BigInt(w) * den, den });
  }

  /** Bernoulli(exp(−a/b)) for integers 0 ≤ a ≤ b (CKS Algorithm 1: K ← 1; while Bernoulli(γ/K): K++; K odd). */
  private bernoulliExpRatio(rng: RandomSource, a: number, b: number): boolean {
    if (a === 0) return true;
    // x_K = a·2^32/(b·K) as a·(2^32/b)/K: three roundings, off by < 2^−19 (margin 2^−10).
    const x1 = a * this.twoPow32OverT;
    const m = WORD_MARGIN + this.extra;
    for (let k = 1; ; k++) {
      const x = k === 1 ? x1 : x1 / k;
      const w = rng.nextWord();
      let hit: boolean;
      if (w + 1 <= x - m) hit = true;
      else if (w >= x + m) hit = false;
      else hit = this.bernoulliRatio(rng, a, b, k, w);
      if (!hit) return (k & 1) === 1;
    }
  }

  /**
   * Bernoulli(exp(−1)): the loop's Bernoulli(1/1) is certain and its Bernoulli(1/2) is one bit,
   * so words are drawn from K = 3 on.
   */
  private bernoulliExpMinusOne(rng: RandomSource): boolean {
    if (rng.nextBit() === 0) return false; // Bernoulli(1/2) failed: the loop stops at K = 2, even
    let k = 3;
    for (;;) {
      let hit: boolean;
      if (k < EXP1_TABLE) {
        const w = rng.nextWord();
        if (w + 1 <= this.exp1Yes[k]!) hit = true;
        else if (w >= this.exp1No[k]!) hit = false;
        else hit = bernoulli(rng, { num: TWO32N - BigInt(w) * BigInt(k), den: BigInt(k) });
      } else {
        hit = this.bernoulliRatio(rng, 1, k);
      }
      if (!hit) return (k & 1) === 1;
      k++;
    }
  }

  /**
   * Bernoulli(exp(−γ)) with γ = (ay − σ²/t)²·c, for the exact integer ay = |Y| ≤ 2^52.
   *
   * Error of γ̃: w̃ = j − μ̃ with j = ay − m0 exact and |μ̃ − μ| ≤ 2^−51, so
   * |w̃ − w| ≤ Δ = 2^−51 + |w|·2^−53; |w̃² − w²| ≤ Δ(2|w| + Δ) ≤ 2^−49(1 + w²); times c
   * (relative error ≤ 3.1·2^−53) and two roundings: |γ̃ − γ| ≤ 2^−47(1 + c + γ). δ below is
   * 2^7 times that.
   */
  private acceptGaussian(rng: RandomSource, ay: number): boolean {
    const w = ay - this.m0 - this.muFrac;
    const g = w * w * this.c;
    const delta = GAMMA_SLACK * (1 + this.c + g) + this.extra / TWO32;
    // ⌊γ⌋ from the interval [g − δ, g + δ] (γ ≥ 0); undecided → all of it in BigInt.
    const lo = g - delta;
    const k = lo <= 0 ? 0 : Math.floor(lo);
    if (Math.floor(g + delta) !== k) return bernoulliExp(rng, this.gammaExact(ay));
    // exp(−γ) = exp(−1)^k · exp(−f), f = γ − k ∈ [0, 1).
    for (let i = 0; i < k; i++) if (!this.bernoulliExpMinusOne(rng)) return false;
    const f = g - k; // exact (Sterbenz), within δ of the true fraction
    const m = delta * TWO32 + WORD_MARGIN + this.extra;
    let kk = 1;
    for (;;) {
      const x = (f * TWO32) / kk;
      const word = rng.nextWord();
      let hit: boolean;
      if (word + 1 <= x - m) hit = true;
      else if (word >= x + m) hit = false;
      else hit = this.fractionFallback(rng, ay, k, kk, word);
      if (!hit) break;
      kk++;
    }
    return (kk & 1) === 1;
  }

  /** γ(ay) = (ay·t·D − N)² / (2·t²·D·N) exactly (CKS Algorithm 3 with σ² = N/D). */
  private gammaExact(ay: number): Rational {
    const { num: N, den: D } = this.sigma2;
    const t = this.tBig;
    const diff = BigInt(ay) * t * D - N;
    return { num: diff * diff, den: 2n * t * t * D * N };
  }

  /** P[W < f·2^32/K − word] exactly, f = γ − k: the undecided band of one Bernoulli(f/K). */
  private fractionFallback(rng: RandomSource, ay: number, k: number, kk: number, word: number): boolean {
    const g = this.gammaExact(ay);
    const fNum = g.num - BigInt(k) * g.den;
    const den = BigInt(kk) * g.den;
    return bernoulli(rng, { num: fNum * TWO32N - BigInt(word) * den, den });
  }
}

const samplers = new Map<string, DiscreteGaussianSampler>();

/** The sampler for σ², cached (a round draws millions of samples at one σ²). */
export function discreteGaussianSampler(sigma2: Rational): DiscreteGaussianSampler {
  const key = `${sigma2.num}/${sigma2.den}`;
  let s = samplers.get(key);
  if (!s) {
    if (samplers.size > 64) samplers.clear();
    s = new DiscreteGaussianSampler(sigma2);
    samplers.set(key, s);
  }
  return s;
}

/** One exact draw from N_Z(0, σ²) for rational σ² ≥ 0, as a BigInt. */
export function discreteGaussian(rng: RandomSource, sigma2: Rational): bigint {
  return BigInt(discreteGaussianSampler(sigma2).sample(rng));
}
