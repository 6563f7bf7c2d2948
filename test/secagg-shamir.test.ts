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
    // polynomial through (0, s') and those shares. The missing share is computed here by the
    // test's own interpolation (not the code under test); combining it with the t−1 real shares
    // yields s'. So t−1 shares carry no information about the secret, and a wrong Lagrange
    // coefficient in combineShares fails this test.
    fc.assert(
      fc.property(secretArb, secretArb, fc.integer({ min: 2, max: 5 }), (secret, candidate, t) => {
        const xs = Array.from({ length: t }, (_, i) => i + 1);
        const shares = createShares(secret, t, xs);
        const known = shares.slice(0, t - 1);
        const x = t; // the missing holder
        const y = interpolateAt([{ x: 0, y: candidate }, ...known], x);
        expect(combineShares([...known, { x, y }], t)).toBe(candidate);
        expect(interpolateAt(shares, 0)).toBe(secret);
      }),
      { numRuns: 40 },
    );
  });

  it("Lagrange coefficients at zero equal the textbook values", () => {
    const p = FIELD_PRIME;
    const norm = (v: bigint): bigint => ((v % p) + p) % p;
    expect(lagrangeAtZero([1, 2, 3])).toEqual([3n, norm(-3n), 1n]);
    expect(lagrangeAtZero([1, 2])).toEqual([2n, norm(-1n)]);
    expect(lagrangeAtZero([2, 5])).toEqual([norm(5n * modInverse(3n)), norm(-2n * modInverse(3n))]);
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

/** The value at `x` of the unique polynomial of degree < points.length through `points` (mod p). */
function interpolateAt(points: readonly { x: number; y: bigint }[], x: number): bigint {
  const p = FIELD_PRIME;
  let acc = 0n;
  for (const [j, pj] of points.entries()) {
    let num = 1n;
    let den = 1n;
    for (const [m, pm] of points.entries()) {
      if (m === j) continue;
      num = (num * (((BigInt(x) - BigInt(pm.x)) % p) + p)) % p;
      den = (den * (((BigInt(pj.x) - BigInt(pm.x)) % p) + p)) % p;
    }
    acc = (acc + pj.y * num % p * modInverse(den)) % p;
  }
  return acc;
}
