/**
 * Scripted-randomness pins for the exact samplers (issue #16, mutation testing of shared/dp):
 * shared/dp/samplers.ts (the CKS 2020 BigInt reference: bernoulli, bernoulliExp, discreteLaplace,
 * isqrt, discreteGaussianBigInt, rationalOf) and shared/dp/discrete-gaussian.ts (the fast
 * double-based DiscreteGaussianSampler with its BigInt fallbacks, and the cached helpers).
 *
 * Why: test/dp-samplers.test.ts and test/dp-discrete-gaussian.test.ts check the laws with 10⁵–10⁶
 * draws; under StrykerJS's instrumentation (a call on every expression of the mutated file) they
 * take minutes per mutant. Here every sampler is driven by a ScriptedSource that hands out
 * chosen 32-bit words, so each output — and the exact number of words consumed (every script
 * must be used up, no more, no less) — is derived by hand from the algorithm (derivations in the
 * comments) and checked exactly. The whole file runs in well under a second.
 *
 * Conventions of RandomSource that the derivations use: uniformInt(n) for n ≤ 2^32 takes a word w,
 * rejects w ≥ ⌊2^32/n⌋·n, returns w mod n; bernoulli(p) = [uniformInt(den) < num]; nextBit takes
 * a fresh word when its 32-bit cache is empty and hands out its bits least significant first.
 */
import { describe, expect, it } from "vitest";
import { RandomSource } from "../shared/dp/random-source.ts";
import { bernoulli, bernoulliExp, discreteGaussianBigInt, discreteLaplace, isqrt, rationalOf, type Rational } from "../shared/dp/samplers.ts";
import { DiscreteGaussianSampler, discreteGaussian, discreteGaussianSampler } from "../shared/dp/discrete-gaussian.ts";

const T32 = 2 ** 32;

/** A RandomSource handing out scripted words; `rest` continues with a deterministic generator. */
class ScriptedSource extends RandomSource {
  readonly script: number[];
  taken = 0;
  private state: number;
  constructor(words: number[], private readonly rest = false, seed = 12345) {
    super(4);
    this.script = [...words];
    this.state = seed >>> 0 || 1;
  }
  override nextWord(): number {
    this.taken++;
    const w = this.script.shift();
    if (w !== undefined) return w;
    if (!this.rest) throw new Error("the script has no more words");
    // xorshift32: deterministic filler for the equivalence checks.
    let x = this.state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.state = x;
    return x;
  }
}

/** Runs f on a scripted source and checks the script was used up exactly. */
function scripted<T>(words: number[], f: (rng: RandomSource) => T): T {
  const rng = new ScriptedSource(words);
  const out = f(rng);
  expect(rng.script, "words left over in the script").toEqual([]);
  return out;
}

const r = (num: bigint, den: bigint): Rational => ({ num, den });

describe("bernoulli(num/den)", () => {
  it("num ≤ 0 is false and num ≥ den is true, without a draw", () => {
    expect(scripted([], (g) => bernoulli(g, r(0n, 5n)))).toBe(false);
    expect(scripted([], (g) => bernoulli(g, r(-1n, 5n)))).toBe(false);
    expect(scripted([], (g) => bernoulli(g, r(5n, 5n)))).toBe(true);
    expect(scripted([], (g) => bernoulli(g, r(6n, 5n)))).toBe(true);
  });
  it("otherwise [uniformInt(den) < num], one word when it is not rejected", () => {
    // den 5: limit ⌊2^32/5⌋·5 = 4294967295; w mod 5 < 2.
    expect(scripted([1], (g) => bernoulli(g, r(2n, 5n)))).toBe(true);
    expect(scripted([2], (g) => bernoulli(g, r(2n, 5n)))).toBe(false);
    expect(scripted([6], (g) => bernoulli(g, r(2n, 5n)))).toBe(true); // 6 mod 5 = 1
    expect(scripted([4294967295, 7], (g) => bernoulli(g, r(2n, 5n)))).toBe(false); // rejected, then 7 mod 5 = 2
    expect(scripted([4], (g) => bernoulli(g, r(4n, 5n)))).toBe(false);
    expect(scripted([3], (g) => bernoulli(g, r(4n, 5n)))).toBe(true);
  });
});

