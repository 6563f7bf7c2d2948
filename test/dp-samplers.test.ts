/**
 * Exact samplers against their exact pmf (chi-square), and the distributed discrete Gaussian
 * pipeline: clipping under adversarial inputs, the variance of the aggregated noise, and
 * encode → modular sum → decode against the plain sum.
 */
import { describe, expect, it } from "vitest";
import { addInPlace, zeros } from "../shared/modular/index.ts";
import { bernoulliExp, calibrateDistributedDp, decodeAggregate, discreteGaussian, discreteLaplace, encodeClientUpdate, RandomSource, roundEvent, deviceEpsilon, rotate, unrotate, rationalOf } from "../shared/dp/index.ts";

/** Chi-square statistic over bins, pooling the tails into the outermost bins. */
function chiSquare(samples: number[], pmf: (k: number) => number, lo: number, hi: number): { stat: number; dof: number } {
  const counts = new Map<number, number>();
  for (const s of samples) {
    const k = Math.min(hi, Math.max(lo, s));
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  let stat = 0;
  let massLo = 0;
  let massHi = 0;
  for (let k = -2000; k <= lo; k++) massLo += pmf(k);
  for (let k = hi; k <= 2000; k++) massHi += pmf(k);
  for (let k = lo; k <= hi; k++) {
    const p = k === lo ? massLo : k === hi ? massHi : pmf(k);
    const e = p * samples.length;
    const o = counts.get(k) ?? 0;
    stat += ((o - e) * (o - e)) / e;
  }
  return { stat, dof: hi - lo };
}

/** Upper 1e-6 quantile of χ²(dof) (Wilson–Hilferty): a correct sampler fails ~once in 10⁶ runs. */
function chiSquareLimit(dof: number): number {
  const z = 4.753;
  return dof * (1 - 2 / (9 * dof) + z * Math.sqrt(2 / (9 * dof))) ** 3;
}

describe("exact samplers (Canonne, Kamath, Steinke 2020)", () => {
  const rng = new RandomSource();

  it("Bernoulli(exp(−γ)) has the right mean for γ below and above 1", () => {
    for (const [num, den] of [[1n, 2n], [3n, 1n], [7n, 3n]] as const) {
      const n = 40_000;
      let hits = 0;
      for (let i = 0; i < n; i++) if (bernoulliExp(rng, { num, den })) hits++;
      const p = Math.exp(-Number(num) / Number(den));
      expect(Math.abs(hits / n - p)).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / n));
    }
  });

  it("discrete Laplace matches its pmf (chi-square)", () => {
    const t = 3n;
    const s = Array.from({ length: 30_000 }, () => Number(discreteLaplace(rng, t)));
    const a = Math.exp(-1 / 3);
    const pmf = (k: number): number => ((1 - a) / (1 + a)) * a ** Math.abs(k);
    const { stat, dof } = chiSquare(s, pmf, -12, 12);
    expect(stat).toBeLessThan(chiSquareLimit(dof));
  });

  it.each([0.7, 4, 12.5])("discrete Gaussian with σ² = %d matches its pmf (chi-square)", (sigma2) => {
    const s = Array.from({ length: 30_000 }, () => Number(discreteGaussian(rng, rationalOf(sigma2))));
    let z = 0;
    for (let k = -2000; k <= 2000; k++) z += Math.exp(-(k * k) / (2 * sigma2));
    const pmf = (k: number): number => Math.exp(-(k * k) / (2 * sigma2)) / z;
    const w = Math.ceil(3 * Math.sqrt(sigma2));
    const { stat, dof } = chiSquare(s, pmf, -w, w);
    expect(stat).toBeLessThan(chiSquareLimit(dof));
  });
});

