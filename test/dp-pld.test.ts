/**
 * The PLD accountant's building blocks (shared/dp/pld), in process: FFT vs the naive convolution
 * (property test), Φ vs scipy, the plain Gaussian vs the Balle–Wang analytic ε, tails, composition,
 * the PldAccountant's events and refusals. The grid against dp_accounting and the CLI contract are
 * in dp-pld-grid.test.ts.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { AccountantInputError, deviceEpsilon, makeAccountant, PldAccountant, RdpAccountant, UnsupportedEventError, type DpEvent, type DistributedDiscreteGaussianEvent } from "../shared/dp/index.ts";
import {
  composePmfs,
  connectDotsEpsilonForDelta,
  convolveFft,
  convolveNaive,
  equivalentNoiseMultiplier,
  fft,
  GaussianPrivacyLoss,
  makePmf,
  mergeLeaves,
  normalCdf,
  normalLogCdf,
  normalPpf,
  pldOfLeaves,
  pmfDeltaForEpsilon,
  pmfEpsilonForDelta,
  selfComposePmf,
  selfConvolve,
  truncateTails,
} from "../shared/dp/pld/index.ts";

import { pldEpsilon, vectors } from "./support/pld-vectors.ts";

describe("FFT", () => {
  // Probabilities-like values on a 1e-6 lattice in [−1, 1] (fc.double also yields subnormals,
  // for which a relative bound means nothing).
  const coefficient = fc.integer({ min: -1_000_000, max: 1_000_000 }).map((x) => x / 1e6);

  it("convolves like the definition (property test)", () => {
    fc.assert(
      fc.property(
        fc.array(coefficient, { minLength: 1, maxLength: 300 }),
        fc.array(coefficient, { minLength: 1, maxLength: 300 }),
        (a, b) => {
          const want = convolveNaive(a, b);
          const got = convolveFft(a, b);
          expect(got.length).toBe(want.length);
          // Packing both real inputs into one complex transform mixes their round-off, so the
          // error scales with (‖a‖ + ‖b‖)², not ‖a‖·‖b‖ (harmless for probability vectors).
          const scale = (Math.hypot(...a) + Math.hypot(...b)) ** 2;
          for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(1e-12 * scale + 1e-300);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("convolves large inputs (cache-blocked and fused stages) like the definition", () => {
    let x = 7;
    const next = (): number => ((x = (x * 48271) % 2147483647) / 2147483647) - 0.5;
    const a = Float64Array.from({ length: 5000 }, next);
    const b = Float64Array.from({ length: 11_000 }, next); // N = 16384: 2 blocked + fused stages
    const want = convolveNaive(a, b);
    const got = convolveFft(a, b);
    let err = 0;
    for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i]! - want[i]!));
    expect(err).toBeLessThan(1e-10);
    // Natural-order transform at n = 2^15 against the DFT definition at a few frequencies.
    const n = 1 << 15;
    const re = Float64Array.from({ length: n }, next);
    const im = Float64Array.from({ length: n }, next);
    const r0 = re.slice();
    const i0 = im.slice();
    fft(re, im);
    for (const k of [0, 1, 777, n / 2, n - 3]) {
      let sr = 0;
      let si = 0;
      for (let j = 0; j < n; j++) {
        const ang = (-2 * Math.PI * ((j * k) % n)) / n;
        sr += r0[j]! * Math.cos(ang) - i0[j]! * Math.sin(ang);
        si += r0[j]! * Math.sin(ang) + i0[j]! * Math.cos(ang);
      }
      expect(Math.abs(re[k]! - sr)).toBeLessThan(1e-9);
      expect(Math.abs(im[k]! - si)).toBeLessThan(1e-9);
    }
  });

  it("inverts itself and matches the DFT definition", () => {
    const n = 64;
    const re = Float64Array.from({ length: n }, (_, i) => Math.sin(i * 1.3) + 0.1 * i);
    const im = Float64Array.from({ length: n }, (_, i) => Math.cos(i * 0.7));
    const r0 = re.slice();
    const i0 = im.slice();
    fft(re, im);
    for (const k of [0, 1, 5, 31, 63]) {
      let sr = 0;
      let si = 0;
      for (let j = 0; j < n; j++) {
        const a = (-2 * Math.PI * j * k) / n;
        sr += r0[j]! * Math.cos(a) - i0[j]! * Math.sin(a);
        si += r0[j]! * Math.sin(a) + i0[j]! * Math.cos(a);
      }
      expect(re[k]).toBeCloseTo(sr, 10);
      expect(im[k]).toBeCloseTo(si, 10);
    }
    fft(re, im, true);
    for (let j = 0; j < n; j++) {
      expect(re[j]).toBeCloseTo(r0[j]!, 12);
      expect(im[j]).toBeCloseTo(i0[j]!, 12);
    }
    expect(() => fft(new Float64Array(3), new Float64Array(3))).toThrow(/power of two/);
  });
});

describe("normal distribution numerics (vs scipy.stats.norm)", () => {
  it.each([
    [-20, 2.7536241186061556e-89, -203.9171553710973],
    [-10, 7.61985302416047e-24, -53.23128515051248],
    [-5, 2.866515718791933e-7, -15.064998393988727],
    [-3, 0.0013498980316300933, -6.60772622151035],
    [-1.5, 0.06680720126885807, -2.7059444008238898],
    [-1, 0.15865525393145707, -1.8410216450092634],
    [-0.3, 0.3820885778110474, -0.9621028181688505],
    [0, 0.5, -0.6931471805599453],
    [0.7, 0.758036347776927, -0.2770239422771313],
    [2, 0.9772498680518208, -0.023012909328963476],
    [6, 0.9999999990134123, -9.86587645524372e-10],
  ])("Φ(%d)", (x, cdf, logCdf) => {
    expect(Math.abs(normalCdf(x) / cdf - 1)).toBeLessThan(1e-13);
    expect(Math.abs(normalLogCdf(x) - logCdf)).toBeLessThan(1e-13 * Math.max(1, Math.abs(logCdf)));
  });

  it("Φ⁻¹ inverts Φ", () => {
    expect(normalPpf(0.5 * Math.exp(-50))).toBeCloseTo(-9.745474864965933, 12);
    expect(normalPpf(1e-5)).toBeCloseTo(-4.264890793922825, 12);
  });
});

/** Balle & Wang (ICML 2018), Theorem 8: the Gaussian mechanism is (ε, δ)-DP iff Φ(1/(2σ) − εσ) − e^ε Φ(−1/(2σ) − εσ) ≤ δ. */
function analyticGaussianEpsilon(sigma: number, delta: number): number {
  const d = (e: number): number => normalCdf(1 / (2 * sigma) - e * sigma) - Math.exp(e + normalLogCdf(-1 / (2 * sigma) - e * sigma));
  if (d(0) <= delta) return 0;
  let lo = 0;
  let hi = 1;
  while (d(hi) > delta) hi *= 2;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (d(mid) > delta) lo = mid;
    else hi = mid;
  }
  return hi;
}

