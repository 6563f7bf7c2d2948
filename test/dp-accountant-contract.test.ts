/**
 * One contract, both accountants (as dp_accounting runs its accountant tests against RDP and
 * PLD alike): whatever the implementation, an accountant must obey these properties. Values are
 * pinned elsewhere (test/dp-accountant.test.ts, test/dp-pld.test.ts); this is what both share.
 */
import { describe, expect, it } from "vitest";
import { AccountantInputError, makeAccountant, UnsupportedEventError, type DpEvent } from "../shared/dp/index.ts";

const gaussian = (z: number): DpEvent => ({ kind: "gaussian", noiseMultiplier: z });
const sampled = (q: number, z: number): DpEvent => ({ kind: "poissonSampled", samplingProbability: q, event: gaussian(z) });

for (const kind of ["rdp", "pld"] as const) {
  describe(`accountant contract: ${kind}`, () => {
    const fresh = () => makeAccountant(kind);

    it("an empty composition is (0, δ)-DP; noOp adds nothing; nonPrivate is ε = ∞", () => {
      expect(fresh().getEpsilon(1e-6)).toBe(0);
      expect(fresh().compose({ kind: "noOp" }).getEpsilon(1e-6)).toBe(0);
      expect(fresh().compose({ kind: "nonPrivate" }).getEpsilon(1e-6)).toBe(Infinity);
    });

    it("ε grows with every composed event, and composing twice equals a count of two", () => {
      const a = fresh().compose(sampled(0.1, 1.2), 10);
      const e10 = a.getEpsilon(1e-6);
      const e20 = a.compose(sampled(0.1, 1.2), 10).getEpsilon(1e-6);
      expect(e20).toBeGreaterThan(e10);
      const b = fresh().compose(sampled(0.1, 1.2), 20).getEpsilon(1e-6);
      expect(b).toBeCloseTo(e20, 6);
      expect(fresh().compose({ kind: "selfComposed", count: 20, event: sampled(0.1, 1.2) }).getEpsilon(1e-6)).toBeCloseTo(e20, 6);
    });

    it("more noise, less sampling or a larger δ never raise ε", () => {
      const eps = (q: number, z: number, delta: number): number => fresh().compose(sampled(q, z), 50).getEpsilon(delta);
      expect(eps(0.05, 2, 1e-6)).toBeLessThan(eps(0.05, 1, 1e-6));
      expect(eps(0.01, 1, 1e-6)).toBeLessThan(eps(0.05, 1, 1e-6));
      expect(eps(0.05, 1, 1e-5)).toBeLessThan(eps(0.05, 1, 1e-7));
    });

    it("getDelta and getEpsilon agree: δ(ε(δ)) ≤ δ", () => {
      const a = fresh().compose(sampled(0.05, 1.1), 100);
      for (const delta of [1e-5, 1e-7, 1e-9]) {
        const e = a.getEpsilon(delta);
        expect(a.getDelta(e)).toBeLessThanOrEqual(delta * (1 + 1e-3));
        expect(a.getDelta(e * 0.9)).toBeGreaterThan(a.getDelta(e));
      }
    });

    it("refuses bad input and checks before it changes anything", () => {
      const a = fresh().compose(sampled(0.1, 1), 5);
      const before = a.getEpsilon(1e-6);
      expect(() => a.compose({ kind: "composed", events: [sampled(0.1, 1), { kind: "nonsense" } as unknown as DpEvent] })).toThrow(UnsupportedEventError);
      expect(a.getEpsilon(1e-6)).toBe(before);
      expect(a.supports({ kind: "nonsense" } as unknown as DpEvent)).toBe(false);
      expect(() => a.getEpsilon(0)).toThrow(AccountantInputError);
      expect(() => a.getEpsilon(1)).toThrow(AccountantInputError);
    });
  });
}