describe("bernoulliExp(γ) (CKS Algorithm 1)", () => {
  it("refuses γ < 0", () => {
    expect(() => bernoulliExp(new ScriptedSource([]), r(-1n, 1n))).toThrow(RangeError);
    expect(() => bernoulliExp(new ScriptedSource([]), r(-1n, 1n))).toThrow("bernoulliExp needs γ ≥ 0");
  });
  it("γ = 0 is certain, without a draw (the first Bernoulli(0) fails: K = 1, odd)", () => {
    expect(scripted([], (g) => bernoulliExp(g, r(0n, 1n)))).toBe(true);
    expect(scripted([], (g) => bernoulliExp(g, r(0n, 7n)))).toBe(true);
  });
  it("γ = 1: K=1 certain without a draw; Bernoulli(1/2) = even word; Bernoulli(1/3) = word ≡ 0 mod 3", () => {
    expect(scripted([1], (g) => bernoulliExp(g, r(1n, 1n)))).toBe(false); // stops at K = 2
    expect(scripted([0, 2], (g) => bernoulliExp(g, r(1n, 1n)))).toBe(true); // K=2 hit, K=3 miss → 3, odd
    expect(scripted([0, 0, 1], (g) => bernoulliExp(g, r(1n, 1n)))).toBe(false); // K=4 miss (1 mod 4 ≥ 1) → even
    expect(scripted([0, 0, 4, 3], (g) => bernoulliExp(g, r(1n, 1n)))).toBe(true); // K=4 hit (4 mod 4 = 0), K=5 miss
    // γ = 2/2 (not reduced): still the unit call; K=2 is Bernoulli(2/4) = [w mod 4 < 2].
    expect(scripted([2], (g) => bernoulliExp(g, r(2n, 2n)))).toBe(false);
    expect(scripted([1, 2], (g) => bernoulliExp(g, r(2n, 2n)))).toBe(true); // K=3: 2 mod 6 ≥ 2
  });
  it("γ < 1: K=1 is Bernoulli(num/den), K=2 Bernoulli(num/2den)", () => {
    expect(scripted([1], (g) => bernoulliExp(g, r(1n, 2n)))).toBe(true); // 1 mod 2 ≥ 1: K = 1
    expect(scripted([0, 3], (g) => bernoulliExp(g, r(1n, 2n)))).toBe(false); // hit, then 3 mod 4 ≥ 1: K = 2
    expect(scripted([0, 0, 5], (g) => bernoulliExp(g, r(1n, 2n)))).toBe(true); // K=3: 5 mod 6 ≥ 1
    // γ = 2/3: K=1 is [w mod 3 < 2], K=2 is [w mod 6 < 2].
    expect(scripted([2], (g) => bernoulliExp(g, r(2n, 3n)))).toBe(true);
    expect(scripted([1, 2], (g) => bernoulliExp(g, r(2n, 3n)))).toBe(false); // K=1 hit, K=2 miss (2 mod 6 ≥ 2): even
  });
  it("γ > 1 is exp(−1)^⌊γ⌋ · exp(−frac), each exp(−1) a Bernoulli(exp(−1)) run that can fail early", () => {
    // 3/2: one exp(−1) ([0,2] succeeds, [1] fails and stops everything), then exp(−1/2).
    expect(scripted([1], (g) => bernoulliExp(g, r(3n, 2n)))).toBe(false);
    expect(scripted([0, 2, 1], (g) => bernoulliExp(g, r(3n, 2n)))).toBe(true);
    expect(scripted([0, 2, 0, 3], (g) => bernoulliExp(g, r(3n, 2n)))).toBe(false);
    // 2/1: two exp(−1) runs (the loop stops at num = den, the last is the unit call with γ = 1).
    expect(scripted([0, 2, 0, 2], (g) => bernoulliExp(g, r(2n, 1n)))).toBe(true);
    expect(scripted([0, 2, 1], (g) => bernoulliExp(g, r(2n, 1n)))).toBe(false);
    // 7/3 = 2 + 1/3: two exp(−1) then exp(−1/3) ([1]: 1 mod 3 ≥ 1 → K = 1).
    expect(scripted([0, 2, 0, 2, 1], (g) => bernoulliExp(g, r(7n, 3n)))).toBe(true);
    expect(scripted([0, 2, 0, 2, 0, 1], (g) => bernoulliExp(g, r(7n, 3n)))).toBe(false); // K=2: 1 mod 6 ≥ 1
  });
});

