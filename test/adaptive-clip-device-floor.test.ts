/**
 * Device floors under adaptive clipping: the device computes the round's event itself from the
 * signed config (dpInputsFor → calibrateDistributedDp → roundEvent), so the clip count's cost is
 * in what its guard judges. A coordinator cannot make a device spend more than it consented to
 * by moving C or by choosing σ_b, and the noise floor (minNoiseMultiplier) is compared with the
 * run's total z, which is what the combined mechanism delivers.
 */
import { describe, expect, it } from "vitest";
import { checkRound } from "../client/participant/device-guard.ts";
import { calibrateDistributedDp, deviceEpsilon, roundEvent } from "../shared/dp/index.ts";
import { aggregationLength, dpInputsFor, type RoundConfig } from "../shared/run/index.ts";
import { chooseParams } from "../shared/secagg/index.ts";

const HONEST = chooseParams({ cohortSize: 20, dropoutFraction: 0.1, corruptFraction: 0.1, minSurvivors: 10 });
const cohort = { size: 20, root: "0".repeat(64) };
const cfg = (dp: Partial<RoundConfig["dp"]> = {}): RoundConfig =>
  ({
    parameterCount: 500,
    dp: { mechanism: "ddgauss", clip: 1, noiseMultiplier: 1, minSurvivors: 10, expectedSurvivors: 20, colluders: HONEST.colluders, delta: 1e-6, rotationSeed: Buffer.alloc(32, 3).toString("base64"), ...dp },
    signals: ["commit"],
    cohort,
    secagg: { bits: 32, threshold: HONEST.threshold, degree: HONEST.degree, mode: HONEST.mode, roundSeed: "", guarantee: "" },
  }) as unknown as RoundConfig;
const ADAPTIVE = { targetQuantile: 0.5, learningRate: 0.2, countStddev: 1 };
/** What the participant does on an invitation (client/participant/round-participant.ts). */
const deviceEvent = (c: RoundConfig) => roundEvent(calibrateDistributedDp(dpInputsFor(c)));

describe("device floors with adaptive clipping", () => {
  it("the event a device computes carries the clip count (one more coordinate, larger sensitivity)", () => {
    const plain = deviceEvent(cfg());
    const adaptive = deviceEvent(cfg({ adaptiveClip: ADAPTIVE }));
    expect(aggregationLength(cfg({ adaptiveClip: ADAPTIVE }))).toBe(aggregationLength(cfg()) + 1);
    expect(adaptive).toMatchObject({ kind: "distributedDiscreteGaussian", dimension: (plain as { dimension: number }).dimension + 1 });
  });

  it("a device whose budget covers the update alone at z_Δ but not the count refuses; C does not matter", () => {
    const c = cfg({ adaptiveClip: ADAPTIVE });
    const dp = calibrateDistributedDp(dpInputsFor(c));
    const updateOnly = roundEvent(calibrateDistributedDp({ ...dpInputsFor(c), adaptiveClip: undefined, noiseMultiplier: dp.updateNoiseMultiplier }));
    const full = deviceEvent(c);
    const limit = (deviceEpsilon([updateOnly], 1e-6) + deviceEpsilon([full], 1e-6)) / 2;
    const limits = { maxDeviceEpsilon: limit, delta: 1e-6, minNoiseMultiplier: 0.5, minSurvivors: 5, secagg: { dropoutFraction: 0.1, corruptFraction: 0.1 } };
    for (const clip of [1e-3, 1, 1e3]) {
      const cc = cfg({ clip, adaptiveClip: ADAPTIVE });
      const d = checkRound(cc, deviceEvent(cc), [], limits);
      expect(d.ok, `clip ${clip}`).toBe(false);
      if (!d.ok) expect(d.code).toBe("BUDGET_EXHAUSTED");
    }
    // The same device joins the fixed-clip round at the same z (the count is what tips it over).
    const fixed = checkRound(cfg(), deviceEvent(cfg()), [], { ...limits, maxDeviceEpsilon: deviceEpsilon([full], 1e-6) * 1.05 });
    expect(fixed, JSON.stringify(fixed)).toMatchObject({ ok: true });
  });

  it("the noise floor is judged on the run's total z, and a σ_b too small for it cannot be encoded", () => {
    const limits = { maxDeviceEpsilon: 1e6, delta: 1e-6, minNoiseMultiplier: 1.2, minSurvivors: 5, secagg: { dropoutFraction: 0.1, corruptFraction: 0.1 } };
    const c = cfg({ adaptiveClip: ADAPTIVE }); // z = 1 total (z_Δ > 1 on the update alone)
    const d = checkRound(c, deviceEvent(c), [], limits);
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.code).toBe("NOISE_TOO_LOW");
    // A coordinator asking for σ_b ≤ z/2 gets no event at all: the device cannot join.
    expect(() => deviceEvent(cfg({ adaptiveClip: { ...ADAPTIVE, countStddev: 0.5 } }))).toThrow(/2σ_b > z/);
  });
});
