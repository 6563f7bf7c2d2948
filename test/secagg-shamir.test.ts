import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { combineShares, createShares, FIELD_PRIME, lagrangeAtZero, SecAggError } from "../shared/secagg/index.ts";

const secretArb = fc.bigInt({ min: 0n, max: FIELD_PRIME - 1n });

function subsets<T>(xs: T[], k: number): T[][] {
  if (k === 0) return [[]];
  if (xs.length < k) return [];
  const [h, ...rest] = xs;
  return [...subsets(rest, k - 1).map((s) => [h!, ...s]), ...subsets(rest, k)];
}

describe("Shamir secret sharing over GF(2^521 − 1)", () => {
  it("reconstructs from every subset of exactly t shares", () => {
    fc.assert(
      fc.property(secretArb, fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 3 }), (secret, t, extra) => {
        const xs = Array.from({ length: t + extra }, (_, i) => i + 1);
        const shares = createShares(secret, t, xs);
        for (const sub of subsets(shares, t)) expect(combineShares(sub, t)).toBe(secret);
      }),
      { numRuns: 40 },
    );
  });

  it("t − 1 shares are consistent with every secret (information-theoretic hiding)", () => {
    // For any t−1 shares and any candidate secret s', there is exactly one degree-(t−1)
    // polynomial through (0, s') and those shares: adding the share at x for that polynomial
    // reconstructs s'. So the t−1 shares carry no information about the secret.
    fc.assert(
      fc.property(secretArb, secretArb, fc.integer({ min: 2, max: 5 }), (secret, candidate, t) => {
        const xs = Array.from({ length: t }, (_, i) => i + 1);
        const shares = createShares(secret, t, xs);
        const known = shares.slice(0, t - 1);
        const x = t; // the missing holder
        // Solve for the y at x that makes the reconstruction equal `candidate`.
        const lambda = lagrangeAtZero([...known.map((s) => s.x), x]);
        let partial = 0n;
        known.forEach((s, i) => (partial = (partial + lambda[i]! * s.y) % FIELD_PRIME));
        const inv = modInverse(lambda[t - 1]!);
        const y = (((candidate - partial) % FIELD_PRIME) + FIELD_PRIME) % FIELD_PRIME * inv % FIELD_PRIME;
        expect(combineShares([...known, { x, y }], t)).toBe(candidate);
      }),
      { numRuns: 40 },
    );
  });

  it("draws fresh random coefficients: the same secret shares differently each time", () => {
    const a = createShares(42n, 3, [1, 2, 3]);
    const b = createShares(42n, 3, [1, 2, 3]);
    expect(a.map((s) => s.y)).not.toEqual(b.map((s) => s.y));
  });

  it("refuses too few shares, duplicate holders and bad parameters", () => {
    const shares = createShares(7n, 3, [1, 2, 3, 4]);
    expect(() => combineShares(shares.slice(0, 2), 3)).toThrow(SecAggError);
    expect(() => combineShares([shares[0]!, shares[0]!, shares[1]!], 3)).toThrow(/duplicate/);
    expect(() => createShares(7n, 5, [1, 2, 3])).toThrow(/threshold/);
    expect(() => createShares(7n, 2, [0, 1])).toThrow(/positive/);
  });
});

function modInverse(a: bigint): bigint {
  let [r0, r1] = [((a % FIELD_PRIME) + FIELD_PRIME) % FIELD_PRIME, FIELD_PRIME];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return ((s0 % FIELD_PRIME) + FIELD_PRIME) % FIELD_PRIME;
}