describe("discreteLaplace(t) (CKS Algorithm 2)", () => {
  // exp(−1) costs [0, 1] when it succeeds (K=2 even word, K=3: 1 mod 3 ≥ 1) and [1] when it fails.
  it("t = 1: U is 0 without a draw, exp(−0) is certain; V counts exp(−1) successes; sign = even word", () => {
    expect(scripted([1, 1], (g) => discreteLaplace(g, 1n))).toBe(0n);
    expect(scripted([0, 1, 1, 1], (g) => discreteLaplace(g, 1n))).toBe(1n);
    expect(scripted([0, 1, 0, 1, 1, 0], (g) => discreteLaplace(g, 1n))).toBe(-2n);
  });
  it("x = 0 with a negative sign is rejected and drawn again", () => {
    // [1] V = 0, [0] negative → reject; [0,1] V = 1, [1] stop, [1] positive.
    expect(scripted([1, 0, 0, 1, 1, 1], (g) => discreteLaplace(g, 1n))).toBe(1n);
    // Rejected twice, then 0 with a positive sign.
    expect(scripted([1, 0, 1, 0, 1, 1], (g) => discreteLaplace(g, 1n))).toBe(0n);
  });
  it("t = 3: U = w mod 3 kept with exp(−U/3), X = U + 3V", () => {
    // U = 2, exp(−2/3): K=1 miss (2 mod 3 ≥ 2) → kept; V = 0; positive.
    expect(scripted([2, 2, 1, 1], (g) => discreteLaplace(g, 3n))).toBe(2n);
    // U = 2 dropped (K=1 hit 0 < 2, K=2 miss 5 mod 6 ≥ 2 → even); U = 1 kept (1 mod 3 ≥ 1); V = 1; negative.
    expect(scripted([2, 0, 5, 1, 1, 0, 1, 1, 0], (g) => discreteLaplace(g, 3n))).toBe(-4n);
    // U = 0 kept without a draw; rejected top word 4294967295 for U first.
    // U: 4294967295 rejected (limit ⌊2^32/3⌋·3), 3 → U = 0, kept without a draw; V = 0; negative → rejected;
    // then U = 0, V = 0, positive.
    expect(scripted([4294967295, 3, 1, 0, 0, 1, 1], (g) => discreteLaplace(g, 3n))).toBe(0n);
  });
});

describe("isqrt", () => {
  it("small values, perfect squares and their neighbours", () => {
    const cases: Array<[bigint, bigint]> = [
      [0n, 0n], [1n, 1n], [2n, 1n], [3n, 1n], [4n, 2n], [5n, 2n], [8n, 2n], [9n, 3n], [10n, 3n],
      [15n, 3n], [16n, 4n], [17n, 4n], [99n, 9n], [100n, 10n], [101n, 10n],
    ];
    for (const [n, s] of cases) expect(isqrt(n), `isqrt(${n})`).toBe(s);
    expect(isqrt(-5n)).toBe(-5n); // below 2 it returns n itself
  });
  it("values where the double square root is off by one either way", () => {
    const p53 = 2n ** 53n;
    expect(isqrt(2n ** 106n - 1n)).toBe(p53 - 1n); // Number() rounds up to 2^106: the decrement loop
    expect(isqrt(2n ** 106n)).toBe(p53);
    expect(isqrt(2n ** 106n + 1n)).toBe(p53);
    expect(isqrt((p53 + 1n) ** 2n)).toBe(p53 + 1n); // Number() rounds down: the increment loop
    expect(isqrt((p53 + 1n) ** 2n - 1n)).toBe(p53);
    const big = 10n ** 18n + 7n; // ≈ 2^60, n ≈ 2^120: Newton's iteration from here on
    expect(isqrt(big * big)).toBe(big);
    expect(isqrt(big * big - 1n)).toBe(big - 1n);
    expect(isqrt(big * big + 2n * big)).toBe(big);
    expect(isqrt((big + 1n) ** 2n)).toBe(big + 1n);
  });
  it("huge values end, exactly: the double start would step ~√n·2⁻⁵³ times (forever at 10^60) or be ∞ past 2^1024", () => {
    const edge = 1n << 60n; // n = 2^120 exactly, the first value Newton's iteration takes
    expect(isqrt(edge * edge)).toBe(edge);
    expect(isqrt(edge * edge - 1n)).toBe(edge - 1n);
    for (const r of [10n ** 30n + 7n, 3n ** 200n + 1n, (1n << 1100n) - 3n]) {
      expect(isqrt(r * r)).toBe(r);
      expect(isqrt(r * r - 1n)).toBe(r - 1n);
      expect(isqrt(r * r + 2n * r)).toBe(r);
      expect(isqrt((r + 1n) ** 2n)).toBe(r + 1n);
    }
    expect(isqrt(1n << 2048n)).toBe(1n << 1024n);
    const odd = (1n << 2049n) + 12345n; // not a square: only the defining inequality pins it
    const root = isqrt(odd);
    expect(root * root <= odd && (root + 1n) * (root + 1n) > odd).toBe(true);
  });
});

