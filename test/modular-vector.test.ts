import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { addInPlace, fromData, fromSigned, ModularError, subInPlace, toSigned, zeros, limbsFor } from "../shared/modular/index.ts";

describe("modular vectors over Z_(2^bits)", () => {
  for (const bits of [32, 40, 48, 64]) {
    it(`round-trips signed integers and adds with wrap-around at ${bits} bits`, () => {
      const lim = bits >= 53 ? 2 ** 40 : 2 ** (bits - 2);
      fc.assert(
        fc.property(fc.array(fc.tuple(fc.integer({ min: -lim, max: lim }), fc.integer({ min: -lim, max: lim })), { minLength: 1, maxLength: 30 }), (pairs) => {
          const a = fromSigned(bits, pairs.map((p) => p[0]));
          const b = fromSigned(bits, pairs.map((p) => p[1]));
          expect(Array.from(toSigned(a))).toEqual(pairs.map((p) => p[0]));
          addInPlace(a, b);
          // |a+b| < 2^(bits-1), so the centred decoding is the exact integer sum.
          expect(Array.from(toSigned(a))).toEqual(pairs.map((p) => p[0] + p[1]));
          subInPlace(a, b);
          expect(Array.from(toSigned(a))).toEqual(pairs.map((p) => p[0]));
        }),
        { numRuns: 60 },
      );
    });
  }

  it("wraps around the modulus exactly (2^(bits-1) - 1 + 1 becomes -2^(bits-1))", () => {
    for (const bits of [32, 48]) {
      const a = fromSigned(bits, [2 ** (bits - 1) - 1]);
      addInPlace(a, fromSigned(bits, [1]));
      expect(toSigned(a)[0]).toBe(-(2 ** (bits - 1)));
    }
  });

  it("rejects bad shapes and out-of-range moduli with a specific error", () => {
    expect(() => limbsFor(16)).toThrow(ModularError);
    expect(() => limbsFor(65)).toThrow(/\[32, 64\]/);
    expect(() => addInPlace(zeros(32, 3), zeros(32, 4))).toThrow(/shape mismatch/);
    expect(() => fromData(32, 3, new Uint32Array(2))).toThrow(/expected 3/);
    expect(() => fromData(40, 1, new Uint32Array([0, 0x100]))).toThrow(/not below 2\^40/);
    expect(() => fromSigned(32, [0.5])).toThrow(/not a safe integer/);
  });
});
