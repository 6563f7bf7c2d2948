/**
 * Noise calibration from a target ε (`calibrateNoiseMultiplier`, behind `--target-epsilon`):
 * the multiplier it returns reaches the target and is the smallest that does — not a looser
 * bound that wastes utility, nor half the noise that breaks the promise. Pinned against the RDP
 * accountant itself and against a dp_accounting reference vector.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { calibrateNoiseMultiplier, deviceEpsilon, gaussianRoundsEpsilon, type DpEvent } from "../shared/dp/index.ts";
import { readReferenceVectors } from "../scripts/dp-reference/reference-vectors.ts";

describe("calibrateNoiseMultiplier", () => {
  it("returns the smallest z whose ε after all rounds is at most the target", () => {
    fc.assert(
      fc.property(fc.double({ min: 0.5, max: 30, noNaN: true }), fc.integer({ min: 1, max: 200 }), fc.constantFrom(1e-5, 1e-6, 1e-9), (target, rounds, delta) => {
        const z = calibrateNoiseMultiplier({ targetEpsilon: target, delta, rounds });
        expect(gaussianRoundsEpsilon(z, rounds, delta)).toBeLessThanOrEqual(target);
        expect(gaussianRoundsEpsilon(z * 0.999, rounds, delta)).toBeGreaterThan(target);
      }),
      { numRuns: 25 },
    );
  });

  it("calibrates over the real per-round event when given one", () => {
    // A per-round event whose ε is larger than the Gaussian's with the same z (like the DDG's
    // rounding inflation): the calibrated z must be larger too.
    const eventFor = (z: number): DpEvent => ({ kind: "gaussian", noiseMultiplier: z / 1.1 });
    const plain = calibrateNoiseMultiplier({ targetEpsilon: 8, delta: 1e-6, rounds: 10 });
    const inflated = calibrateNoiseMultiplier({ targetEpsilon: 8, delta: 1e-6, rounds: 10, eventFor });
    expect(inflated / plain).toBeCloseTo(1.1, 6);
    expect(deviceEpsilon(Array.from({ length: 10 }, () => eventFor(inflated)), 1e-6)).toBeLessThanOrEqual(8);
  });

  it("inverts a dp_accounting reference ε: sampled rounds at the vector's q give back its z", () => {
    const v = readReferenceVectors().find((x) => x.sampling === "poisson" && x.q < 1 && x.steps >= 100)!;
    const z = calibrateNoiseMultiplier({ targetEpsilon: v.rdp, delta: v.delta, rounds: v.steps, samplingProbability: v.q });
    expect(z).toBeGreaterThan(v.z * (1 - 1e-6));
    expect(z).toBeLessThan(v.z * (1 + 1e-6));
  });

  it("refuses a target it cannot reach or that is not positive", () => {
    expect(() => calibrateNoiseMultiplier({ targetEpsilon: 0, delta: 1e-6, rounds: 1 })).toThrow(/positive/);
    expect(() => calibrateNoiseMultiplier({ targetEpsilon: 1e-12, delta: 1e-6, rounds: 1000 })).toThrow(/no noise multiplier/);
  });
});