describe("discreteGaussianBigInt (CKS Algorithm 3)", () => {
  it("σ² ≤ 0 is 0 without a draw", () => {
    expect(scripted([], (g) => discreteGaussianBigInt(g, r(0n, 1n)))).toBe(0n);
    expect(scripted([], (g) => discreteGaussianBigInt(g, r(-3n, 1n)))).toBe(0n);
  });
  // σ² = 1: t = 2, γ(y) = (2|y| − 1)²/8. DLap(2): U = w mod 2; exp(−1/2) kept when the K=1 word is odd.
  it("σ² = 1: Y = 0 accepted with exp(−1/8) (K=1 word ≢ 0 mod 8)", () => {
    expect(scripted([0, 1, 1, 1], (g) => discreteGaussianBigInt(g, r(1n, 1n)))).toBe(0n);
  });
  it("σ² = 1: rejection (K=2, even) and a second round", () => {
    // Y = 0, γ = 1/8: K=1 hit (0 mod 8 = 0), K=2 miss (1 mod 16 ≥ 1) → reject; then Y = 0 accepted.
    expect(scripted([0, 1, 1, 0, 1, 0, 1, 1, 1], (g) => discreteGaussianBigInt(g, r(1n, 1n)))).toBe(0n);
  });
  it("σ² = 1: Y = −1 (U = 1 kept, negative), γ = 1/8", () => {
    expect(scripted([1, 1, 1, 0, 1], (g) => discreteGaussianBigInt(g, r(1n, 1n)))).toBe(-1n);
  });
  it("σ² = 1: Y = 3 has γ = 25/8 = 3 exp(−1) runs and exp(−1/8)", () => {
    const head = [1, 1, 0, 1, 1, 1]; // U = 1 kept, V = 1, stop, positive: X = 3
    expect(scripted([...head, 0, 2, 0, 2, 0, 2, 1], (g) => discreteGaussianBigInt(g, r(1n, 1n)))).toBe(3n);
    // The third exp(−1) fails → reject; then Y = 0 accepted.
    expect(scripted([...head, 0, 2, 0, 2, 1, 0, 1, 1, 1], (g) => discreteGaussianBigInt(g, r(1n, 1n)))).toBe(0n);
  });
  it("σ² = 5/2: t = 2, γ(0) = 25/80 (K=1 is [w mod 80 < 25])", () => {
    expect(scripted([0, 1, 1, 25], (g) => discreteGaussianBigInt(g, r(5n, 2n)))).toBe(0n);
    // K=1 hit (24), K=2 miss (25 mod 160 ≥ 25) → reject; then accepted.
    expect(scripted([0, 1, 1, 24, 25, 0, 1, 1, 79], (g) => discreteGaussianBigInt(g, r(5n, 2n)))).toBe(0n);
    // 24 at K=2 would be a hit (24 < 25), and 26 at K=3 (26 mod 240 ≥ 25) a miss → K = 3, odd: accepted.
    expect(scripted([0, 1, 1, 24, 24, 26], (g) => discreteGaussianBigInt(g, r(5n, 2n)))).toBe(0n);
  });
  it("σ² = 10: t = isqrt(10) + 1 = 4 (U = w mod 4)", () => {
    // Rejection: K=1 hit (3 < 4), K=2 miss (4 mod 640 ≥ 4); then Y = 0, γ = 100/320, 100 misses.
    // U = 3 kept (exp(−3/4): K=1 is [w mod 4 < 3], 3 misses), V = 0, positive;
    // γ = (3·4 − 10)²/(2·16·10) = 4/320: [w mod 320 < 4], 4 misses → accepted.
    expect(scripted([3, 3, 1, 1, 4], (g) => discreteGaussianBigInt(g, r(10n, 1n)))).toBe(3n);
    expect(scripted([3, 3, 1, 1, 3, 4, 0, 1, 1, 100], (g) => discreteGaussianBigInt(g, r(10n, 1n)))).toBe(0n);
  });
});