describe("Gaussian PLD without sampling vs the analytic Gaussian (Balle & Wang 2018)", () => {
  it.each([
    [0.5, 1e-5],
    [1, 1e-6],
    [2, 1e-8],
    [4, 1e-5],
    [1 / Math.sqrt(100), 1e-6],
  ])("σ = %d, δ = %d: pessimistic and within the discretization", (sigma, delta) => {
    const exact = analyticGaussianEpsilon(sigma, delta);
    // The whole PLD materialised (connect-the-dots grid + ε search over the PMF) …
    const { remove } = pldOfLeaves([{ kind: "gaussian", sigma }]);
    const materialised = pmfEpsilonForDelta(remove, delta);
    // … and the closed-form evaluation of the same connect-the-dots curve.
    const closed = connectDotsEpsilonForDelta(new GaussianPrivacyLoss(sigma, 1, "remove"), 1e-4, delta);
    for (const eps of [materialised, closed]) {
      expect(eps).toBeGreaterThanOrEqual(exact);
      expect(eps - exact).toBeLessThan(1e-4);
    }
    expect(Math.abs(materialised - closed)).toBeLessThan(1e-7 * Math.max(1, exact));
  });

  it("covers the q = 1 grid records too large for dp_accounting (analytic ε ≤ PLD ≤ analytic ε + 1e-4 + 1e-6·ε)", () => {
    const missing = vectors.filter((v) => v.sampling === "poisson" && v.q === 1 && v.pld === undefined);
    expect(missing.length).toBe(7);
    for (const v of missing) {
      const exact = analyticGaussianEpsilon(v.z / Math.sqrt(v.steps), v.delta);
      const eps = pldEpsilon(v);
      expect(eps, JSON.stringify(v)).toBeGreaterThanOrEqual(exact);
      // One grid step h = 1e-4, plus the numerical δ margin, which costs more ε where δ(ε) is
      // flat (z = 0.8, T = 10⁴: dδ/dε ≈ −7e-10 at ε ≈ 8513, so 1e-12 of δ is 1.4e-3 of ε).
      expect(eps - exact, JSON.stringify(v)).toBeLessThan(1e-4 + 1e-6 * exact);
    }
  });

  it("the accountant's k-fold Gaussian is the Gaussian with σ/√k", () => {
    const acc = new PldAccountant().compose({ kind: "gaussian", noiseMultiplier: 3 }, 9);
    const eps = acc.getEpsilon(1e-6);
    const exact = analyticGaussianEpsilon(1, 1e-6);
    expect(eps).toBeGreaterThanOrEqual(exact);
    expect(eps - exact).toBeLessThan(1e-4);
    // δ(ε(δ)) ≈ δ on the closed-form path too, and δ(ε) agrees with the materialised PLD.
    expect(acc.getDelta(eps)).toBeLessThanOrEqual(1e-6 * (1 + 1e-9));
    expect(acc.getDelta(eps)).toBeGreaterThan(1e-6 * (1 - 1e-6));
    const { remove } = pldOfLeaves([{ kind: "gaussian", sigma: 1 }]);
    for (const e of [0, 0.5, 2, 4.55]) expect(acc.getDelta(e)).toBeCloseTo(pmfDeltaForEpsilon(remove, e), 11);
  });
});