describe("distributed discrete Gaussian", () => {
  const seed = new Uint8Array(32).fill(7);

  it("rotation is orthonormal and invertible", () => {
    const x = Array.from({ length: 100 }, (_, i) => Math.sin(i) * 3);
    const r = rotate(x, seed);
    expect(r.length).toBe(128);
    const n1 = Math.hypot(...x);
    const n2 = Math.hypot(...r);
    expect(n2).toBeCloseTo(n1, 9);
    const back = unrotate(r, seed, 100);
    back.forEach((v, i) => expect(v).toBeCloseTo(x[i]!, 9));
  });

  it("clips adversarially large updates and refuses non-finite ones", () => {
    const cfg = calibrateDistributedDp({ clip: 1, noiseMultiplier: 0, minSurvivors: 2, expectedSurvivors: 3, bits: 32, dimension: 50, rotationSeed: seed });
    for (const big of [1e30, -3e38, 1e6]) {
      const d = new Float32Array(50).fill(big);
      const { encoded, clippedNorm, wasClipped } = encodeClientUpdate(d, cfg);
      expect(wasClipped).toBe(true);
      expect(clippedNorm).toBeCloseTo(1, 5);
      const back = decodeAggregate(encoded, cfg);
      expect(Math.hypot(...back)).toBeLessThan(1.001);
    }
    expect(() => encodeClientUpdate(new Float32Array(50).fill(NaN), cfg)).toThrow(/not finite/);
    expect(() => encodeClientUpdate(new Float32Array(50).fill(Infinity), cfg)).toThrow(/not finite/);
    expect(() => encodeClientUpdate(new Float32Array(49), cfg)).toThrow(/expects 50/);
  });

  it("decodes the modular sum of encodings to the plain sum of clipped updates", () => {
    const cfg = calibrateDistributedDp({ clip: 2, noiseMultiplier: 0, minSurvivors: 3, expectedSurvivors: 3, bits: 32, dimension: 300, rotationSeed: seed });
    const updates = [0, 1, 2].map((k) => Float32Array.from({ length: 300 }, (_, i) => Math.cos(i * (k + 1)) * 0.05));
    const sum = zeros(32, cfg.paddedDimension);
    for (const u of updates) addInPlace(sum, encodeClientUpdate(u, cfg).encoded);
    const dec = decodeAggregate(sum, cfg);
    for (let i = 0; i < 300; i++) {
      const plain = updates.reduce((a, u) => a + u[i]!, 0);
      expect(Math.abs(dec[i]! - plain)).toBeLessThan(1e-5);
    }
  });

  it("adds aggregated noise whose variance matches the design closely enough to catch a 5 % shortfall", () => {
    const z = 1.2;
    const C = 1;
    const m = 4;
    // The sample variance of N independent zero-mean Gaussian values has relative standard error
    // √(2/N). Refusing below 5 standard errors (a correct encoder fails ~3·10⁻⁷ of runs) while a
    // 5 % variance shortfall still lands 5 of its own standard errors below that bound needs
    // 5·√(2/N) + 5·0.95·√(2/N) ≤ 0.05, i.e. N ≥ 2·(9.75/0.05)² ≈ 76,000. 2^17 coordinates give
    // a margin; with d = d' (a power of two) the unrotation is orthonormal, so Σ decoded² is
    // exactly Σ (integer noise)²/γ², a sum of N independent terms.
    const N = 2 ** 17;
    const cfg = calibrateDistributedDp({ clip: C, noiseMultiplier: z, minSurvivors: m, expectedSurvivors: m, bits: 32, dimension: N, rotationSeed: seed });
    expect(cfg.paddedDimension).toBe(N);
    // The design rule itself is deterministic: m devices' σ² reach (zγC)², never less.
    const sigma2 = Number(cfg.perDeviceVariance.num) / Number(cfg.perDeviceVariance.den);
    expect(m * sigma2).toBeGreaterThanOrEqual((z * cfg.scale * C) ** 2);
    // …and the noise actually drawn has that variance.
    const sum = zeros(32, cfg.paddedDimension);
    for (let k = 0; k < m; k++) addInPlace(sum, encodeClientUpdate(new Float32Array(N), cfg).encoded);
    const dec = decodeAggregate(sum, cfg);
    let sq = 0;
    for (let i = 0; i < N; i++) sq += dec[i]! * dec[i]!;
    const variance = sq / N;
    const design = (m * sigma2) / cfg.scale ** 2; // = (z·C)² in model units, up to σ²'s rounding up
    expect(design / (z * C) ** 2).toBeCloseTo(1, 9);
    const se = design * Math.sqrt(2 / N);
    expect(variance, `variance ${variance} vs design ${design} (se ${se})`).toBeGreaterThan(design - 5 * se);
    expect(variance, `variance ${variance} vs design ${design} (se ${se})`).toBeLessThan(design + 5 * se);
    const e = roundEvent(cfg);
    expect(e.kind).toBe("distributedDiscreteGaussian");
    expect(Number.isFinite(deviceEpsilon([e], 1e-6))).toBe(true);
  });
});
