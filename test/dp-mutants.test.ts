/**
 * In-process pins of shared/dp's guards and formulas (issue 16): each refusal with its own
 * message, each boundary on the side it belongs, and the closed forms a reviewer's ε rests on
 * (the DDG round event, the aggregate bound, the adaptive-clip multipliers). A mutant that drops
 * a guard, flips a comparison or changes a constant fails one of these. Fast: no training, no
 * Redis, no child processes (vitest.stryker.config.ts offers this file for shared/dp).
 */
import { describe, expect, it } from "vitest";
import { generateKeyPairSync } from "node:crypto";
import { fromSigned, zeros, addInPlace } from "../shared/modular/index.ts";
import {
  AccountantInputError,
  AdaptiveClipError,
  aggregateNormBound,
  calibrateDistributedDp,
  calibrateNoiseMultiplier,
  checkRunAgainstPolicy,
  combinedNoiseMultiplier,
  decodeAggregate,
  decodeCenteredCount,
  deviceEpsilon,
  DistributedDpError,
  encodeClientUpdate,
  equivalentNoiseMultiplier,
  gaussianRoundsEpsilon,
  impossibleAggregate,
  makeAccountant,
  MAX_BITS,
  MAX_CLIP,
  MIN_CLIP,
  nextClip,
  paddedDimension,
  parseDpEvent,
  PldAccountant,
  PolicyError,
  populationEpsilon,
  populationEpsilonFixedSize,
  projectedPopulationEpsilon,
  RandomSource,
  RdpAccountant,
  replaceOneGaussian,
  rotate,
  roundEvent,
  signPolicy,
  unclippedBit,
  unclippedFraction,
  UnsupportedEventError,
  unrotate,
  updateNoiseMultiplier,
  verifyPolicy,
  type CalibrateInput,
  type DpEvent,
  type PolicyBody,
} from "../shared/dp/index.ts";
import { lgamma, logAdd, logComb, logErfc } from "../shared/dp/numerics.ts";

/** A RandomSource handing out scripted words, to pin rejection sampling at its boundaries. */
class ScriptedSource extends RandomSource {
  readonly script: number[];
  constructor(words: number[]) {
    super(4);
    this.script = [...words];
  }
  override nextWord(): number {
    const w = this.script.shift();
    if (w === undefined) throw new Error("the script has no more words");
    return w;
  }
}

const SEED = new Uint8Array(32).fill(7);
/** The privacy policy the policy tests sign and check runs against. */
const reviewer = generateKeyPairSync("ed25519");
const body: PolicyBody = { version: 1, minNoiseMultiplier: 0.8, maxDeviceEpsilon: 8, delta: 1e-6, minSurvivors: 10, allowedSignals: ["commit"] };
const base = (o: Partial<CalibrateInput> = {}): CalibrateInput => ({ clip: 1, noiseMultiplier: 1, minSurvivors: 8, expectedSurvivors: 10, colluders: 1, bits: 32, dimension: 100, rotationSeed: SEED, ...o });

describe("calibrateDistributedDp refuses what it cannot encode", () => {
  it("a clip that is not positive", () => {
    expect(() => calibrateDistributedDp(base({ clip: 0 }))).toThrow("clip must be positive, got 0");
    expect(() => calibrateDistributedDp(base({ clip: NaN }))).toThrow("clip must be positive, got NaN");
  });
  it("a negative or NaN noise multiplier; zero is allowed (no noise)", () => {
    expect(() => calibrateDistributedDp(base({ noiseMultiplier: -0.5 }))).toThrow("noise multiplier must be ≥ 0, got -0.5");
    expect(() => calibrateDistributedDp(base({ noiseMultiplier: NaN }))).toThrow("noise multiplier must be ≥ 0, got NaN");
    const quiet = calibrateDistributedDp(base({ noiseMultiplier: 0 }));
    expect(quiet.perDeviceVariance.num).toBe(0n);
  });
  it("minSurvivors below 1", () => {
    expect(() => calibrateDistributedDp(base({ minSurvivors: 0, colluders: 0 }))).toThrow("minSurvivors must be ≥ 1");
  });
  it("bits outside [8, MAX_BITS] or not an integer, and accepts both ends", () => {
    expect(() => calibrateDistributedDp(base({ bits: 7 }))).toThrow(`bits must be an integer in [8, ${MAX_BITS}], got 7`);
    expect(() => calibrateDistributedDp(base({ bits: MAX_BITS + 1 }))).toThrow(`got ${MAX_BITS + 1}`);
    expect(() => calibrateDistributedDp(base({ bits: 32.5 }))).toThrow("got 32.5");
    expect(calibrateDistributedDp(base({ bits: MAX_BITS })).bits).toBe(MAX_BITS);
    expect(calibrateDistributedDp(base({ bits: 8, minSurvivors: 2, expectedSurvivors: 2, colluders: 0, noiseMultiplier: 0 })).bits).toBe(8);
  });
  it("colluders that leave no honest survivor, negative or fractional; minSurvivors − 1 is the most allowed", () => {
    expect(() => calibrateDistributedDp(base({ colluders: 8 }))).toThrow("colluders must be an integer in [0, minSurvivors − 1], got 8 with minSurvivors 8");
    expect(() => calibrateDistributedDp(base({ colluders: -1 }))).toThrow("got -1 with minSurvivors 8");
    expect(() => calibrateDistributedDp(base({ colluders: 1.5 }))).toThrow("got 1.5 with minSurvivors 8");
    expect(calibrateDistributedDp(base({ colluders: 7 })).colluders).toBe(7);
  });
  it("a modulus too small for the summands", () => {
    expect(() => calibrateDistributedDp(base({ bits: 8, minSurvivors: 200, expectedSurvivors: 200, colluders: 0 }))).toThrow("modulus 2^8 is too small for 200 summands");
  });
});