describe("rationalOf", () => {
  it("exact dyadic values", () => {
    expect(rationalOf(0)).toEqual({ num: 0n, den: 1n });
    expect(rationalOf(5)).toEqual({ num: 5n, den: 1n });
    expect(rationalOf(0.375)).toEqual({ num: 3n, den: 8n });
    expect(rationalOf(2.25)).toEqual({ num: 9n, den: 4n });
    expect(rationalOf(2 ** -3)).toEqual({ num: 1n, den: 8n });
    expect(rationalOf(0.1)).toEqual({ num: 3602879701896397n, den: 2n ** 55n });
  });
  it("refuses negatives and non-finite values", () => {
    expect(() => rationalOf(-1)).toThrow(RangeError);
    expect(() => rationalOf(-1)).toThrow("expected a finite non-negative number, got -1");
    expect(() => rationalOf(NaN)).toThrow("got NaN");
    expect(() => rationalOf(Infinity)).toThrow("got Infinity");
    expect(() => rationalOf(-0.5)).toThrow("got -0.5");
  });
});

/**
 * DiscreteGaussianSampler. Word costs on the fast path: U is ⌊(w + ½)/perU⌋ for w < perU·t
 * (perU = ⌊2^32/t⌋); exp(−u/t) is a run of words against thresholds u·2^32/(t·K); exp(−1) is
 * one bit (K = 2) then words against 2^32/K from K = 3; the sign is one bit; the acceptance
 * exp(−γ) is ⌊γ⌋ exp(−1) runs then words against frac(γ)·2^32/K. A word w against threshold x is
 * "yes" if w + 1 ≤ x − m, "no" if w ≥ x + m, and exact (BigInt) in between.
 * Bits come from one word B (least significant first), drawn at the first bit needed.
 */
const sample = (sigma2: Rational, words: number[], options?: { extraMargin?: number }): number =>
  scripted(words, (g) => new DiscreteGaussianSampler(sigma2, options).sample(g));
const ONE = r(1n, 1n); // σ² = 1: t = 2, perU = 2^31, σ²/t = 0 + 0.5, c = 1/2, γ(0) = γ(1) = 1/8, γ(2) = 9/8
const MAX = T32 - 1;
const P29 = 2 ** 29;

describe("DiscreteGaussianSampler: refusals and σ² = 0", () => {
  it("refuses a non-positive denominator, a negative σ², a bad extraMargin", () => {
    expect(() => new DiscreteGaussianSampler(r(1n, 0n))).toThrow("σ² denominator must be positive, got 0");
    expect(() => new DiscreteGaussianSampler(r(1n, -2n))).toThrow("σ² denominator must be positive, got -2");
    expect(() => new DiscreteGaussianSampler(r(-1n, 3n))).toThrow("σ² must be ≥ 0, got -1/3");
    expect(() => new DiscreteGaussianSampler(ONE, { extraMargin: -1 })).toThrow("extraMargin must be a finite number ≥ 0, got -1");
    expect(() => new DiscreteGaussianSampler(ONE, { extraMargin: NaN })).toThrow("got NaN");
    expect(() => new DiscreteGaussianSampler(ONE, { extraMargin: Infinity })).toThrow("got Infinity");
    for (const bad of [r(1n, 0n), r(-1n, 1n)]) expect(() => new DiscreteGaussianSampler(bad)).toThrow(RangeError);
    expect(() => new DiscreteGaussianSampler(ONE, { extraMargin: 0 })).not.toThrow();
    expect(() => new DiscreteGaussianSampler(r(0n, 5n))).not.toThrow();
  });
  it("σ² = 0 draws 0 without a word", () => {
    expect(sample(r(0n, 1n), [])).toBe(0);
    expect(sample(r(0n, 7n), [])).toBe(0);
  });
});

