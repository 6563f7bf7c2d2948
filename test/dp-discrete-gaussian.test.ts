/**
 * The fast exact discrete Gaussian (shared/dp/discrete-gaussian.ts) against the exact pmf
 * exp(−k²/2σ²)/Z: binned chi-square, variance and mean with 10⁶ draws at σ = 1.5, 10 and 10⁴;
 * the BigInt fallbacks (forced on most decisions by widening the undecided band) against the
 * same pmf; σ² whose σ²/t is an integer (μ's fraction exactly 0); the BigInt-only range t > 2^32.
 */
import { describe, expect, it } from "vitest";
import { DiscreteGaussianSampler, RandomSource, rationalOf, type Rational } from "../shared/dp/index.ts";

/** Exact pmf, its variance and fourth moment (doubles; the tails beyond 40σ are < e^−800). */
function exactLaw(sigma2: number): { pmf: (k: number) => number; variance: number; fourth: number; reach: number } {
  const reach = Math.ceil(40 * Math.sqrt(sigma2)) + 10;
  let z = 0;
  let m2 = 0;
  let m4 = 0;
  for (let k = -reach; k <= reach; k++) {
    const w = Math.exp(-(k * k) / (2 * sigma2));
    z += w;
    m2 += w * k * k;
    m4 += w * k * k * k * k;
  }
  return { pmf: (k) => Math.exp(-(k * k) / (2 * sigma2)) / z, variance: m2 / z, fourth: m4 / z, reach };
}

/** Upper 1e-6 quantile of χ²(dof) (Wilson–Hilferty): a correct sampler fails ~once in 10⁶ runs. */
function chiSquareLimit(dof: number): number {
  const z = 4.753;
  return dof * (1 - 2 / (9 * dof) + z * Math.sqrt(2 / (9 * dof))) ** 3;
}

/**
 * χ² over contiguous integer bins, each holding ≥ minExpected expected draws (tails pooled into
 * the outermost bins: the first bin takes everything below it, the last everything above).
 * `counts` maps a draw to its count.
 */
function binnedChiSquare(counts: Map<number, number>, n: number, sigma2: number, minExpected = 80): { stat: number; dof: number } {
  const { pmf, reach } = exactLaw(sigma2);
  // Bins [lo_i, his[i]]: walk from −reach upwards, closing a bin once it holds minExpected.
  const his: number[] = [];
  const probs: number[] = [];
  let p = 0;
  for (let k = -reach; k <= reach; k++) {
    p += pmf(k);
    if (p * n >= minExpected) {
      his.push(k);
      probs.push(p);
      p = 0;
    }
  }
  probs[probs.length - 1]! += p; // the remainder joins the last bin, which also takes every draw above it
  const observed = new Array<number>(his.length).fill(0);
  for (const [k, c] of counts) {
    let a = 0;
    let b = his.length - 1;
    while (a < b) {
      const mid = (a + b) >> 1;
      if (his[mid]! >= k) b = mid;
      else a = mid + 1;
    }
    observed[a]! += c;
  }
  let stat = 0;
  for (let i = 0; i < his.length; i++) {
    const e = probs[i]! * n;
    stat += ((observed[i]! - e) * (observed[i]! - e)) / e;
  }
  return { stat, dof: his.length - 1 };
}

function draw(sampler: DiscreteGaussianSampler, n: number): { counts: Map<number, number>; mean: number; second: number } {
  const rng = new RandomSource();
  const counts = new Map<number, number>();
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < n; i++) {
    const x = sampler.sample(rng);
    if (!Number.isInteger(x)) throw new Error(`non-integer draw ${x}`);
    counts.set(x, (counts.get(x) ?? 0) + 1);
    sum += x;
    sq += x * x;
  }
  return { counts, mean: sum / n, second: sq / n };
}

function expectExactLaw(sigma2Exact: Rational, n: number, options?: { extraMargin?: number }): void {
  const sigma2 = Number(sigma2Exact.num) / Number(sigma2Exact.den);
  const sampler = new DiscreteGaussianSampler(sigma2Exact, options);
  const { counts, mean, second } = draw(sampler, n);
  const { variance, fourth } = exactLaw(sigma2);
  const { stat, dof } = binnedChiSquare(counts, n, sigma2);
  expect(stat, `χ² = ${stat.toFixed(1)} with ${dof} dof`).toBeLessThan(chiSquareLimit(dof));
  // Sample second moment vs the exact variance (mean 0), within 5 standard errors.
  const se2 = Math.sqrt((fourth - variance * variance) / n);
  expect(Math.abs(second - variance), `E[X²] ${second} vs exact ${variance}`).toBeLessThan(5 * se2);
  expect(Math.abs(mean), `mean ${mean}`).toBeLessThan(5 * Math.sqrt(variance / n));
}

describe("fast exact discrete Gaussian against the exact pmf", () => {
  it.each([
    ["1.5", rationalOf(2.25)],
    ["10", rationalOf(100)],
    ["10⁴", rationalOf(1e8)],
  ])("σ = %s: χ², variance and mean over 10⁶ draws", (_label, sigma2) => {
    expectExactLaw(sigma2, 1_000_000);
  });

  it("non-dyadic σ² = 100/3 and σ² = 2 (σ²/t an integer, so μ has no fraction)", () => {
    expectExactLaw({ num: 100n, den: 3n }, 200_000);
    expectExactLaw({ num: 2n, den: 1n }, 200_000);
  });

  it("the BigInt fallbacks are exact: with the undecided band widened to most of a word, the law is unchanged", () => {
    // extraMargin 2^30 sends about half of all decisions (and many γ integer parts) to BigInt.
    expectExactLaw(rationalOf(2.25), 40_000, { extraMargin: 2 ** 30 });
    expectExactLaw(rationalOf(1e8), 20_000, { extraMargin: 2 ** 30 });
  });

  it("σ beyond the fast range (t > 2^32) is still drawn exactly by the BigInt reference", () => {
    const sigma2 = { num: 1n << 70n, den: 1n }; // σ = 2^35
    const sampler = new DiscreteGaussianSampler(sigma2);
    const rng = new RandomSource();
    const n = 4_000;
    let sq = 0;
    for (let i = 0; i < n; i++) sq += sampler.sample(rng) ** 2;
    const v = 2 ** 70;
    expect(Math.abs(sq / n - v)).toBeLessThan(5 * Math.sqrt(2 / n) * v);
  });

  it("σ² = 0 gives 0 and bad parameters are refused", () => {
    expect(new DiscreteGaussianSampler({ num: 0n, den: 1n }).sample(new RandomSource())).toBe(0);
    expect(() => new DiscreteGaussianSampler({ num: 1n, den: 0n })).toThrow(/denominator must be positive/);
    expect(() => new DiscreteGaussianSampler({ num: -1n, den: 1n })).toThrow(/must be ≥ 0/);
    expect(() => new DiscreteGaussianSampler({ num: 1n, den: 1n }, { extraMargin: -1 })).toThrow(/extraMargin/);
    expect(() => new RandomSource(6)).toThrow(/multiple of 4/);
  });
});
