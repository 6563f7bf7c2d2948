/**
 * The SecAgg parameter finder under the malicious-coordinator analysis (Bell et al. CCS'20):
 * compared with the values the audit computed with its own re-implementation of Google FCP's
 * HararyGraphParameterFinder (semi-malicious), and checked against the device floors so that an
 * honest coordinator never proposes a round a device refuses.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { chooseParams, checkSecAggFloors, minimumThreshold, secaggFloors } from "../shared/secagg/index.ts";

describe("SecAgg parameters against a malicious coordinator", () => {
  // [n, dropout, corrupt, FCP semi-malicious k, t] from the audit's table (§A4).
  for (const [n, d, g, k, t] of [
    [100, 0.2, 0.1, 52, 32],
    [100, 0.1, 0.1, 32, 22],
    [100, 0.05, 0.05, 16, 11],
    [1000, 0.1, 0.1, 96, 67],
    [1000, 0.05, 0.05, 52, 37],
    [1000, 0.2, 0.1, 194, 124],
  ] as const) {
    it(`n=${n}, δ=${d}, γ=${g}: k and t match the semi-malicious reference (${k}, ${t}) or are more conservative by at most 2`, () => {
      const p = chooseParams({ cohortSize: n, dropoutFraction: d, corruptFraction: g, minSurvivors: 2 });
      expect(p.mode).toBe("secagg+");
      expect(p.degree).toBeGreaterThanOrEqual(k);
      expect(p.degree).toBeLessThanOrEqual(k + 2);
      expect(p.threshold).toBeGreaterThanOrEqual(t);
      expect(p.threshold).toBeLessThanOrEqual(t + 2);
      // t > (k + corrupt neighbours)/2: in particular t > k/2 + 1.
      expect(2 * p.threshold - p.degree).toBeGreaterThan(2);
    });
  }

  it("full graph: t > (k + ⌈γn⌉)/2", () => {
    expect(chooseParams({ cohortSize: 8, dropoutFraction: 0.2, corruptFraction: 0.1, minSurvivors: 6 })).toMatchObject({ mode: "full", degree: 7, threshold: 5, colluders: 1 });
    expect(minimumThreshold(20, 19, { dropoutFraction: 0.1, corruptFraction: 0.2 })).toBe(12);
  });

  it("an honest coordinator's parameters always pass the device floors", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 400 }), fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 20 }), (n, dPct, gPct) => {
        const r = { dropoutFraction: dPct / 100, corruptFraction: gPct / 100 };
        const p = chooseParams({ cohortSize: n, ...r, minSurvivors: 2 });
        expect(checkSecAggFloors({ cohortSize: n, threshold: p.threshold, degree: p.degree }, r)).toBeUndefined();
      }),
      { numRuns: 60 },
    );
  });

  it("devices refuse a threshold or a degree below the floors", () => {
    const r = { dropoutFraction: 0.2, corruptFraction: 0.1 };
    const p = chooseParams({ cohortSize: 100, ...r, minSurvivors: 2 });
    const f = secaggFloors(100, r);
    expect(f).toEqual({ minDegree: p.degree, minThreshold: p.threshold });
    expect(checkSecAggFloors({ cohortSize: 100, threshold: p.threshold - 1, degree: p.degree }, r)).toMatch(/threshold .* is below the minimum/);
    expect(checkSecAggFloors({ cohortSize: 100, threshold: p.threshold, degree: p.degree - 2 }, r)).toMatch(/degree .* is below the minimum/);
    // The audit's t = 1 config.
    expect(checkSecAggFloors({ cohortSize: 8, threshold: 1, degree: 7 }, r)).toMatch(/threshold 1 is below/);
  });
});