describe("DiscreteGaussianSampler: fast path, σ² = 1", () => {
  it("Y = 0 accepted: U word 0, B = 0 (V = 0, positive), acceptance word 2^29 ≥ γ·2^32 = 2^29: no at K = 1", () => {
    const x = sample(ONE, [0, 0, P29]);
    expect(Object.is(x, 0)).toBe(true);
  });
  it("the acceptance thresholds: 2^29 − 2 is yes, then 2^28 is no at K = 2 (even: rejected)", () => {
    // Second round: U word 0, bits 2–3 of B (0, 0), acceptance word 2^29.
    expect(sample(ONE, [0, 0, P29 - 2, 2 ** 28, 0, P29])).toBe(0);
  });
  it("the acceptance band: 2^29 − 1 and 2^28 − 1 go to BigInt, which says yes without a draw (x − w = 1)", () => {
    // K=1: (2^32 − (2^29−1)·8)/8 = 1; K=2: (2^32 − (2^28−1)·16)/16 = 1; K=3: 2^28 ≥ 2^29/3: no, K = 3 odd.
    expect(sample(ONE, [0, 0, P29 - 1, 2 ** 28 - 1, 2 ** 28])).toBe(0);
  });
  it("Y = −1: U = 1 (word 2^31, exp(−1/2) in the band: BigInt (2^32 − 2^31·2)/2 = 0, no), B = 0b10", () => {
    expect(sample(ONE, [2 ** 31, 2 ** 31, 0b10, P29])).toBe(-1);
    // U word 2^31 − 1 is U = 0.
    expect(sample(ONE, [2 ** 31 - 1, 0b10, 0, P29])).toBe(0);
  });
  it("U = 1 rejected by exp(−1/2): yes at K = 1 (0), no at K = 2 (2^30): K even", () => {
    expect(sample(ONE, [MAX, 0, 2 ** 30, 0, 0, P29])).toBe(0);
    // 2^30 − 2 is still yes at K = 2 (threshold 2^30), MAX is no at K = 3 (threshold 2^31/3): K = 3, odd, kept.
    expect(sample(ONE, [MAX, 0, 2 ** 30 - 2, MAX, 0, P29])).toBe(1);
  });
  it("x = 0 with a negative sign is rejected (no −0)", () => {
    // B = 0b10: V = 0, negative, rejected; second round U = 0, bits 2–3 = 0, accepted.
    const x = sample(ONE, [0, 0b10, 0, P29]);
    expect(Object.is(x, 0)).toBe(true);
  });
  it("V = 1 (bit 1, K=3 word no) makes Y = 2, γ = 9/8: one exp(−1) in the acceptance, then frac 1/8", () => {
    // B = 0b1001: bit0 V-run K=2 yes, MAX no at K=3 → V = 1; bit1 stop; bit2 positive; bit3 + MAX: exp(−1) yes.
    expect(sample(ONE, [0, 0b1001, MAX, MAX, P29])).toBe(2);
    // B = 0b0001: the acceptance's exp(−1) fails at bit 3 → rejected; then Y = 0 (bits 4–5).
    expect(sample(ONE, [0, 0b0001, MAX, 0, P29])).toBe(0);
  });
  it("exp(−1) at K = 3: ⌊2^32/3⌋ − 1 yes, ⌊2^32/3⌋ in the band (BigInt Bernoulli(1/3): one word), + 1 no", () => {
    const w3 = Math.floor(T32 / 3); // 1431655765, 2^32 − 3·w3 = 1
    expect(sample(ONE, [0, 0b1001, w3 - 1, MAX, P29])).toBe(0); // yes at 3, no at 4: V run false
    expect(sample(ONE, [0, 0b1001, w3, 1, MAX, P29])).toBe(2); // band: 1 mod 3 ≥ 1 no → K = 3 odd
    expect(sample(ONE, [0, 0b1001, w3, 0, MAX, P29])).toBe(0); // band: 0 < 1 yes; K=4 no → false
    expect(sample(ONE, [0, 0b1001, w3 + 1, MAX, P29])).toBe(2);
  });
  it("exp(−1) beyond the table (K ≥ 16) decides by bernoulliRatio(1, K)", () => {
    const yes13 = new Array<number>(13).fill(0); // K = 3 … 15 yes
    // K=16: 0 yes; K=17: MAX no → odd: V = 1 → Y = 2.
    expect(sample(ONE, [0, 0b1001, ...yes13, 0, MAX, MAX, P29])).toBe(2);
    // K=16: 2^28 no → even: V = 0 → Y = 0.
    expect(sample(ONE, [0, 0b1001, ...yes13, 2 ** 28, P29])).toBe(0);
    // K=16: 2^28 − 1 in the band: (2^32 − (2^28 − 1)·16)/16 = 1, yes without a draw; K=17: MAX no.
    expect(sample(ONE, [0, 0b1001, ...yes13, 2 ** 28 - 1, MAX, MAX, P29])).toBe(2);
  });
  it("extraMargin 2^32 leaves ⌊γ⌋ undecided: the whole acceptance is bernoulliExp(1/8) in BigInt", () => {
    expect(sample(ONE, [0, 0, 1], { extraMargin: T32 })).toBe(0); // 1 mod 8 ≥ 1: K = 1
    // K=1: 0 yes, K=2: 1 mod 16 no → rejected; then accepted.
    expect(sample(ONE, [0, 0, 0, 1, 0, 1], { extraMargin: T32 })).toBe(0);
  });
});

