/**
 * Adaptive clipping (Andrew et al. 2021; shared/dp/adaptive-clip.ts): the pure math as
 * properties, the clip count riding in the distributed-DP vector, its cost in the round's event,
 * and the device-side guarantees (the coordinator's C cannot weaken the noise; a count noise
 * too small for the run's z is refused).
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  AdaptiveClipError,
  calibrateDistributedDp,
  combinedNoiseMultiplier,
  decodeAggregate,
  decodeCenteredCount,
  deviceEpsilon,
  DistributedDpError,
  encodeClientUpdate,
  impossibleAggregate,
  MAX_CLIP,
  nextClip,
  roundEvent,
  unclippedBit,
  unclippedFraction,
  updateNoiseMultiplier,
  type CalibrateInput,
} from "../shared/dp/index.ts";
import { addInPlace, zeros } from "../shared/modular/index.ts";
import { parseRunSpec, RunSpecError } from "../shared/run/index.ts";
import { tinyRunSpec } from "./support/cluster.ts";

const finite = (lo: number, hi: number) => fc.double({ min: lo, max: hi, noNaN: true, noDefaultInfinity: true });

describe("adaptive-clip math", () => {
  it("z_Δ makes the update and the count one Gaussian of multiplier z, and z_Δ > z", () => {
    fc.assert(
      fc.property(finite(0.05, 50), finite(1.001, 200), (z, ratio) => {
        const sigmaB = (z / 2) * ratio; // 2σ_b > z
        const zd = updateNoiseMultiplier(z, sigmaB);
        expect(zd).toBeGreaterThan(z);
        expect(combinedNoiseMultiplier(zd, sigmaB)).toBeCloseTo(z, 9);
      }),
    );
  });
  it("refuses a count noise with 2σ_b ≤ z, and keeps no noise as no noise", () => {
    expect(() => updateNoiseMultiplier(1, 0.5)).toThrow(AdaptiveClipError);
    expect(() => updateNoiseMultiplier(1, 0.4)).toThrow(/2σ_b > z/);
    expect(updateNoiseMultiplier(0, 0.1)).toBe(0);
    // The paper's example scale: z = 1, σ_b = m/20 with m = 100 → z_Δ ≈ 1.005.
    expect(updateNoiseMultiplier(1, 5)).toBeCloseTo(1 / Math.sqrt(1 - 1 / 100), 12);
  });
  it("the geometric update moves C against b̄ − γ, by at most a factor e^η, within bounds", () => {
    fc.assert(
      fc.property(finite(1e-3, 1e3), finite(0, 1), finite(0.05, 0.95), finite(0.01, 1), (c, f, g, eta) => {
        const n = nextClip(c, f, { targetQuantile: g, learningRate: eta });
        if (f > g) expect(n).toBeLessThan(c);
        if (f < g) expect(n).toBeGreaterThan(c);
        expect(n / c).toBeLessThanOrEqual(Math.exp(eta) * (1 + 1e-12));
        expect(n / c).toBeGreaterThanOrEqual(Math.exp(-eta) * (1 - 1e-12));
      }),
    );
    expect(nextClip(MAX_CLIP, 0, { targetQuantile: 0.5, learningRate: 1 })).toBe(MAX_CLIP);
  });
  it("b̄ is the centred sum shifted back and clamped to [0, 1]; the bit is ‖Δ‖ ≤ C", () => {
    fc.assert(fc.property(finite(-1e6, 1e6), fc.integer({ min: 1, max: 10_000 }), (s, n) => {
      const f = unclippedFraction(s, n);
      expect(f).toBeGreaterThanOrEqual(0);
      expect(f).toBeLessThanOrEqual(1);
    }));
    expect(unclippedFraction(-0.5 + 0.5 - 0.5, 3)).toBeCloseTo(1 / 3, 12); // b = [1, 0, 0]
    expect(unclippedBit(1, 1)).toBe(1);
    expect(unclippedBit(1.0001, 1)).toBe(0);
  });
});

const base = (o: Partial<CalibrateInput> = {}): CalibrateInput => ({ clip: 1, noiseMultiplier: 1, minSurvivors: 90, expectedSurvivors: 100, colluders: 10, bits: 32, dimension: 1000, rotationSeed: new Uint8Array(32).fill(7), ...o });

describe("the clip count in the distributed discrete Gaussian", () => {
  it("without noise, sums the centred bits exactly beside the clipped updates", () => {
    const cfg = calibrateDistributedDp(base({ noiseMultiplier: 0, minSurvivors: 3, expectedSurvivors: 3, colluders: 0, dimension: 50, adaptiveClip: { countStddev: 1 } }));
    expect(cfg.countScale).toBe(1);
    expect(cfg.vectorLength).toBe(cfg.paddedDimension + 1);
    const norms = [0.5, 2, 3];
    const sum = zeros(32, cfg.vectorLength);
    const expected = new Float64Array(50);
    for (const n of norms) {
      const d = new Float32Array(50);
      d[0] = n;
      addInPlace(sum, encodeClientUpdate(d, cfg).encoded);
      expected[0] = expected[0]! + Math.min(n, 1);
    }
    expect(decodeCenteredCount(sum, cfg)).toBe(1 - 1.5); // one unclipped of three
    expect(unclippedFraction(decodeCenteredCount(sum, cfg), 3)).toBeCloseTo(1 / 3, 12);
    expect(decodeAggregate(sum, cfg)[0]).toBeCloseTo(expected[0]!, 3);
    expect(impossibleAggregate(sum, cfg, 3)).toBeUndefined();
  });

  it("charges the count: the round's ε is that of multiplier z, above the update's alone (z_Δ)", () => {
    fc.assert(
      fc.property(finite(0.5, 4), fc.integer({ min: 20, max: 400 }), (z, m) => {
        const sigmaB = Math.max(0.05 * m, 0.51 * z + 0.01);
        const io = base({ noiseMultiplier: z, minSurvivors: m, expectedSurvivors: m, colluders: 0 });
        const adaptive = calibrateDistributedDp({ ...io, adaptiveClip: { countStddev: sigmaB } });
        const S = Math.sqrt(m * (Number(adaptive.perDeviceVariance.num) / Number(adaptive.perDeviceVariance.den)));
        // The count's own multiplier is at least 2σ_b (k rounded down).
        expect(S / adaptive.countScale).toBeGreaterThanOrEqual(2 * sigmaB * (1 - 1e-12));
        // … and not much more: γ leaves room in the modulus for k at its target, so b̄'s noise is σ_b.
        expect(S / adaptive.countScale).toBeLessThan(2 * sigmaB * 1.01);
        expect(adaptive.updateNoiseMultiplier).toBeCloseTo(updateNoiseMultiplier(z, sigmaB), 12);
        const eps = (c: CalibrateInput) => deviceEpsilon(Array(10).fill(roundEvent(calibrateDistributedDp(c))), 1e-6);
        const epsAdaptive = deviceEpsilon(Array(10).fill(roundEvent(adaptive)), 1e-6);
        // Never cheaper than the plain mechanism at z_Δ (the count costs something) …
        expect(epsAdaptive).toBeGreaterThan(eps({ ...io, noiseMultiplier: adaptive.updateNoiseMultiplier }) * (1 - 1e-9));
        // … and the same budget as the plain mechanism at the run's z (up to rounding of k and Δ₂).
        expect(epsAdaptive / eps(io)).toBeLessThan(1.02);
      }),
      { numRuns: 15 },
    );
  });

  it("the coordinator's choice of C does not change what a device spends", () => {
    fc.assert(
      fc.property(finite(1e-4, 1e4), (clip) => {
        const at = (c: number) => deviceEpsilon([roundEvent(calibrateDistributedDp(base({ clip: c, adaptiveClip: { countStddev: 5 } })))], 1e-6);
        expect(at(clip)).toBeCloseTo(at(1), 6);
      }),
      { numRuns: 20 },
    );
  });

  it("refuses a count noise too small for the round's z, on the device and in the spec", () => {
    expect(() => calibrateDistributedDp(base({ noiseMultiplier: 2, adaptiveClip: { countStddev: 1 } }))).toThrow(DistributedDpError);
    expect(() => parseRunSpec(tinyRunSpec({ noiseMultiplier: 2, adaptiveClip: { targetQuantile: 0.5, learningRate: 0.2, countStddev: 1 } }))).toThrow(RunSpecError);
    expect(() => parseRunSpec(tinyRunSpec({ noiseMultiplier: 2, adaptiveClip: { targetQuantile: 0.5, learningRate: 0.2, countStddev: 1 } }))).toThrow(/countStddev must exceed noiseMultiplier \/ 2/);
    expect(() => parseRunSpec(tinyRunSpec({ adaptiveClip: { targetQuantile: 0.99, learningRate: 0.2, countStddev: 1 } }))).toThrow(/targetQuantile/);
    expect(parseRunSpec(tinyRunSpec({ noiseMultiplier: 1, adaptiveClip: { targetQuantile: 0.5, learningRate: 0.2, countStddev: 1 } })).adaptiveClip?.countStddev).toBe(1);
  });

  it("leaves a fixed-clip round's encoding and event exactly as before", () => {
    const cfg = calibrateDistributedDp(base());
    expect(cfg.countScale).toBe(0);
    expect(cfg.vectorLength).toBe(cfg.paddedDimension);
    const e = roundEvent(cfg);
    expect(e).toMatchObject({ l2Sensitivity: cfg.l2Bound, l1Sensitivity: cfg.l1Bound, dimension: cfg.paddedDimension });
  });
});
