/**
 * Error-correcting Shamir reconstruction (finding M2): with n shares of a threshold-t secret, up
 * to ⌊(n − t)/2⌋ wrong shares are located and the secret still comes out right. Property tests
 * against the project's own share generator; the wrong shares are random field elements.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { createShares, decodeSecret, FIELD_PRIME, locateErrors, SecAggError, type Share } from "../shared/secagg/index.ts";

const secretArb = fc.bigInt({ min: 0n, max: FIELD_PRIME - 1n });
const fieldArb = fc.bigInt({ min: 1n, max: FIELD_PRIME - 1n });

/** n shares at x = 2..n+1 (holder index + 1, as the protocol uses), threshold t. */
function shares(secret: bigint, t: number, n: number): Share[] {
  return createShares(secret, t, Array.from({ length: n }, (_, i) => i + 2));
}

/** Adds a non-zero offset to the shares at the given positions. */
function corrupt(s: Share[], positions: number[], offsets: bigint[]): Share[] {
  return s.map((sh, i) => {
    const k = positions.indexOf(i);
    return k < 0 ? sh : { x: sh.x, y: (sh.y + offsets[k]!) % FIELD_PRIME };
  });
}

/** A case: t, n with room for e ≥ 1 correctable errors, and e distinct positions to corrupt. */
const caseArb = fc
  .record({ t: fc.integer({ min: 1, max: 6 }), extra: fc.integer({ min: 2, max: 8 }) })
  .chain(({ t, extra }) => {
    const n = t + extra;
    const maxErr = Math.floor((n - t) / 2);
    return fc.record({
      t: fc.constant(t),
      n: fc.constant(n),
      secret: secretArb,
      positions: fc.uniqueArray(fc.integer({ min: 0, max: n - 1 }), { minLength: 1, maxLength: maxErr }),
      offsets: fc.array(fieldArb, { minLength: maxErr, maxLength: maxErr }),
    });
  });

describe("decoding Shamir shares with wrong ones among them", () => {
  it("honest shares decode to the secret with nobody named", () => {
    fc.assert(
      fc.property(secretArb, fc.integer({ min: 1, max: 6 }), fc.integer({ min: 0, max: 6 }), (secret, t, extra) => {
        const d = decodeSecret(shares(secret, t, t + extra), t);
        expect(d.secret).toBe(secret);
        expect(d.corrupt).toEqual([]);
      }),
      { numRuns: 40 },
    );
  });

  it("up to ⌊(n − t)/2⌋ wrong shares: the secret is recovered and exactly the wrong holders are named", () => {
    fc.assert(
      fc.property(caseArb, ({ t, n, secret, positions, offsets }) => {
        const honest = shares(secret, t, n);
        const bad = corrupt(honest, positions, offsets);
        const d = decodeSecret(bad, t);
        expect(d.secret).toBe(secret);
        expect(d.corrupt).toEqual(positions.map((i) => honest[i]!.x).sort((a, b) => a - b));
      }),
      { numRuns: 60 },
    );
  });

  it("the order the shares arrive in does not matter", () => {
    fc.assert(
      fc.property(caseArb, fc.integer(), ({ t, n, secret, positions, offsets }, seed) => {
        const bad = corrupt(shares(secret, t, n), positions, offsets);
        const shuffled = [...bad].sort((a, b) => ((a.x * 7919 + seed) % 101) - ((b.x * 7919 + seed) % 101));
        expect(decodeSecret(shuffled, t).secret).toBe(secret);
      }),
      { numRuns: 20 },
    );
  });

  it("one wrong share among n ≥ t + 2 is always located, wherever it sits (the first-t and last-t subsets alone miss the middle)", () => {
    const t = 3;
    const n = 9; // windows [0,3) [3,6) [6,9): a share at 4 is in neither the first nor the last t
    for (let pos = 0; pos < n; pos++) {
      const honest = shares(123456789n, t, n);
      const d = decodeSecret(corrupt(honest, [pos], [1n]), t);
      expect(d.secret).toBe(123456789n);
      expect(d.corrupt).toEqual([honest[pos]!.x]);
    }
  });

  it("more wrong shares than the code corrects: refused with BAD_SHARE, never a wrong secret", () => {
    fc.assert(
      fc.property(secretArb, fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), fc.array(fieldArb, { minLength: 8, maxLength: 8 }), (secret, t, extra, offs) => {
        const n = t + extra;
        const tooMany = Math.floor((n - t) / 2) + 1;
        const positions = Array.from({ length: Math.min(tooMany, n - 1) }, (_, i) => i);
        if (positions.length < tooMany) return; // too few shares to place that many errors with one honest left
        const bad = corrupt(shares(secret, t, n), positions, offs);
        try {
          const d = decodeSecret(bad, t);
          // If a decoding is returned it must still be the true secret (a chance agreement).
          expect(d.secret).toBe(secret);
        } catch (err) {
          expect(err).toBeInstanceOf(SecAggError);
          expect((err as SecAggError).code).toBe("BAD_SHARE");
        }
      }),
      { numRuns: 40 },
    );
  });

  it("consistent shares of a wrong secret (a lying dealer) decode with nobody named: the fault is the dealer's", () => {
    const honest = shares(5n, 3, 7);
    expect(locateErrors(honest, 3)).toEqual({ secret: 5n, corrupt: [] });
  });

  it("no redundancy (n = t): nothing can be located", () => {
    const s = shares(9n, 3, 3);
    expect(decodeSecret(corrupt(s, [0], [1n]), 3).corrupt).toEqual([]);
    expect(() => locateErrors(s, 3)).toThrow(SecAggError);
  });
});