describe("DiscreteGaussianSampler: non-dyadic σ² and the BigInt bands", () => {
  // σ² = 4/3: t = 2, σ²/t = 2/3, c = 3/8, γ(0) = 1/6 (threshold 715827882.67), γ(3) = 196/96.
  const S43 = r(4n, 3n);
  it("γ(0) = 1/6: word 715827882 is in the band, decided by Bernoulli(4/6) on one more word", () => {
    expect(sample(S43, [0, 0, 715827882, 64])).toBe(0); // γ = 16/96 unreduced: (16·2^32 − w·96)/96 = 64/96; 64 ≥ 64: no, K = 1
    // 63 < 64: yes; K=2: 2^31 no → rejected; second round 715827883 no → accepted.
    expect(sample(S43, [0, 0, 715827882, 63, 2 ** 31, 0, 715827883])).toBe(0);
    expect(sample(S43, [0, 0, 715827881, 2 ** 31, 0, 715827883])).toBe(0); // 715827881 yes without a draw
  });
  it("γ(3) = 2 + 1/24: two exp(−1) runs, then the fraction's band at word 178956970 (Bernoulli(64/96))", () => {
    // U word 2^31 + 1 → U = 1, kept (MAX no); B = 0b11001: V-run yes (MAX no at K=3), stop, positive,
    // then bits 3 and 4 with MAX each: two exp(−1) yes. Fraction: (4·2^32 − 178956970·96)/96 = 64/96.
    const head = [2 ** 31 + 1, MAX, 0b11001, MAX, MAX, MAX, 178956970];
    expect(sample(S43, [...head, 64])).toBe(3); // 64 mod 96 ≥ 64: no at K = 1
    expect(sample(S43, [...head, 63, MAX, 0, 2 ** 31])).toBe(0); // yes, then no at K = 2: rejected; Y = 0 (bits 5–6)
  });
  // σ² = 4: t = 3, perU = 1431655765, uLimit = 4294967295, σ²/t = 1 + 1/3, c = 1/8.
  const S4 = r(4n, 1n);
  const w3 = 1431655765;
  it("σ² = 4: U boundaries and the rejected top word", () => {
    expect(sample(S4, [4294967295, 0, 0, 2 ** 31])).toBe(0); // ≥ uLimit: drawn again
    expect(sample(S4, [w3 - 1, 0, 2 ** 31])).toBe(0); // U = 0: exp(0) needs no word
    expect(sample(S4, [2 * w3 - 1, MAX, 0, 2 ** 31])).toBe(1);
    expect(sample(S4, [2 * w3, MAX, 0, 2 ** 31])).toBe(2);
    expect(sample(S4, [4294967294, MAX, 0, 2 ** 31])).toBe(2);
  });
  it("σ² = 4: exp(−1/3) at word ⌊2^32/3⌋ is in the band: Bernoulli(1/3) on one more word", () => {
    expect(sample(S4, [w3, w3, 1, 0, 2 ** 31])).toBe(1); // no → K = 1: kept; γ(1) = 1/72
    expect(sample(S4, [w3, w3, 0, 2 ** 31, 0, 0, 2 ** 31])).toBe(0); // yes, K=2 no: dropped; U = 0
  });
  it("σ² = 4: exp(−2/3) at K = 2 in the band: Bernoulli(2/6)", () => {
    expect(sample(S4, [4294967294, 0, w3, 1, MAX, 0, 2 ** 31])).toBe(2); // K=2 yes (1 < 2), K=3 no: kept
    expect(sample(S4, [4294967294, 0, w3, 2, 0, 0, 2 ** 31])).toBe(0); // K=2 no: dropped
  });
  it("t = 1 (σ² = 1/2): U is 0 without a word; γ(0) = 1/4", () => {
    expect(sample(r(1n, 2n), [0, 2 ** 30])).toBe(0);
    expect(sample(r(1n, 2n), [0, 2 ** 30 - 2, 2 ** 29, 2 ** 30])).toBe(0); // yes at K=1 (x = 2^30), no at K=2: rejected; accepted
    expect(sample(r(1n, 2n), [0b001, MAX, 2 ** 30])).toBe(1); // V = 1: Y = U + t·V = 1, γ(1) = 1/4
  });
});