describe("calibrateDistributedDp's numbers", () => {
  it("sizes σ² for the honest survivors, rounded up to a multiple of 2^-20, never down", () => {
    const c = calibrateDistributedDp(base({ noiseMultiplier: 1.3, colluders: 3 }));
    const exact = (1.3 * c.scale * 1) ** 2 / (8 - 3);
    const v = Number(c.perDeviceVariance.num) / Number(c.perDeviceVariance.den);
    expect(v).toBeGreaterThanOrEqual(exact);
    expect(v - exact).toBeLessThan(2 ** -20 + exact * 1e-15);
    expect(Number.isInteger(v * 2 ** 20)).toBe(true);
  });
  it("uses the larger of expected and minimum survivors as the summand count", () => {
    expect(calibrateDistributedDp(base({ minSurvivors: 8, expectedSurvivors: 10 })).maxSummands).toBe(10);
    expect(calibrateDistributedDp(base({ minSurvivors: 8, expectedSurvivors: 5 })).maxSummands).toBe(8);
  });
  it("pads to the next power of two and bounds Δ₁ by Δ₂·min(√d', Δ₂)", () => {
    const c = calibrateDistributedDp(base({ dimension: 100 }));
    expect(c.paddedDimension).toBe(128);
    expect(c.vectorLength).toBe(128);
    expect(c.l1Bound).toBeCloseTo(c.l2Bound * Math.min(Math.sqrt(128), c.l2Bound), 6);
    // Δ₂ of the rounded vector: min(γC + √d', √(γ²C² + d'/4 + √(2 ln(1/β))(γC + √d'/2))), β = e^(−1/2).
    const g = c.scale;
    const b1 = g + Math.sqrt(128);
    const b2 = Math.sqrt(g * g + 32 + 1 * (g + 0.5 * Math.sqrt(128)));
    expect(c.l2Bound).toBeCloseTo(Math.min(b1, b2), 3);
  });
  it("Δ₂ at a tiny γC (an 8-bit modulus) follows the same bound", () => {
    const c = calibrateDistributedDp(base({ bits: 8, minSurvivors: 2, expectedSurvivors: 2, colluders: 0, noiseMultiplier: 0, dimension: 4 }));
    const g = c.scale;
    const b1 = g + 2;
    const b2 = Math.sqrt(g * g + 1 + (g + 1));
    expect(c.l2Bound).toBeCloseTo(Math.min(b1, b2), 9);
  });
  it("keeps the summed coordinate 8σ (plus m) inside the modulus, and reports a tiny wrap probability", () => {
    const c = calibrateDistributedDp(base());
    const m = 10;
    const z = 1;
    const perGamma = Math.sqrt((m * m) / 128 + (m * z * z) / 7);
    const expected = (2 ** 31 - m - 8 * Math.sqrt(m / 4)) / (8 * perGamma);
    expect(c.scale).toBeCloseTo(expected, 3);
    expect(c.overflowProbabilityBound).toBeGreaterThan(0);
    expect(c.overflowProbabilityBound).toBeLessThan(1e-10);
  });
  it("an adaptive-clip round carries one more coordinate, raises the update's multiplier and charges both", () => {
    const c = calibrateDistributedDp(base({ noiseMultiplier: 1, adaptiveClip: { countStddev: 2 } }));
    expect(c.vectorLength).toBe(c.paddedDimension + 1);
    expect(c.updateNoiseMultiplier).toBeCloseTo(updateNoiseMultiplier(1, 2), 12);
    expect(c.countScale).toBeGreaterThanOrEqual(1);
    const e = roundEvent(c);
    if (e.kind !== "distributedDiscreteGaussian") throw new Error("expected a DDG event");
    expect(e.l2Sensitivity).toBeCloseTo(Math.hypot(c.l2Bound, c.countScale), 6);
    expect(e.l1Sensitivity).toBeCloseTo(c.l1Bound + c.countScale, 6);
    expect(e.dimension).toBe(c.paddedDimension + 1);
  });
  it("the round event: honest devices only, sensitivities and variance as calibrated", () => {
    const c = calibrateDistributedDp(base({ colluders: 2 }));
    const e = roundEvent(c);
    expect(e).toEqual({
      kind: "distributedDiscreteGaussian",
      l2Sensitivity: c.l2Bound,
      l1Sensitivity: c.l1Bound,
      perDeviceVariance: Number(c.perDeviceVariance.num) / Number(c.perDeviceVariance.den),
      devices: 6,
      dimension: 128,
    });
  });
});

describe("encodeClientUpdate and the decoders", () => {
  it("refuses an update of the wrong length or with a non-finite coordinate", () => {
    const c = calibrateDistributedDp(base());
    expect(() => encodeClientUpdate(new Float32Array(99), c)).toThrow("update has 99 values, the round expects 100");
    const bad = new Float32Array(100);
    bad[42] = NaN;
    expect(() => encodeClientUpdate(bad, c)).toThrow("update coordinate 42 is not finite (NaN); refusing to encode");
    bad[42] = Infinity;
    expect(() => encodeClientUpdate(bad, c)).toThrow("update coordinate 42 is not finite (Infinity)");
  });
  it("clips to C and says so; an update at or under C is kept whole", () => {
    const c = calibrateDistributedDp(base({ noiseMultiplier: 0 }));
    const big = new Float32Array(100).fill(0.5); // norm 5
    const r = encodeClientUpdate(big, c);
    expect(r.wasClipped).toBe(true);
    expect(r.clippedNorm).toBeCloseTo(1, 6);
    const small = new Float32Array(100);
    small[3] = 1; // norm exactly 1 = C: not clipped
    const s = encodeClientUpdate(small, c);
    expect(s.wasClipped).toBe(false);
    expect(s.clippedNorm).toBeCloseTo(1, 6);
  });
  it("without noise, one encoded update decodes to itself (32-bit and wider moduli)", () => {
    for (const bits of [32, 40]) {
      const c = calibrateDistributedDp(base({ noiseMultiplier: 0, bits }));
      const x = Float32Array.from({ length: 100 }, (_, i) => Math.sin(i) / 20);
      const sum = zeros(bits, c.vectorLength);
      addInPlace(sum, encodeClientUpdate(x, c).encoded);
      const out = decodeAggregate(sum, c);
      expect(out.length).toBe(100);
      for (let i = 0; i < 100; i++) expect(Math.abs(out[i]! - x[i]!)).toBeLessThan(1e-6);
    }
  });
  it("with noise the decoded update is perturbed, by about the calibrated σ/γ", () => {
    const c = calibrateDistributedDp(base({ noiseMultiplier: 1, dimension: 4096, colluders: 0, minSurvivors: 1, expectedSurvivors: 1 }));
    const x = new Float32Array(4096);
    const sum = zeros(32, c.vectorLength);
    addInPlace(sum, encodeClientUpdate(x, c).encoded);
    const out = decodeAggregate(sum, c);
    const std = Math.sqrt(out.reduce((a, v) => a + v * v, 0) / out.length);
    // σ = zγC/√honest per device; in model units z·C = 1.
    expect(std).toBeGreaterThan(0.9);
    expect(std).toBeLessThan(1.1);
  });
  it("gives up when conditional rounding cannot meet the bound", () => {
    const c = calibrateDistributedDp(base({ noiseMultiplier: 0 }));
    const x = new Float32Array(100).fill(0.1);
    expect(() => encodeClientUpdate(x, { ...c, l2Bound: 1 })).toThrow("conditional rounding did not meet the norm bound in 1000 attempts");
  });
  it("writes the clip bit as ±k in the last coordinate and decodes the centred count", () => {
    const c = calibrateDistributedDp(base({ noiseMultiplier: 0, adaptiveClip: { countStddev: 2 } }));
    const under = new Float32Array(100);
    under[0] = 0.5;
    const over = new Float32Array(100).fill(1);
    const sum = zeros(32, c.vectorLength);
    addInPlace(sum, encodeClientUpdate(under, c).encoded);
    addInPlace(sum, encodeClientUpdate(under, c).encoded);
    addInPlace(sum, encodeClientUpdate(over, c).encoded);
    // Σ(b − ½) = ½ + ½ − ½.
    expect(decodeCenteredCount(sum, c)).toBeCloseTo(0.5, 12);
    expect(decodeAggregate(sum, c).length).toBe(100);
  });
  it("refuses aggregates of the wrong length and a count where the round has none", () => {
    const c = calibrateDistributedDp(base({ noiseMultiplier: 0 }));
    expect(() => decodeAggregate(zeros(32, 64), c)).toThrow("aggregate has 64 values, expected 128");
    expect(() => decodeCenteredCount(zeros(32, 128), c)).toThrow("this round carries no clip count");
    const a = calibrateDistributedDp(base({ noiseMultiplier: 0, adaptiveClip: { countStddev: 2 } }));
    expect(() => decodeCenteredCount(zeros(32, 128), a)).toThrow("aggregate has 128 values, expected 129");
  });
});