describe("PLD pieces", () => {
  it("truncates tails pessimistically and keeps the mass", () => {
    const probs = Float64Array.from([1e-17, 2e-17, 0.3, 0.4, 0.3 - 3e-16, 1e-16, 2e-16]);
    const t = truncateTails(probs, 1e-15);
    expect(t.offset).toBe(2);
    expect(t.probs.length).toBe(3);
    expect(t.probs[0]).toBeCloseTo(0.3 + 3e-17, 17);
    expect(t.toInfinity).toBeCloseTo(3e-16, 20);
  });

  it("self-composition by one FFT power matches repeated convolution", () => {
    const base = makePmf(1e-4, -3, Float64Array.from({ length: 1500 }, (_, i) => Math.exp(-(((i - 700) / 150) ** 2))), 1e-12);
    const total = base.probs.reduce((a, b) => a + b, 0);
    const p = makePmf(1e-4, -3, base.probs.map((x) => (x / total) * (1 - 1e-12)), 1e-12);
    const k = 5;
    const fast = selfComposePmf(p, k, 0);
    let slow = p;
    for (let i = 1; i < k; i++) slow = composePmfs(slow, p, 0);
    expect(fast.lower).toBe(slow.lower);
    for (const eps of [0, 0.01, 0.05]) expect(pmfDeltaForEpsilon(fast, eps)).toBeCloseTo(pmfDeltaForEpsilon(slow, eps), 12);
    expect(Math.abs(fast.infinityMass / (k * 1e-12) - 1)).toBeLessThan(1e-9);
  });

  it("a large self-convolution (packed real FFT, fused DIF/DIT stages) matches the definition", () => {
    const p = Float64Array.from({ length: 10_000 }, (_, i) => Math.exp(-(((i - 5000) / 1500) ** 2)) * (1 + 0.3 * Math.sin(i / 7)));
    const got = selfConvolve(p, 2, 0); // window 19,999 → N = 32,768
    const want = convolveNaive(p, p);
    expect(got.offset).toBe(0);
    expect(got.probs.length).toBe(want.length);
    let err = 0;
    let max = 0;
    for (let i = 0; i < want.length; i++) {
      err = Math.max(err, Math.abs(got.probs[i]! - want[i]!));
      max = Math.max(max, want[i]!);
    }
    expect(err / max).toBeLessThan(1e-12);
  });

  it("the Poisson-subsampled REMOVE and ADD PLDs differ and ε takes the larger", () => {
    const r = new GaussianPrivacyLoss(1, 0.1, "remove").toPmf(1e-4);
    const a = new GaussianPrivacyLoss(1, 0.1, "add").toPmf(1e-4);
    const er = pmfEpsilonForDelta(r, 1e-5);
    const ea = pmfEpsilonForDelta(a, 1e-5);
    expect(er).not.toBeCloseTo(ea, 6);
    const acc = new PldAccountant().compose({ kind: "poissonSampled", samplingProbability: 0.1, event: { kind: "gaussian", noiseMultiplier: 1 } });
    expect(acc.getEpsilon(1e-5)).toBeGreaterThanOrEqual(Math.max(er, ea));
    // δ(ε(δ)) ≤ δ
    expect(acc.getDelta(acc.getEpsilon(1e-5))).toBeLessThanOrEqual(1e-5 * (1 + 1e-9));
  });
});