describe("DiscreteGaussianSampler: the edge of the fast range, the BigInt range, the cached helpers", () => {
  it("t = 2^32 (σ² = (2^32 − 1)²) is still the fast path: U is the word itself (perU = 1)", () => {
    // U = 2^32 − 1, exp(−U/t) in the band: (U·2^32 − w·t)/t = 0 → no, kept; B = 0; γ ≈ 2^−65: word 1 is no.
    expect(sample(r((2n ** 32n - 1n) ** 2n, 1n), [MAX, MAX, 0, 1])).toBe(MAX);
    expect(sample(r((2n ** 32n - 1n) ** 2n, 1n), [0, 0, MAX])).toBe(0); // γ(0) ≈ 1/2: MAX is no
  });
  it("t = 2^32 + 1 (σ² = 2^64) is the BigInt reference, word for word", () => {
    for (const seed of [1, 2, 3]) {
      const a = new ScriptedSource([], true, seed);
      const b = new ScriptedSource([], true, seed);
      const s = new DiscreteGaussianSampler(r(2n ** 64n, 1n));
      for (let i = 0; i < 3; i++) expect(BigInt(s.sample(a))).toBe(discreteGaussianBigInt(b, r(2n ** 64n, 1n)));
      expect(a.taken).toBe(b.taken);
      expect(a.taken).toBeGreaterThan(0);
    }
  });
  it("discreteGaussian draws through the sampler, as a BigInt", () => {
    expect(scripted([0, 0, P29], (g) => discreteGaussian(g, ONE))).toBe(0n);
    expect(scripted([2 ** 31, 2 ** 31, 0b10, P29], (g) => discreteGaussian(g, r(2n, 2n)))).toBe(-1n); // key 2/2, same law as 1/1
    expect(scripted([], (g) => discreteGaussian(g, r(0n, 1n)))).toBe(0n);
  });
  it("discreteGaussianSampler caches by num/den and clears once it holds more than 64", () => {
    const a = discreteGaussianSampler(r(3n, 7n));
    expect(discreteGaussianSampler(r(3n, 7n))).toBe(a);
    expect(a.sigma2).toEqual(r(3n, 7n));
    expect(discreteGaussianSampler(r(6n, 14n))).not.toBe(a); // the key is the unreduced fraction
    // Find a clear: insert fresh keys until the probe is gone.
    const probe = r(5n, 11n);
    let p = discreteGaussianSampler(probe);
    let key = 1000n;
    for (let i = 0; i < 200 && discreteGaussianSampler(probe) === p; i++) discreteGaussianSampler(r(key++, 1n));
    expect(discreteGaussianSampler(probe)).not.toBe(p); // … and the probe is cached again: the cache holds 2 now
    p = discreteGaussianSampler(probe);
    for (let i = 0; i < 63; i++) discreteGaussianSampler(r(key++, 1n)); // 65 entries: no clear yet
    expect(discreteGaussianSampler(probe)).toBe(p);
    discreteGaussianSampler(r(key++, 1n)); // size 65 > 64: cleared before this insert
    expect(discreteGaussianSampler(probe)).not.toBe(p);
  });
  it("σ²/t and 1/(2σ²) for huge numerators and denominators (both cut to 64 bits before dividing)", () => {
    // σ² = (10^30 + 1)/10^29 ≈ 10: t = 4, σ²/t = 2 + ≈ 0.5, c ≈ 0.05.
    const s = new DiscreteGaussianSampler(r(10n ** 30n + 1n, 10n ** 29n));
    expect(Reflect.get(s, "m0")).toBe(2);
    expect(Reflect.get(s, "muFrac")).toBeCloseTo(0.5, 14);
    expect(Reflect.get(s, "c")).toBeCloseTo(0.05, 15);
    // Same draws as σ² = 10 up to the ≈ 10^−30 difference: U = 3 (word 3·2^30), kept (MAX), B = 0;
    // γ(3) ≈ 4/320 = 0.0125: word 2^31 is no.
    expect(sample(r(10n ** 30n + 1n, 10n ** 29n), [3 * 2 ** 30, MAX, 0, 2 ** 31])).toBe(3);
    expect(sample(r(10n, 1n), [3 * 2 ** 30, MAX, 0, 2 ** 31])).toBe(3);
    // A small remainder over a huge denominator: σ² = (2^101 + 1)/2^100, t = 2, σ²/t = 1 + 2^−101 (no cut:
    // the shorter of the two has 1 bit).
    const tiny = new DiscreteGaussianSampler(r(2n ** 101n + 1n, 2n ** 100n));
    expect(Reflect.get(tiny, "m0")).toBe(1);
    expect(Reflect.get(tiny, "muFrac")).toBe(2 ** -101);
    const t3 = new DiscreteGaussianSampler(r(4n, 1n));
    expect(Reflect.get(t3, "m0")).toBe(1);
    expect(Reflect.get(t3, "muFrac")).toBe(1 / 3);
    expect(Reflect.get(t3, "c")).toBe(1 / 8);
  });
});