describe("the aggregate's plausibility bound", () => {
  it("is m·Δ₂ plus the noise's tail plus one, with ±k per input when the round counts clips", () => {
    const c = calibrateDistributedDp(base());
    const s2 = Number(c.perDeviceVariance.num) / Number(c.perDeviceVariance.den);
    const noise = Math.sqrt(5 * s2) * (Math.sqrt(128) + Math.sqrt(80 * Math.LN2)) * 1.1;
    expect(aggregateNormBound(c, 5)).toBeCloseTo(5 * c.l2Bound + noise + 1, 0);
    const a = calibrateDistributedDp(base({ adaptiveClip: { countStddev: 2 } }));
    const s2a = Number(a.perDeviceVariance.num) / Number(a.perDeviceVariance.den);
    const noiseA = Math.sqrt(5 * s2a) * (Math.sqrt(129) + Math.sqrt(80 * Math.LN2)) * 1.1;
    expect(aggregateNormBound(a, 5)).toBeCloseTo(5 * Math.hypot(a.l2Bound, a.countScale) + noiseA + 1, 0);
  });
  it("accepts a sum at the bound and refuses one just past it, naming both norms", () => {
    const c = calibrateDistributedDp(base({ noiseMultiplier: 0 }));
    const bound = aggregateNormBound(c, 2);
    const at = new Float64Array(128);
    at[0] = Math.floor(bound);
    expect(impossibleAggregate(fromSigned(32, at), c, 2)).toBeUndefined();
    const past = new Float64Array(128);
    past[0] = Math.ceil(bound) + 1;
    expect(impossibleAggregate(fromSigned(32, past), c, 2)).toMatch(/^the aggregate's norm .* exceeds what 2 clipped, noised inputs can reach \(/);
  });
});

describe("accounting entry points", () => {
  const g: DpEvent = { kind: "gaussian", noiseMultiplier: 1 };
  it("makes the two accountants and refuses any other", () => {
    expect(makeAccountant("rdp")).toBeInstanceOf(RdpAccountant);
    expect(makeAccountant("pld")).toBeInstanceOf(PldAccountant);
    expect(() => makeAccountant("laplace" as "rdp")).toThrow("unknown accountant 'laplace' (rdp or pld)");
  });
  it("no rounds cost nothing, whatever the accountant", () => {
    expect(deviceEpsilon([], 1e-6)).toBe(0);
    expect(deviceEpsilon([], 1e-6, "pld")).toBe(0);
    expect(populationEpsilon({ perRound: g, samplingProbability: 0.1, rounds: 0, delta: 1e-6 })).toBe(0);
    expect(populationEpsilon({ perRound: [], samplingProbability: 0.1, rounds: 5, delta: 1e-6 })).toBe(0);
    expect(populationEpsilonFixedSize([], 1e-6)).toBe(0);
    expect(projectedPopulationEpsilon({ event: g, eligible: 100, cohort: 10 }, 0, 1e-6)).toBe(0);
  });
  it("device ε uses the accountant asked for", () => {
    const events = [g, g, g];
    expect(deviceEpsilon(events, 1e-6, "rdp")).toBeCloseTo(new RdpAccountant().compose(g, 3).getEpsilon(1e-6), 12);
    expect(deviceEpsilon(events, 1e-6, "pld")).toBeCloseTo(new PldAccountant().compose(g, 3).getEpsilon(1e-6), 12);
    expect(deviceEpsilon(events, 1e-6, "pld")).not.toBeCloseTo(deviceEpsilon(events, 1e-6, "rdp"), 3);
  });
  it("population ε: a list of rounds and a repeated round agree, and sampling lowers ε", () => {
    const list = populationEpsilon({ perRound: [g, g, g, g], samplingProbability: 0.05, rounds: 99, delta: 1e-6 });
    const repeated = populationEpsilon({ perRound: g, samplingProbability: 0.05, rounds: 4, delta: 1e-6 });
    expect(list).toBeCloseTo(repeated, 9);
    expect(repeated).toBeLessThan(deviceEpsilon([g, g, g, g], 1e-6));
  });
  it("replace-one doubles the sensitivity: half the Gaussian's multiplier; other kinds are refused", () => {
    expect(replaceOneGaussian({ kind: "gaussian", noiseMultiplier: 3 })).toEqual({ kind: "gaussian", noiseMultiplier: 1.5 });
    expect(() => replaceOneGaussian({ kind: "noOp" })).toThrow("no replace-one Gaussian for a noOp event");
  });
  it("fixed-size sampling: amplified when the cohort is a small share, never above the unamplified figure", () => {
    const g = { kind: "gaussian", noiseMultiplier: 2 } as const;
    const small = populationEpsilonFixedSize([{ event: g, eligible: 1000, cohort: 10 }], 1e-6);
    const all = populationEpsilonFixedSize([{ event: g, eligible: 10, cohort: 10 }], 1e-6);
    expect(small).toBeLessThan(all);
    expect(all).toBeCloseTo(deviceEpsilon([g], 1e-6), 12);
    expect(projectedPopulationEpsilon({ event: g, eligible: 1000, cohort: 10 }, 3, 1e-6)).toBeLessThan(deviceEpsilon([g, g, g], 1e-6));
    expect(projectedPopulationEpsilon({ event: g, eligible: 10, cohort: 10 }, 3, 1e-6)).toBeCloseTo(deviceEpsilon([g, g, g], 1e-6), 12);
  });
  it("a cohort of one drawn from one device is allowed", () => {
    expect(Number.isFinite(populationEpsilonFixedSize([{ event: { kind: "gaussian", noiseMultiplier: 2 }, eligible: 1, cohort: 1 }], 1e-6))).toBe(true);
  });
  it("replace-one for a distributed discrete Gaussian round doubles both sensitivities", () => {
    const e = roundEvent(calibrateDistributedDp(base()));
    if (e.kind !== "distributedDiscreteGaussian") throw new Error("expected a DDG event");
    const r = replaceOneGaussian(e);
    expect(r).toEqual({ kind: "gaussian", noiseMultiplier: equivalentNoiseMultiplier({ ...e, l2Sensitivity: 2 * e.l2Sensitivity, l1Sensitivity: 2 * e.l1Sensitivity }) });
    // τ is 0 at this σ², so the multiplier is the zero-out one halved.
    if (r.kind !== "gaussian") throw new Error("expected a Gaussian");
    expect(r.noiseMultiplier).toBeCloseTo(equivalentNoiseMultiplier(e) / 2, 9);
  });
  it("refuses a cohort that cannot be drawn: empty, larger than the eligible pool, fractional", () => {
    expect(() => populationEpsilonFixedSize([{ event: g, eligible: 10, cohort: 0 }], 1e-6)).toThrow("a cohort of 0 cannot be drawn from 10 eligible devices");
    expect(() => populationEpsilonFixedSize([{ event: g, eligible: 10, cohort: 11 }], 1e-6)).toThrow("a cohort of 11 cannot be drawn from 10 eligible devices");
    expect(() => populationEpsilonFixedSize([{ event: g, eligible: 10.5, cohort: 5 }], 1e-6)).toThrow("a cohort of 5 cannot be drawn from 10.5 eligible devices");
    expect(() => populationEpsilonFixedSize([{ event: g, eligible: 10, cohort: 2.5 }], 1e-6)).toThrow("a cohort of 2.5 cannot be drawn");
  });
  it("gaussianRoundsEpsilon samples only below q = 1", () => {
    expect(gaussianRoundsEpsilon(1, 5, 1e-6)).toBeCloseTo(deviceEpsilon([g, g, g, g, g], 1e-6), 12);
    expect(gaussianRoundsEpsilon(1, 5, 1e-6, 0.01)).toBeLessThan(gaussianRoundsEpsilon(1, 5, 1e-6));
  });
  it("gaussianRoundsEpsilon at q = 1 is the plain Gaussian bit for bit, not a Poisson event at rate 1", () => {
    // Where 2z² is subnormal, the Gaussian's α/(2·z²) and the sampled Gaussian's α/(2z·z) round
    // apart (ε ≈ 1.44·10³⁰⁸ here, one ulp): the one place a rate-1 sampling event shows.
    const z = 6.174195969233767e-155;
    const plain = deviceEpsilon([{ kind: "gaussian", noiseMultiplier: z }], 1e-6);
    expect(plain).not.toBe(new RdpAccountant().compose({ kind: "poissonSampled", samplingProbability: 1, event: { kind: "gaussian", noiseMultiplier: z } }).getEpsilon(1e-6));
    expect(gaussianRoundsEpsilon(z, 1, 1e-6)).toBe(plain);
    expect(gaussianRoundsEpsilon(z, 1, 1e-6, 1)).toBe(plain);
  });
  it("population ε is the RDP account of the Poisson-sampled rounds (a list: its events in turn)", () => {
    const g2: DpEvent = { kind: "gaussian", noiseMultiplier: 1.5 };
    const sampled = (e: DpEvent): DpEvent => ({ kind: "poissonSampled", samplingProbability: 0.05, event: e });
    const four = new RdpAccountant().compose(sampled(g), 4).getEpsilon(1e-6);
    expect(four).toBeGreaterThan(0.1);
    expect(populationEpsilon({ perRound: g, samplingProbability: 0.05, rounds: 4, delta: 1e-6 })).toBeCloseTo(four, 12);
    const mixed = new RdpAccountant().compose(sampled(g)).compose(sampled(g2)).getEpsilon(1e-6);
    expect(mixed).toBeGreaterThan(0.1);
    expect(populationEpsilon({ perRound: [g, g2], samplingProbability: 0.05, rounds: 0, delta: 1e-6 })).toBeCloseTo(mixed, 12);
  });
  it("no rounds cost nothing even at δ = 0 (nothing released is (0, 0)-DP), which no accountant is asked", () => {
    expect(() => new RdpAccountant().getEpsilon(0)).toThrow("delta must be in (0, 1), got 0");
    expect(deviceEpsilon([], 0)).toBe(0);
    expect(populationEpsilon({ perRound: g, samplingProbability: 0.1, rounds: 0, delta: 0 })).toBe(0);
    expect(populationEpsilon({ perRound: [], samplingProbability: 0.1, rounds: 5, delta: 0 })).toBe(0);
    expect(populationEpsilonFixedSize([], 0)).toBe(0);
    expect(projectedPopulationEpsilon({ event: g, eligible: 100, cohort: 10 }, 0, 0)).toBe(0);
  });
  it("replace-one doubles Δ₁ too: it counts once the rounding term τ is not 0", () => {
    // σ² = 0.05 over 2 devices: τ = 10·e^(−π²·0.05) ≈ 6.1, and Δ₁ < Δ₂·√d keeps the Δ₁ bound the smaller.
    const e: DpEvent = { kind: "distributedDiscreteGaussian", l2Sensitivity: 1, l1Sensitivity: 1.5, perDeviceVariance: 0.05, devices: 2, dimension: 4 };
    const tau = 10 * Math.exp(-Math.PI * Math.PI * 0.05);
    const central = Math.sqrt(2 * 0.05);
    const l2 = 2 / central;
    const l1 = 3 / central;
    const rho = 0.5 * (l2 * l2 + 2 * l1 * tau + tau * tau * 4);
    expect(rho).toBeLessThan(0.5 * (l2 + 2 * tau) ** 2);
    const r = replaceOneGaussian(e);
    if (r.kind !== "gaussian") throw new Error("expected a Gaussian");
    expect(r.noiseMultiplier).toBeCloseTo(1 / Math.sqrt(2 * rho), 12);
  });
});

describe("calibrateNoiseMultiplier", () => {
  it("returns the smallest z within the target: ε(z) ≤ target < ε(z − 10⁻⁶·z)", () => {
    const z = calibrateNoiseMultiplier({ targetEpsilon: 3, delta: 1e-6, rounds: 10 });
    expect(gaussianRoundsEpsilon(z, 10, 1e-6)).toBeLessThanOrEqual(3);
    expect(gaussianRoundsEpsilon(z * (1 - 1e-6), 10, 1e-6)).toBeGreaterThan(3);
  });
  it("searches below 1 too, and over a given event with sampling ignored", () => {
    const z = calibrateNoiseMultiplier({ targetEpsilon: 50, delta: 1e-6, rounds: 1 });
    expect(z).toBeLessThan(1);
    expect(gaussianRoundsEpsilon(z, 1, 1e-6)).toBeLessThanOrEqual(50);
    const viaEvent = calibrateNoiseMultiplier({ targetEpsilon: 3, delta: 1e-6, rounds: 10, eventFor: (zz) => ({ kind: "gaussian", noiseMultiplier: zz }) });
    expect(viaEvent).toBeCloseTo(calibrateNoiseMultiplier({ targetEpsilon: 3, delta: 1e-6, rounds: 10 }), 9);
  });
  it("uses the sampling probability when there is no event", () => {
    const sampled = calibrateNoiseMultiplier({ targetEpsilon: 3, delta: 1e-6, rounds: 100, samplingProbability: 0.01 });
    expect(sampled).toBeLessThan(calibrateNoiseMultiplier({ targetEpsilon: 3, delta: 1e-6, rounds: 100 }));
    expect(gaussianRoundsEpsilon(sampled, 100, 1e-6, 0.01)).toBeLessThanOrEqual(3);
  });
  it("refuses a target that is not positive, and one no multiplier up to 10⁶ reaches", () => {
    expect(() => calibrateNoiseMultiplier({ targetEpsilon: 0, delta: 1e-6, rounds: 1 })).toThrow("target ε must be positive, got 0");
    expect(() => calibrateNoiseMultiplier({ targetEpsilon: NaN, delta: 1e-6, rounds: 1 })).toThrow("target ε must be positive, got NaN");
    expect(() => calibrateNoiseMultiplier({ targetEpsilon: 1, delta: 1e-6, rounds: 1, eventFor: () => ({ kind: "nonPrivate" }) })).toThrow("no noise multiplier up to 1e6 reaches ε = 1");
  });
  it("a target met exactly is met: under a noise floor every z meets it, and the search halves [0, 1] all 60 times", () => {
    // The mechanism never adds less noise than z = 2, so ε(z) = ε(2) = the target for every z ≤ 2.
    const floored = (z: number): DpEvent => ({ kind: "gaussian", noiseMultiplier: Math.max(z, 2) });
    const target = deviceEpsilon([floored(2)], 1e-6);
    expect(calibrateNoiseMultiplier({ targetEpsilon: target, delta: 1e-6, rounds: 1, eventFor: floored })).toBe(2 ** -60);
  });
});

describe("parseDpEvent", () => {
  it("names an unknown mechanism, and the field of a malformed event", () => {
    expect(() => parseDpEvent({ kind: "laplace", scale: 1 })).toThrow("unknown mechanism 'laplace'");
    expect(() => parseDpEvent({ kind: "gaussian", noiseMultiplier: -1 })).toThrow(/^malformed DP event: noiseMultiplier: /);
    expect(() => parseDpEvent({ kind: "gaussian", noiseMultiplier: 1, extra: 2 })).toThrow(/^malformed DP event: /);
    expect(() => parseDpEvent(null)).toThrow(/^malformed DP event: /);
    expect(parseDpEvent({ kind: "selfComposed", count: 2, event: { kind: "gaussian", noiseMultiplier: 1 } })).toEqual({ kind: "selfComposed", count: 2, event: { kind: "gaussian", noiseMultiplier: 1 } });
  });
});

describe("adaptive clipping's pure functions", () => {
  it("updateNoiseMultiplier: refuses bad inputs, keeps no noise, needs 2σ_b > z strictly", () => {
    expect(() => updateNoiseMultiplier(-1, 1)).toThrow("noise multiplier must be finite and ≥ 0, got -1");
    expect(() => updateNoiseMultiplier(Infinity, 1)).toThrow("noise multiplier must be finite and ≥ 0, got Infinity");
    expect(() => updateNoiseMultiplier(1, 0)).toThrow("count noise σ_b must be finite and > 0, got 0");
    expect(() => updateNoiseMultiplier(1, Infinity)).toThrow("count noise σ_b must be finite and > 0, got Infinity");
    expect(updateNoiseMultiplier(0, 1)).toBe(0);
    expect(() => updateNoiseMultiplier(2, 1)).toThrow("count noise σ_b 1 is too small for noise multiplier 2: adaptive clipping needs 2σ_b > z");
    expect(updateNoiseMultiplier(1, 1)).toBeCloseTo(1 / Math.sqrt(1 - 0.25), 12);
  });
  it("combinedNoiseMultiplier inverts updateNoiseMultiplier", () => {
    for (const [z, s] of [[0.5, 1], [1, 3], [2.2, 40]] as const) expect(combinedNoiseMultiplier(updateNoiseMultiplier(z, s), s)).toBeCloseTo(z, 12);
    expect(combinedNoiseMultiplier(0, 5)).toBe(0);
  });
  it("the clip bit is 1 at the clip norm", () => {
    expect(unclippedBit(1, 1)).toBe(1);
    expect(unclippedBit(1 + 1e-12, 1)).toBe(0);
  });
  it("unclippedFraction shifts by ½, clamps to [0, 1], maps NaN to ½ and needs a device", () => {
    expect(unclippedFraction(1, 4)).toBeCloseTo(0.75, 12);
    expect(unclippedFraction(10, 4)).toBe(1);
    expect(unclippedFraction(-10, 4)).toBe(0);
    expect(unclippedFraction(NaN, 4)).toBe(0.5);
    expect(() => unclippedFraction(0, 0)).toThrow("a fraction needs ≥ 1 device, got 0");
    expect(unclippedFraction(0, 1)).toBe(0.5);
  });
  it("nextClip: the geometric step, within [MIN_CLIP, MAX_CLIP], refusing a clip that is not positive and finite", () => {
    expect(nextClip(2, 0.8, { targetQuantile: 0.5, learningRate: 0.2 })).toBeCloseTo(2 * Math.exp(-0.2 * 0.3), 12);
    expect(nextClip(2, 0.2, { targetQuantile: 0.5, learningRate: 0.2 })).toBeGreaterThan(2);
    expect(nextClip(MAX_CLIP, 0, { targetQuantile: 0.5, learningRate: 1 })).toBe(MAX_CLIP);
    expect(nextClip(MIN_CLIP, 1, { targetQuantile: 0.5, learningRate: 1 })).toBe(MIN_CLIP);
    expect(() => nextClip(0, 0.5, { targetQuantile: 0.5, learningRate: 0.2 })).toThrow("clip must be finite and > 0, got 0");
    expect(() => nextClip(Infinity, 0.5, { targetQuantile: 0.5, learningRate: 0.2 })).toThrow("clip must be finite and > 0, got Infinity");
  });
});

describe("the rotation", () => {
  it("pads to powers of two", () => {
    expect([1, 2, 3, 4, 5, 8, 9, 1000].map(paddedDimension)).toEqual([1, 2, 4, 4, 8, 8, 16, 1024]);
  });
  it("preserves the norm, spreads a spike, and unrotates exactly, for odd and even log₂ d'", () => {
    for (const d of [6, 13, 100]) {
      const x = new Float64Array(d);
      x[d - 1] = 3;
      const y = rotate(x, SEED);
      expect(y.length).toBe(paddedDimension(d));
      expect(Math.hypot(...y)).toBeCloseTo(3, 9);
      for (const v of y) expect(Math.abs(v)).toBeCloseTo(3 / Math.sqrt(y.length), 9);
      const back = unrotate(y, SEED, d);
      for (let i = 0; i < d; i++) expect(back[i]).toBeCloseTo(x[i]!, 9);
    }
  });
  it("derives its signs from the seed exactly as every other device does (a fixed vector)", () => {
    // Sign i is the sign of the first rotated coordinate of the basis vector eᵢ (H's first row is all +1).
    // Devices and the coordinator must agree on these bits, so they are pinned.
    const bits = Array.from({ length: 32 }, (_, i) => {
      const x = new Float64Array(32);
      x[i] = 1;
      return rotate(x, SEED)[0]! < 0 ? 1 : 0;
    }).join("");
    expect(bits).toBe("10011100000000100100101011111111");
  });
  it("depends on the seed's signs", () => {
    const x = Float64Array.from({ length: 16 }, (_, i) => i + 1);
    const a = rotate(x, SEED);
    const b = rotate(x, new Uint8Array(32).fill(8));
    expect([...a]).not.toEqual([...b]);
    // The wrong seed does not invert it.
    expect([...unrotate(a, new Uint8Array(32).fill(8), 16)].map((v) => Math.round(v))).not.toEqual([...x]);
  });
});

describe("RandomSource", () => {
  it("refuses a chunk that is not a positive multiple of 4 bytes", () => {
    expect(() => new RandomSource(0)).toThrow("RandomSource chunk must be a positive multiple of 4 bytes, got 0");
    expect(() => new RandomSource(2)).toThrow("got 2");
    expect(() => new RandomSource(10)).toThrow("got 10");
    expect(() => new RandomSource(4)).not.toThrow();
  });
  it("counts the words it hands out across refills", () => {
    const r = new RandomSource(8); // two words per refill
    expect(r.wordsDrawn).toBe(0);
    r.nextWord();
    expect(r.wordsDrawn).toBe(1);
    r.nextWord();
    r.nextWord();
    expect(r.wordsDrawn).toBe(3);
  });
  it("nextBit spends one word per 32 bits", () => {
    const r = new RandomSource(8);
    for (let i = 0; i < 32; i++) expect([0, 1]).toContain(r.nextBit());
    expect(r.wordsDrawn).toBe(1);
    r.nextBit();
    expect(r.wordsDrawn).toBe(2);
  });
  it("uniformInt: refuses bounds below 1 or unsafe, returns 0 for 1, stays in range on both paths", () => {
    const r = new RandomSource();
    expect(() => r.uniformInt(0)).toThrow("uniformInt bound must be a safe integer ≥ 1, got 0");
    expect(() => r.uniformInt(2.5)).toThrow("got 2.5");
    expect(() => r.uniformInt(2 ** 54)).toThrow(`got ${2 ** 54}`);
    expect(r.uniformInt(1)).toBe(0);
    const seen = new Set<number>();
    for (let i = 0; i < 400; i++) {
      const v = r.uniformInt(3);
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThan(3);
      seen.add(v);
    }
    expect(seen.size).toBe(3);
    let high = 0;
    for (let i = 0; i < 200; i++) {
      const v = r.uniformInt(2 ** 40 + 3);
      expect(Number.isInteger(v) && v >= 0 && v < 2 ** 40 + 3).toBe(true);
      if (v > 2 ** 39) high++;
    }
    expect(high).toBeGreaterThan(50); // the 53-bit path really draws high values
  });
  it("uniformBigInt: refuses a bound ≤ 0; small and large bounds stay in range", () => {
    const r = new RandomSource();
    expect(() => r.uniformBigInt(0n)).toThrow("uniformBigInt bound must be positive");
    expect(() => r.uniformBigInt(-5n)).toThrow("uniformBigInt bound must be positive");
    for (let i = 0; i < 50; i++) expect(r.uniformBigInt(7n) < 7n).toBe(true);
    const big = 3n * 2n ** 70n + 1n;
    let high = 0;
    for (let i = 0; i < 100; i++) {
      const v = r.uniformBigInt(big);
      expect(v >= 0n && v < big).toBe(true);
      if (v > 2n ** 70n) high++;
    }
    expect(high).toBeGreaterThan(30);
  });
  it("uniformInt(1) is 0 without drawing a word", () => {
    expect(new ScriptedSource([]).uniformInt(1)).toBe(0);
  });
  it("uniformInt up to 2^32: one word per try, rejected from ⌊2^32/n⌋·n up", () => {
    // n = 3: the limit is 2^32 − 1, so the all-ones word is the only one rejected.
    const r = new ScriptedSource([0xffffffff, 7]);
    expect(r.uniformInt(3)).toBe(1);
    expect(r.script).toEqual([]);
    expect(new ScriptedSource([0xfffffffe]).uniformInt(3)).toBe(2);
    // n = 2^32 still takes a single word, whole.
    const edge = new ScriptedSource([0x00200005, 9]);
    expect(edge.uniformInt(2 ** 32)).toBe(0x00200005);
    expect(edge.script).toEqual([9]);
  });
  it("uniformInt above 2^32: 53-bit draws (21 bits of one word, then 32), rejected from ⌊2^53/n⌋·n up", () => {
    // n = 2^40 + 3: ⌊2^53/n⌋ = 8191, so the limit is 8191·n = 2^53 − 2^40 + 24573 = 0x1fff00·2^32 + 24573.
    const n = 2 ** 40 + 3;
    // 2^53 − 1 and the limit itself are rejected; the third draw's top 11 bits are dropped, leaving 5.
    const r = new ScriptedSource([0x1fffff, 0xffffffff, 0x1fff00, 24573, 0xffe00000, 5]);
    expect(r.uniformInt(n)).toBe(5);
    expect(r.script).toEqual([]);
    // limit − 1 = 8191·n − 1 is kept: n − 1.
    expect(new ScriptedSource([0x1fff00, 24572]).uniformInt(n)).toBe(2 ** 40 + 2);
  });
  it("uniformBigInt: below 2^53 one uniformInt; from 2^53 up whole words masked to the bound's bits, rejected from n up", () => {
    expect(new ScriptedSource([10]).uniformBigInt(7n)).toBe(3n);
    // 2^53 is not a safe integer, so it takes the word path: 54 bits in two words. The first
    // draw is exactly 2^53 (rejected); the next high word keeps its low 22 bits, 1.
    const r = new ScriptedSource([0x00200000, 0, 0xffc00001, 5]);
    expect(r.uniformBigInt(2n ** 53n)).toBe(2n ** 32n + 5n);
    expect(r.script).toEqual([]);
    const v = new RandomSource().uniformBigInt(2n ** 53n);
    expect(v >= 0n && v < 2n ** 53n).toBe(true);
  });
});

describe("log-space numerics", () => {
  it("logAdd is log(eᵃ + eᵇ), with −∞ as zero", () => {
    expect(logAdd(Math.log(2), Math.log(3))).toBeCloseTo(Math.log(5), 14);
    expect(logAdd(-Infinity, 1.5)).toBe(1.5);
    expect(logAdd(1.5, -Infinity)).toBe(1.5);
    expect(logAdd(1000, 1000)).toBeCloseTo(1000 + Math.LN2, 12);
    expect(logAdd(-Infinity, -Infinity)).toBe(-Infinity);
  });
  it("lgamma and logComb match factorials, also below ½ (the reflection)", () => {
    expect(lgamma(5)).toBeCloseTo(Math.log(24), 12);
    expect(lgamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 12);
    expect(lgamma(0.25)).toBeCloseTo(1.2880225246980774, 12);
    expect(logComb(10, 3)).toBeCloseTo(Math.log(120), 11);
  });
  it("logErfc on both sides of the series/continued-fraction switch and in the far tail", () => {
    const cases: [number, number][] = [
      [0, Math.log(1)],
      [0.5, Math.log(0.4795001221869535)],
      [2.9, Math.log(4.109787809945886e-5)],
      [3, Math.log(2.209049699858544e-5)],
      [4, Math.log(1.541725790028002e-8)],
      [-1, Math.log(1.8427007929497148)],
      [-4, Math.log(2 - 1.541725790028002e-8)],
    ];
    // Near the switch 1 − erf(x) cancels: about 5·10⁻¹⁰ of log erfc(2.9) is lost there.
    for (const [x, want] of cases) expect(logErfc(x)).toBeCloseTo(want, 8);
    // erfc(30) ≈ 10⁻³⁹³ underflows a double; its logarithm does not (mpmath: −903.974117110644).
    expect(logErfc(30)).toBeCloseTo(-903.974117110644, 6);
  });
  it("logErfc at ±3 itself takes the tail forms: the series would lose 1.4·10⁻⁹ at 3 and 1.6·10⁻¹⁴ at −3", () => {
    // mpmath: log erfc(3) = −10.7203630419811125677, log erfc(−3) = 0.69313613525044681032.
    expect(logErfc(3)).toBeCloseTo(-10.7203630419811125677, 12);
    expect(logErfc(-3)).toBeCloseTo(0.69313613525044681032, 14);
  });
});

describe("the privacy policy", () => {
  const file = signPolicy(body, reviewer.privateKey, reviewer.publicKey);

  it("verifies its own signature, from JSON text or an object", () => {
    expect(verifyPolicy(JSON.stringify(file)).body).toEqual(body);
    expect(verifyPolicy(file, [file.reviewerPublicKey]).reviewerPublicKey).toBe(file.reviewerPublicKey);
  });
  it("refuses text that is not JSON, a file without its parts, impossible values, a bad key, an untrusted signer", () => {
    expect(() => verifyPolicy("{not json")).toThrow(/^policy is not valid JSON: /);
    expect(() => verifyPolicy({ body })).toThrow("policy file must have body, reviewerPublicKey and signature");
    expect(() => verifyPolicy({ body, signature: file.signature })).toThrow("policy file must have body, reviewerPublicKey and signature");
    expect(() => verifyPolicy({ body, reviewerPublicKey: file.reviewerPublicKey })).toThrow("policy file must have body, reviewerPublicKey and signature");
    expect(() => verifyPolicy("null")).toThrow("policy file must have body, reviewerPublicKey and signature");
    expect(() => verifyPolicy({ ...file, body: { ...body, delta: 2 } })).toThrow(/^impossible policy values: delta: /);
    expect(() => verifyPolicy({ ...file, reviewerPublicKey: Buffer.from("short").toString("base64") })).toThrow("policy reviewerPublicKey is not an ed25519 public key");
    expect(() => verifyPolicy({ ...file, body: { ...body, maxDeviceEpsilon: 80 } })).toThrow(/^policy signature does not verify/);
    expect(() => verifyPolicy(file, ["someone else"])).toThrow("policy is signed by a key that is not a registered reviewer");
  });
  it("signPolicy refuses impossible values before signing", () => {
    expect(() => signPolicy({ ...body, minSurvivors: 0 }, reviewer.privateKey, reviewer.publicKey)).toThrow(/^impossible policy values: minSurvivors: /);
  });
  it("checks each rule at its boundary: equal to a limit is allowed, past it is a violation", () => {
    const ok = { noiseMultiplier: 0.8, minSurvivors: 10, signals: ["commit"], projectedDeviceEpsilon: 8 };
    expect(checkRunAgainstPolicy(ok, body)).toEqual([]);
    const rules = (r: typeof ok): string[] => checkRunAgainstPolicy(r, body).map((v) => v.rule);
    expect(rules({ ...ok, noiseMultiplier: 0.79 })).toEqual(["minNoiseMultiplier"]);
    expect(rules({ ...ok, projectedDeviceEpsilon: 8.001 })).toEqual(["maxDeviceEpsilon"]);
    expect(rules({ ...ok, projectedDeviceEpsilon: NaN })).toEqual(["maxDeviceEpsilon"]);
    expect(rules({ ...ok, minSurvivors: 9 })).toEqual(["minSurvivors"]);
    expect(rules({ ...ok, signals: ["commit", "app-switch"] })).toEqual(["allowedSignals"]);
    const v = checkRunAgainstPolicy({ noiseMultiplier: 0.5, minSurvivors: 3, signals: ["x"], projectedDeviceEpsilon: Infinity }, body);
    expect(v.map((x) => x.message)).toEqual([
      "noise multiplier 0.5 is below the policy minimum 0.8 (projected device ε ∞ at δ=0.000001)",
      "projected device ε ∞ at δ=0.000001 exceeds the policy maximum 8",
      "minSurvivors 3 is below the policy minimum 10 (projected device ε ∞)",
      "signals x are not allowed by the policy (allowed: commit)",
    ]);
    expect(checkRunAgainstPolicy({ ...ok, projectedDeviceEpsilon: 9.12345 }, body)[0]!.message).toBe("projected device ε 9.123 at δ=0.000001 exceeds the policy maximum 8");
  });
});

describe("more of calibrateDistributedDp, encodeClientUpdate and the decoders", () => {
  it("every error class names itself", () => {
    expect(new DistributedDpError("x").name).toBe("DistributedDpError");
    expect(new PolicyError("x").name).toBe("PolicyError");
    expect(new AccountantInputError("x").name).toBe("AccountantInputError");
    expect(new AdaptiveClipError("x").name).toBe("AdaptiveClipError");
    expect(new UnsupportedEventError("x").name).toBe("UnsupportedEventError");
    expect(() => new RdpAccountant().getEpsilon(0)).toThrow("delta must be in (0, 1), got 0");
  });
  it("implements the distributed discrete Gaussian only", () => {
    expect(() => calibrateDistributedDp(base({ mechanism: "skellam" }))).toThrow("mechanism skellam is not implemented; use ddgauss");
    expect(calibrateDistributedDp(base({ mechanism: "ddgauss" })).mechanism).toBe("ddgauss");
    expect(calibrateDistributedDp(base()).mechanism).toBe("ddgauss");
  });
  it("with a clip count, γ also leaves room for the count's sum (here the binding limit)", () => {
    // 8-bit modulus, 4 summands, z 0.1, σ_b 0.06, d' = 1024: the count, not the update, limits γ.
    const c = calibrateDistributedDp({ clip: 1, noiseMultiplier: 0.1, minSurvivors: 4, expectedSurvivors: 4, colluders: 0, bits: 8, dimension: 1024, rotationSeed: SEED, adaptiveClip: { countStddev: 0.06 } });
    const zD = updateNoiseMultiplier(0.1, 0.06);
    const forUpdate = (128 - 4 - 8 * Math.sqrt(1)) / (8 * Math.sqrt(16 / 1024 + zD ** 2));
    const forCount = 127 / (zD * (4 / 0.12 + 8 * Math.sqrt(1)));
    expect(forCount).toBeLessThan(forUpdate);
    expect(c.scale).toBeCloseTo(forCount, 9);
    // k = ⌊S / 2σ_b⌋ with S the honest noise std, and the overflow bound adds the count's wrap.
    const s2 = Number(c.perDeviceVariance.num) / Number(c.perDeviceVariance.den);
    expect(c.countScale).toBe(Math.floor(Math.sqrt(4 * s2) / 0.12));
    const v = (4 * c.scale) ** 2 / 1024 + 1 + 4 * s2;
    const wrap = 1024 * 2 * Math.exp(-((128 - 4) ** 2) / (2 * v));
    const count = 2 * Math.exp(-((128 - 4 * c.countScale) ** 2) / (2 * 4 * s2));
    expect(wrap).toBeGreaterThan(0);
    expect(count).toBeGreaterThan(0);
    expect(c.overflowProbabilityBound / (wrap + count)).toBeCloseTo(1, 9);
  });
  it("without a clip count the overflow bound is the coordinates' wrap alone (γ·C, at C ≠ 1)", () => {
    const c = calibrateDistributedDp({ clip: 2, noiseMultiplier: 0.5, minSurvivors: 2, expectedSurvivors: 2, colluders: 0, bits: 8, dimension: 4, rotationSeed: SEED });
    const s2 = Number(c.perDeviceVariance.num) / Number(c.perDeviceVariance.den);
    const v = (2 * c.scale * 2) ** 2 / 4 + 0.5 + 2 * s2;
    const wrap = 4 * 2 * Math.exp(-((128 - 2) ** 2) / (2 * v));
    expect(wrap).toBeGreaterThan(0);
    expect(c.overflowProbabilityBound / wrap).toBeCloseTo(1, 9);
  });
  it("refuses a clip count whose scale k would round to 0 (σ_b far above the honest noise)", () => {
    expect(() => calibrateDistributedDp(base({ noiseMultiplier: 1, adaptiveClip: { countStddev: 1e12 } }))).toThrow(/^the clip count cannot be encoded: with 10 summands, count noise σ_b 1000000000000 and this modulus, its scale k is 0 < 1$/);
  });
  it("conditional rounding tries 1001 times (one word per coordinate each) before giving up", () => {
    const c = calibrateDistributedDp(base({ noiseMultiplier: 0 }));
    const rng = new RandomSource();
    expect(() => encodeClientUpdate(new Float32Array(100).fill(0.1), { ...c, l2Bound: 1 }, rng)).toThrow("conditional rounding did not meet the norm bound in 1000 attempts");
    expect(rng.wordsDrawn).toBe(1001 * 128);
  });
  it("a modulus wider than 32 bits: clips, says so, and adds the noise", () => {
    const c = calibrateDistributedDp(base({ noiseMultiplier: 0, bits: 40 }));
    const over = encodeClientUpdate(new Float32Array(100).fill(0.5), c);
    expect(over.wasClipped).toBe(true);
    expect(over.clippedNorm).toBeCloseTo(1, 6);
    expect(over.encoded.bits).toBe(40);
    const under = new Float32Array(100);
    under[3] = 0.5;
    const u = encodeClientUpdate(under, c);
    expect(u.wasClipped).toBe(false);
    expect(u.clippedNorm).toBeCloseTo(0.5, 6);
    const noisy = calibrateDistributedDp(base({ noiseMultiplier: 1, bits: 40, dimension: 4096, colluders: 0, minSurvivors: 1, expectedSurvivors: 1 }));
    const sum = zeros(40, noisy.vectorLength);
    addInPlace(sum, encodeClientUpdate(new Float32Array(4096), noisy).encoded);
    const out = decodeAggregate(sum, noisy);
    const std = Math.sqrt(out.reduce((a, x) => a + x * x, 0) / out.length);
    expect(std).toBeGreaterThan(0.9);
    expect(std).toBeLessThan(1.1);
  });
  it("decodes the centred count as the last coordinate over 2k", () => {
    const c = calibrateDistributedDp(base({ noiseMultiplier: 0, adaptiveClip: { countStddev: 2 } }));
    const k3 = { ...c, countScale: 3 };
    const v = new Float64Array(c.vectorLength);
    v[c.paddedDimension] = 3 + 3 - 3;
    expect(decodeCenteredCount(fromSigned(32, v), k3)).toBeCloseTo(0.5, 12);
  });
  it("the plausibility bound uses σ² = num/den and accepts a norm exactly at it", () => {
    const c = calibrateDistributedDp(base({ noiseMultiplier: 0 }));
    const frac = { ...c, perDeviceVariance: { num: 3n, den: 4n } };
    expect(aggregateNormBound(frac, 2)).toBeCloseTo(2 * c.l2Bound + Math.sqrt(1.5) * (Math.sqrt(128) + Math.sqrt(80 * Math.LN2)) * 1.1 + 1, 9);
    const exact = { ...c, l2Bound: 3, perDeviceVariance: { num: 0n, den: 1n } };
    expect(aggregateNormBound(exact, 2)).toBe(7);
    const at = new Float64Array(128);
    at[0] = 7;
    expect(impossibleAggregate(fromSigned(32, at), exact, 2)).toBeUndefined();
    at[0] = 8;
    expect(impossibleAggregate(fromSigned(32, at), exact, 2)).toBeDefined();
  });
});

describe("DP events: every kind parses, every bound holds", () => {
  const g = { kind: "gaussian", noiseMultiplier: 1 };
  const ddg = { kind: "distributedDiscreteGaussian", l2Sensitivity: 2, l1Sensitivity: 3, perDeviceVariance: 0, devices: 1, dimension: 1 };
  it("accepts each kind at its bounds", () => {
    for (const e of [
      { kind: "noOp" },
      { kind: "nonPrivate" },
      { kind: "gaussian", noiseMultiplier: 0 },
      { kind: "poissonSampled", samplingProbability: 0, event: g },
      { kind: "poissonSampled", samplingProbability: 1, event: g },
      { kind: "sampledWithoutReplacement", sourceDatasetSize: 1, sampleSize: 0, event: g },
      { kind: "sampledWithoutReplacement", sourceDatasetSize: 100, sampleSize: 10, event: g },
      { kind: "selfComposed", count: 0, event: g },
      { kind: "composed", events: [g, { kind: "noOp" }] },
      ddg,
      { ...ddg, perDeviceVariance: 5, devices: 9, dimension: 1024 },
    ]) expect(parseDpEvent(e)).toEqual(e);
  });
  it("refuses each value out of its range, naming the nested field", () => {
    const bad: [unknown, RegExp][] = [
      [{ kind: "poissonSampled", samplingProbability: 1.5, event: g }, /^malformed DP event: samplingProbability: /],
      [{ kind: "poissonSampled", samplingProbability: -0.1, event: g }, /^malformed DP event: samplingProbability: /],
      [{ kind: "sampledWithoutReplacement", sourceDatasetSize: 0, sampleSize: 0, event: g }, /^malformed DP event: sourceDatasetSize: /],
      [{ kind: "sampledWithoutReplacement", sourceDatasetSize: 5, sampleSize: -1, event: g }, /^malformed DP event: sampleSize: /],
      [{ kind: "selfComposed", count: 2, event: { kind: "gaussian", noiseMultiplier: -1 } }, /^malformed DP event: event\.noiseMultiplier: /],
      // Inside an array zod reports the union as a whole (empty path): still refused.
      [{ kind: "composed", events: [g, { kind: "gaussian" }] }, /^malformed DP event: /],
      [{ ...ddg, perDeviceVariance: -1 }, /^malformed DP event: perDeviceVariance: /],
      [{ ...ddg, devices: 0 }, /^malformed DP event: devices: /],
      [{ ...ddg, dimension: 0 }, /^malformed DP event: dimension: /],
      [{ ...ddg, l2Sensitivity: 0 }, /^malformed DP event: l2Sensitivity: /],
    ];
    for (const [e, re] of bad) expect(() => parseDpEvent(e)).toThrow(re);
  });
  it("a value that is not an object is malformed, not an unknown mechanism", () => {
    expect(() => parseDpEvent("gaussian")).toThrow(/^malformed DP event: /);
    expect(() => parseDpEvent(3)).toThrow(/^malformed DP event: /);
  });
});

describe("the policy's signal list and note", () => {
  const sign = (b: PolicyBody): unknown => signPolicy(b, reviewer.privateKey, reviewer.publicKey);
  it("names unknown signal kinds (three at most, then a count), once each", () => {
    expect(() => sign({ ...body, allowedSignals: ["commit", "bogus", "bogus"] })).toThrow('impossible policy values: allowedSignals: unknown signal kind "bogus" (valid: shortcut, click, app-switch, typing-burst, key, commit, file-change)');
    expect(() => sign({ ...body, allowedSignals: ["a", "b", "c", "d", "e"] })).toThrow('unknown signal kind "a", "b", "c" and 2 more (valid: ');
    expect(() => sign({ ...body, allowedSignals: ["a", "b", "c"] })).toThrow('unknown signal kind "a", "b", "c" (valid: ');
  });
  it("shows at most 64 characters of an unknown name", () => {
    const long = "z".repeat(100);
    expect(() => sign({ ...body, allowedSignals: [long] })).toThrow(`unknown signal kind "${"z".repeat(64)}" (valid: `);
  });
  it("lists the signals a run may not use, and the allowed ones, comma-separated", () => {
    const two = { ...body, allowedSignals: ["commit", "click"] };
    const v = checkRunAgainstPolicy({ noiseMultiplier: 1, minSurvivors: 10, signals: ["key", "shortcut", "commit"], projectedDeviceEpsilon: 1 }, two);
    expect(v).toEqual([{ rule: "allowedSignals", message: "signals key, shortcut are not allowed by the policy (allowed: commit, click)" }]);
  });
  it("allows several known kinds, refuses none, bounds the note", () => {
    expect(verifyPolicy(sign({ ...body, allowedSignals: ["commit", "click", "shortcut"], note: "n" })).body.allowedSignals).toEqual(["commit", "click", "shortcut"]);
    expect(() => sign({ ...body, allowedSignals: [] })).toThrow(/^impossible policy values: allowedSignals: /);
    expect(verifyPolicy(sign({ ...body, note: "x".repeat(2000) })).body.note).toHaveLength(2000);
    expect(() => sign({ ...body, note: "x".repeat(2001) })).toThrow(/^impossible policy values: note: /);
  });
  it("lists every problem with its path: nested paths joined by dots, problems by semicolons", () => {
    const bad = { ...body, delta: 2, allowedSignals: [5] } as unknown as PolicyBody;
    expect(() => sign(bad)).toThrow(/^impossible policy values: delta: .+; allowedSignals\.0: /);
    const file = sign(body) as { body: PolicyBody };
    expect(() => verifyPolicy({ ...file, body: bad })).toThrow(/^impossible policy values: delta: .+; allowedSignals\.0: /);
  });
});
