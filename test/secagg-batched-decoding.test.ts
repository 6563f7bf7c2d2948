/**
 * The coordinator's batched reconstruction: `lagrangeAtZeroMany` gives exactly the coefficients
 * of `lagrangeAtZero` for every set (one inversion for all), `interpolateAtZeroMany` the secrets,
 * `reduceModP` equals `%` on products,
 * and `agreedSecrets` gives exactly `decodeSecret`'s secret when no share is wrong and leaves a
 * list with a wrong share (or too few, or duplicate x) to the full decoder.
 */
import { describe, expect, it } from "vitest";
import { randomBytes, randomInt } from "node:crypto";
import { bytesToField, combineShares, createShares, FIELD_PRIME, interpolateAtZeroMany, lagrangeAtZero, lagrangeAtZeroMany, reduceModP, type Share } from "../shared/secagg/shamir.ts";
import { agreedSecrets, decodeSecret } from "../shared/secagg/share-decoding.ts";

const secret = (): bigint => bytesToField(randomBytes(32));
/** n distinct x in [1, maxX], shuffled. */
function xs(n: number, maxX: number): number[] {
  const s = new Set<number>();
  while (s.size < n) s.add(1 + randomInt(maxX));
  return [...s];
}

describe("batched Shamir reconstruction", () => {
  it("reduceModP equals % on products of field elements and on larger values", () => {
    for (let i = 0; i < 200; i++) {
      const a = bytesToField(randomBytes(65)) % FIELD_PRIME;
      const b = bytesToField(randomBytes(65)) % FIELD_PRIME;
      expect(reduceModP(a * b)).toBe((a * b) % FIELD_PRIME);
      expect(reduceModP(a * b * a)).toBe((a * b * a) % FIELD_PRIME);
    }
    expect(reduceModP(FIELD_PRIME)).toBe(0n);
    expect(reduceModP(2n * FIELD_PRIME)).toBe(0n);
    expect(reduceModP(0n)).toBe(0n);
  });

  it("lagrangeAtZeroMany equals lagrangeAtZero for every set, small and large", () => {
    const sets = [xs(1, 5), xs(2, 10), xs(29, 1001), xs(29, 3001), xs(60, 3001), xs(250, 3001)];
    const many = lagrangeAtZeroMany(sets);
    sets.forEach((s, i) => expect(many[i]).toEqual(lagrangeAtZero(s)));
    expect(lagrangeAtZeroMany([])).toEqual([]);
  });

  it("interpolateAtZeroMany equals combineShares for every set", () => {
    const sets = [[1, 3], [29, 47], [67, 90], [5, 5], [120, 250]].map(([t, n]) => {
      const s = secret();
      return { s, t: t!, shares: createShares(s, t!, xs(n!, 3001)).slice(0, t) };
    });
    const got = interpolateAtZeroMany(sets.map((c) => ({ xs: c.shares.map((p) => p.x), ys: c.shares.map((p) => p.y) })));
    sets.forEach((c, i) => expect([got[i], combineShares(c.shares, c.t)]).toEqual([c.s, c.s]));
  });

  it("agreedSecrets equals decodeSecret where no share is wrong, and defers every other list", () => {
    const cases: { t: number; shares: Share[]; s: bigint }[] = [];
    for (const [t, n, maxX] of [[29, 47, 1001], [29, 29, 1001], [26, 46, 101], [5, 9, 20], [120, 250, 3001]] as const) {
      const s = secret();
      cases.push({ t, s, shares: createShares(s, t, xs(n, maxX)) });
    }
    for (const t of [29]) {
      const got = agreedSecrets(cases.filter((c) => c.t === t).map((c) => c.shares), t);
      cases.filter((c) => c.t === t).forEach((c, i) => expect(got[i]).toBe(c.s));
    }
    for (const c of cases) {
      const [got] = agreedSecrets([c.shares], c.t);
      expect(got).toBe(decodeSecret(c.shares, c.t).secret);
      expect(got).toBe(c.s);
      if (c.shares.length > c.t) {
        const wrong = [...c.shares];
        const k = randomInt(c.shares.length);
        wrong[k] = { x: wrong[k]!.x, y: (wrong[k]!.y + 1n) % FIELD_PRIME };
        expect(agreedSecrets([wrong], c.t)).toEqual([undefined]);
      }
    }
    const c = cases[0]!;
    expect(agreedSecrets([c.shares.slice(0, c.t - 1), [...c.shares, c.shares[0]!]], c.t)).toEqual([undefined, undefined]);
  });
});