describe("PldAccountant events", () => {
  const g = (z: number): DpEvent => ({ kind: "gaussian", noiseMultiplier: z });
  const ddg: DistributedDiscreteGaussianEvent = { kind: "distributedDiscreteGaussian", l2Sensitivity: 1000, l1Sensitivity: 50_000, perDeviceVariance: 250_000, devices: 16, dimension: 4096 };

  it("noOp, nonPrivate, composed and selfComposed", () => {
    expect(new PldAccountant().compose({ kind: "noOp" }).getEpsilon(1e-5)).toBe(0);
    expect(new PldAccountant().compose({ kind: "nonPrivate" }).getEpsilon(1e-5)).toBe(Infinity);
    expect(new PldAccountant().compose({ kind: "nonPrivate" }).getDelta(3)).toBe(1);
    expect(new PldAccountant().compose(g(0)).getEpsilon(1e-5)).toBe(Infinity);
    expect(new PldAccountant().compose(g(Infinity), 10).getEpsilon(1e-5)).toBe(0);
    expect(() => new PldAccountant().compose(g(Number.NaN))).toThrow(AccountantInputError);
    expect(() => new PldAccountant().compose(g(-1))).toThrow(AccountantInputError);
    const ps: DpEvent = { kind: "poissonSampled", samplingProbability: 0.02, event: g(1.2) };
    const a = new PldAccountant().compose({ kind: "composed", events: [ps, ps, ps] }).getEpsilon(1e-6);
    const b = new PldAccountant().compose({ kind: "selfComposed", count: 3, event: ps }).getEpsilon(1e-6);
    const c = new PldAccountant().compose(ps).compose(ps).compose(ps).getEpsilon(1e-6);
    expect(a).toBeCloseTo(b, 3);
    expect(a).toBeCloseTo(c, 6);
    // Mixed plain and subsampled Gaussians: between the parts and below RDP.
    const mixed: DpEvent = { kind: "composed", events: [g(5), { kind: "selfComposed", count: 100, event: ps }] };
    const pld = new PldAccountant().compose(mixed).getEpsilon(1e-6);
    expect(pld).toBeGreaterThan(new PldAccountant().compose({ kind: "selfComposed", count: 100, event: ps }).getEpsilon(1e-6));
    expect(pld).toBeLessThanOrEqual(new RdpAccountant().compose(mixed).getEpsilon(1e-6));
  });

  it("accounts the distributed discrete Gaussian as its equivalent Gaussian, never below the central Gaussian and below RDP", () => {
    const zEff = equivalentNoiseMultiplier(ddg);
    const central = Math.sqrt(ddg.devices * ddg.perDeviceVariance) / ddg.l2Sensitivity;
    expect(zEff).toBeLessThanOrEqual(central);
    expect(zEff).toBeGreaterThan(0.99 * central);
    for (const ev of [ddg, { kind: "poissonSampled", samplingProbability: 0.05, event: ddg } as DpEvent]) {
      const pld = new PldAccountant().compose(ev, 200).getEpsilon(1e-6);
      const gaussian = new PldAccountant().compose(ev.kind === "poissonSampled" ? { ...ev, event: g(central) } : g(central), 200).getEpsilon(1e-6);
      expect(pld).toBeGreaterThanOrEqual(gaussian);
      expect(pld).toBeLessThanOrEqual(new RdpAccountant().compose(ev, 200).getEpsilon(1e-6));
    }
    expect(new PldAccountant().compose({ ...ddg, perDeviceVariance: 0 }).getEpsilon(1e-6)).toBe(Infinity);
  });

  it("refuses what it cannot account, before changing anything", () => {
    const acc = new PldAccountant().compose({ kind: "poissonSampled", samplingProbability: 0.01, event: g(1) }, 50);
    const before = acc.getEpsilon(1e-6);
    const swor: DpEvent = { kind: "sampledWithoutReplacement", sourceDatasetSize: 1000, sampleSize: 10, event: g(1) };
    expect(() => acc.compose({ kind: "composed", events: [g(1), swor] })).toThrow(UnsupportedEventError);
    expect(() => acc.compose(swor)).toThrow(/sampling without replacement/);
    expect(() => acc.compose({ kind: "poissonSampled", samplingProbability: 0.1, event: { kind: "nonsense" } as unknown as DpEvent })).toThrow(UnsupportedEventError);
    expect(() => acc.compose({ kind: "poissonSampled", samplingProbability: 0.1, event: { kind: "nonPrivate" } })).toThrow(/Poisson sampling of a nonPrivate/);
    expect(() => acc.compose(g(1), -1)).toThrow(AccountantInputError);
    expect(() => acc.compose(g(1), 1.5)).toThrow(AccountantInputError);
    expect(() => acc.compose({ kind: "sampledWithoutReplacement", sourceDatasetSize: 10, sampleSize: 11, event: g(1) })).toThrow(AccountantInputError);
    expect(acc.getEpsilon(1e-6)).toBe(before);
    expect(acc.supports(swor)).toBe(false);
    expect(acc.supports({ kind: "selfComposed", count: 3, event: ddg })).toBe(true);
    expect(() => acc.getEpsilon(0)).toThrow(AccountantInputError);
    expect(() => acc.getEpsilon(1)).toThrow(AccountantInputError);
    expect(() => acc.getEpsilon(Number.NaN)).toThrow(AccountantInputError);
    expect(() => acc.getDelta(-1)).toThrow(AccountantInputError);
    expect(() => new PldAccountant(0)).toThrow(AccountantInputError);
  });

  it("merges a ledger of many rounds exactly (one PLD per distinct mechanism)", () => {
    const rounds = Array.from({ length: 500 }, () => ddg as DpEvent);
    const t0 = performance.now();
    const perRound = deviceEpsilon(rounds, 1e-6, "pld");
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(perRound).toBeCloseTo(new PldAccountant().compose(ddg, 500).getEpsilon(1e-6), 9);
    expect(perRound).toBeLessThanOrEqual(deviceEpsilon(rounds, 1e-6, "rdp"));
    // Distinct plain Gaussians compose to the Gaussian with 1/σ² = Σ 1/σᵢ².
    const merged = mergeLeaves([{ kind: "gaussian", sigma: 3 }, { kind: "gaussian", sigma: 4 }]);
    expect(merged).toHaveLength(1);
    expect(merged[0]!.kind).toBe("gaussian");
    expect(merged[0]!.sigma).toBeCloseTo(12 / 5, 12);
    const ps = { kind: "poissonGaussian" as const, sigma: 1, q: 0.01, count: 10 };
    expect(mergeLeaves([ps, ps, { ...ps, q: 0.02 }])).toEqual([{ ...ps, count: 20 }, { ...ps, q: 0.02 }]);
  });

  it("makeAccountant('pld') gives the PLD accountant", () => {
    expect(makeAccountant("pld")).toBeInstanceOf(PldAccountant);
    expect(() => makeAccountant("xyz" as "pld")).toThrow(AccountantInputError);
  });
});
