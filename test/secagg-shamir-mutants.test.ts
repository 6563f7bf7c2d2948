/**
 * Shamir sharing and share decoding (shared/secagg/shamir.ts, share-decoding.ts): the refusals,
 * bounds and edge cases mutation testing found unpinned (issue #16). Pure functions on small,
 * hand-built inputs: shares of a line f(x) = s + a·x are written out directly, and the one random
 * draw that matters (createShares' coefficient) is scripted through a pass-through mock of
 * node:crypto. Each case asserts the specific refusal (code and message) or the exact value.
 */
import { afterEach, describe, expect, it, vi } from "vitest";

/** randomBytes answers from this queue first, then from the real generator. */
const forced = vi.hoisted(() => [] as Buffer[]);
vi.mock("node:crypto", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:crypto")>();
  return { ...real, randomBytes: (size: number): Buffer => forced.shift() ?? real.randomBytes(size) };
});
afterEach(() => void forced.splice(0));

import { bytesToField, combineShares, createShares, FIELD_PRIME, fieldInverse, fieldToBytes, interpolateAtZeroMany, lagrangeAtZero, lagrangeAtZeroMany, reduceModP, SHARE_BYTES, type Share } from "../shared/secagg/shamir.ts";
import { agreedSecrets, decodeSecret, locateErrors } from "../shared/secagg/share-decoding.ts";

const P = FIELD_PRIME;
const norm = (v: bigint): bigint => ((v % P) + P) % P;
/** The refusal's code and its whole message. */
const refusal = (code: string, message: RegExp) => expect.objectContaining({ code, message: expect.stringMatching(message) });

/** Shares of f(x) = s + a·x (threshold 2) at the given x. */
const line = (s: bigint, a: bigint, xs: readonly number[]): Share[] => xs.map((x) => ({ x, y: norm(s + a * BigInt(x)) }));
/** Shares of f(x) = s + a·x + b·x² (threshold 3) at the given x. */
const parabola = (s: bigint, a: bigint, b: bigint, xs: readonly number[]): Share[] => xs.map((x) => ({ x, y: norm(s + a * BigInt(x) + b * BigInt(x) ** 2n) }));
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const shift = (s: Share, d: bigint): Share => ({ x: s.x, y: norm(s.y + d) });
const byX = (shares: readonly Share[], order: readonly number[]): Share[] => order.map((x) => shares.find((s) => s.x === x)!);

const S = 1234567n; // a non-zero secret: an empty window interpolates to 0, which must not match it
const A = 987654321n;

/**
 * Six shares of S + A·x (t = 2, so up to e = 2 wrong ones are corrected) whose shares at x = 1 and
 * x = 2 are both wrong, by δ and 2δ: the window {1, 2} still gives S (λ₁ = 2, λ₂ = −1), and so do
 * the honest windows {3, 4} and {5, 6}. The cheap window check cannot see this pair; Berlekamp–
 * Welch names it. It pins which windows are checked: t consecutive shares by x, covering all.
 */
const DELTA = 5555n;
function cancellingPair(): Share[] {
  const honest = line(S, A, range(1, 6));
  return honest.map((s) => (s.x === 1 ? shift(s, DELTA) : s.x === 2 ? shift(s, 2n * DELTA) : s));
}

describe("field arithmetic: inversion, reduction, encoding", () => {
  it("fieldInverse gives the canonical inverse and refuses 0 (a repeated x-coordinate)", () => {
    expect(fieldInverse(2n)).toBe((P + 1n) / 2n);
    expect(fieldInverse(-1n)).toBe(P - 1n);
    expect(fieldInverse(P + 3n)).toBe(norm(fieldInverse(3n)));
    expect((fieldInverse(3n) * 3n) % P).toBe(1n);
    expect(() => fieldInverse(0n)).toThrow(refusal("BAD_SHARE", /^duplicate share x-coordinates$/));
    expect(() => fieldInverse(P)).toThrow(refusal("BAD_SHARE", /^duplicate share x-coordinates$/));
    // Lagrange coefficients of a set with a repeated x have no inverse: refused, not zero.
    expect(() => lagrangeAtZero([2, 5, 2])).toThrow(refusal("BAD_SHARE", /^duplicate share x-coordinates$/));
  });

  it("reduceModP maps p and its multiples to 0 and leaves values below p alone", () => {
    expect(reduceModP(P)).toBe(0n);
    expect(reduceModP(2n * P)).toBe(0n);
    expect(reduceModP(P + 1n)).toBe(1n);
    expect(reduceModP(P - 1n)).toBe(P - 1n);
    expect(reduceModP((P - 1n) * (P - 1n))).toBe(1n);
  });

  it("bytesToField reads the empty string as 0 and refuses a value that is not below p", () => {
    expect(bytesToField(new Uint8Array(0))).toBe(0n);
    expect(bytesToField(fieldToBytes(P - 1n))).toBe(P - 1n);
    expect(() => bytesToField(fieldToBytes(P))).toThrow(refusal("BAD_SHARE", /^value is not a field element$/));
    expect(() => bytesToField(new Uint8Array(SHARE_BYTES).fill(0xff))).toThrow(refusal("BAD_SHARE", /^value is not a field element$/));
  });

  it("fieldToBytes refuses a value longer than the requested width", () => {
    expect(fieldToBytes((1n << 256n) - 1n, 32)).toEqual(new Uint8Array(32).fill(0xff));
    expect(fieldToBytes(P)).toHaveLength(SHARE_BYTES);
    expect(() => fieldToBytes(1n << 256n, 32)).toThrow(refusal("BAD_SHARE", /^field element does not fit$/));
  });
});

describe("createShares and combineShares", () => {
  it("refuses threshold 0 (no random coefficient: every share would be the secret itself)", () => {
    expect(() => createShares(7n, 0, [1, 2])).toThrow(refusal("BAD_SHARE", /^threshold 0 not in \[1, 2\]$/));
    expect(() => createShares(7n, 3, [1, 2])).toThrow(refusal("BAD_SHARE", /^threshold 3 not in \[1, 2\]$/));
  });

  it("refuses a secret outside [0, p) — both ends — and accepts 0 and p − 1", () => {
    expect(() => createShares(-1n, 2, [1, 2])).toThrow(refusal("BAD_SHARE", /^secret is not a field element$/));
    expect(() => createShares(P, 2, [1, 2])).toThrow(refusal("BAD_SHARE", /^secret is not a field element$/));
    expect(() => createShares(P + 1n, 2, [1, 2])).toThrow(refusal("BAD_SHARE", /^secret is not a field element$/));
    expect(combineShares(createShares(P - 1n, 2, [1, 2]), 2)).toBe(P - 1n);
    expect(combineShares(createShares(0n, 2, [1, 2]), 2)).toBe(0n);
  });

  it("refuses an x-coordinate that is not a positive integer, with BAD_SHARE", () => {
    expect(() => createShares(7n, 2, [1, 0])).toThrow(refusal("BAD_SHARE", /^share x-coordinate must be a positive integer, got 0$/));
    expect(() => createShares(7n, 2, [1, 2.5])).toThrow(refusal("BAD_SHARE", /^share x-coordinate must be a positive integer, got 2\.5$/));
  });

  it("a coefficient draw of p itself (all 521 bits set) is rejected and drawn again", () => {
    const five = Buffer.alloc(SHARE_BYTES);
    five[SHARE_BYTES - 1] = 5;
    // 0xff…ff masked to 521 bits is 2^521 − 1 = p: not a field element, so not a coefficient.
    forced.push(Buffer.alloc(SHARE_BYTES, 0xff), five);
    expect(createShares(7n, 2, [1, 2, 3])).toEqual([{ x: 1, y: 12n }, { x: 2, y: 17n }, { x: 3, y: 22n }]);
    expect(forced).toHaveLength(0);
    // p − 1 (0x01ff…fe) is the largest coefficient accepted at the first draw.
    const pMinus1 = Buffer.from(fieldToBytes(P - 1n));
    forced.push(pMinus1);
    expect(createShares(7n, 2, [1, 2])).toEqual([{ x: 1, y: 6n }, { x: 2, y: 5n }]);
    expect(forced).toHaveLength(0);
  });

  it("combineShares: too few is TOO_FEW_SURVIVORS; only the first t shares are used", () => {
    const shares = line(S, A, [1, 2, 3]);
    expect(() => combineShares(shares.slice(0, 1), 2)).toThrow(refusal("TOO_FEW_SURVIVORS", /^need 2 shares, have 1$/));
    // A third share off the line does not enter: the first two decide.
    expect(combineShares([shares[0]!, shares[1]!, { x: 3, y: 0n }], 2)).toBe(S);
    // A repeated x beyond the first t is not looked at either.
    expect(combineShares([shares[0]!, shares[1]!, shares[1]!], 2)).toBe(S);
  });

  it("combineShares refuses a repeated x among the shares it uses, before reading any x as an integer", () => {
    const [a, b] = line(S, A, [1, 2]);
    expect(() => combineShares([a!, a!, b!], 3)).toThrow(refusal("BAD_SHARE", /^duplicate share x-coordinates$/));
    expect(() => combineShares([{ x: 1.5, y: 1n }, { x: 1.5, y: 2n }], 2)).toThrow(refusal("BAD_SHARE", /^duplicate share x-coordinates$/));
  });
});

describe("batched Lagrange (lagrangeAtZeroMany, interpolateAtZeroMany)", () => {
  // Twenty consecutive x: the denominators' products pass 2^53, so exactDenominator must move
  // to BigInt on the way; x near 10^8 pass it after two factors.
  const big = range(1, 20);
  const far = [1, 100_000_000, 200_000_000, 300_000_000];
  const sets = [big, [3, 7], [5], far, [9, 4, 6]];

  it("lagrangeAtZeroMany equals lagrangeAtZero for every set, in order", () => {
    const many = lagrangeAtZeroMany(sets);
    expect(many).toHaveLength(sets.length);
    sets.forEach((xs, i) => expect(many[i]).toEqual(lagrangeAtZero(xs)));
    expect(many[1]).toEqual([norm(7n * fieldInverse(4n)), norm(-3n * fieldInverse(4n))]);
    expect(many[2]).toEqual([1n]);
  });

  it("interpolateAtZeroMany gives each set's secret", () => {
    const lists = [parabola(S, A, 3n, big), line(S + 1n, A, [3, 7]), [{ x: 5, y: 42n }], parabola(S + 2n, A, 11n, far), line(P - 1n, A, [9, 4, 6])];
    expect(interpolateAtZeroMany(lists.map((l) => ({ xs: l.map((s) => s.x), ys: l.map((s) => s.y) })))).toEqual([S, S + 1n, 42n, S + 2n, P - 1n]);
  });

  it("refuses a set with a repeated x at once, before reading the later sets", () => {
    expect(() => lagrangeAtZeroMany([[3, 7], [2, 5, 2]])).toThrow(refusal("BAD_SHARE", /^duplicate share x-coordinates$/));
    expect(() => interpolateAtZeroMany([{ xs: [3, 3], ys: [1n, 1n] }])).toThrow(refusal("BAD_SHARE", /^duplicate share x-coordinates$/));
    // The later sets would fail otherwise (x = 0 divides by zero; x = 1.5 is no BigInt): the
    // refusal is the per-set check's, not a RangeError from further on.
    expect(() => lagrangeAtZeroMany([[2, 2], [0, 1]])).toThrow(refusal("BAD_SHARE", /^duplicate share x-coordinates$/));
    expect(() => interpolateAtZeroMany([{ xs: [2, 2], ys: [1n, 1n] }, { xs: [1.5, 3], ys: [1n, 1n] }])).toThrow(refusal("BAD_SHARE", /^duplicate share x-coordinates$/));
  });
});

describe("decodeSecret and agreedSecrets: refusals and which windows are checked", () => {
  it("decodeSecret refuses too few shares (fewer than t would give a wrong secret)", () => {
    expect(() => decodeSecret(line(S, A, [1, 2]), 3)).toThrow(refusal("TOO_FEW_SURVIVORS", /^need 3 shares, have 2$/));
  });

  it("decodeSecret refuses a repeated x even where the windows split it (one holder must not count twice)", () => {
    // t = 2: windows {1, 2} and {2, 3}; each is a valid pair and both give S.
    const [a, b, c] = line(S, A, [1, 2, 3]);
    expect(() => decodeSecret([a!, b!, b!, c!], 2)).toThrow(refusal("BAD_SHARE", /^duplicate share x-coordinates$/));
  });

  it("a wrong pair that cancels inside one window passes the window check; full decoding names it", () => {
    const shares = cancellingPair();
    expect(decodeSecret(shares, 2)).toEqual({ secret: S, corrupt: [] });
    expect(locateErrors(shares, 2)).toEqual({ secret: S, corrupt: [1, 2] });
    expect(agreedSecrets([shares], 2)).toEqual([S]);
  });

  it("the windows are consecutive by x whatever order the shares arrive in", () => {
    // In arrival order the windows would be {1, 3} and {2, 4}: each holds one wrong share.
    const shuffled = byX(cancellingPair(), [1, 3, 2, 4, 5, 6]);
    expect(decodeSecret(shuffled, 2)).toEqual({ secret: S, corrupt: [] });
    expect(agreedSecrets([shuffled], 2)).toEqual([S]);
  });

  it("agreedSecrets checks the middle windows too, not only the first and last t", () => {
    const t = 3;
    const honest = parabola(S, A, 77n, range(2, 10)); // windows {2,3,4} {5,6,7} {8,9,10}
    expect(agreedSecrets([honest], t)).toEqual([S]);
    for (const pos of [0, 4, 8]) {
      const wrong = honest.map((s, i) => (i === pos ? shift(s, 1n) : s));
      expect(agreedSecrets([wrong], t)).toEqual([undefined]);
    }
  });

  it("agreedSecrets: one answer per list, in order; too few or a repeated x is left to decodeSecret", () => {
    const t = 2;
    const lists = [
      line(S, A, [4, 1, 3, 2, 5]), // n = 5: windows {1,2} {3,4} {4,5}
      line(S + 1n, A, [7]), // too few
      line(S + 2n, A, [2, 9]), // n = t
      [...line(S + 3n, A, [1, 2]), ...line(S + 3n, A, [2, 3])], // x = 2 twice, in different windows
      line(S + 4n, 3n, [1, 2, 3, 4]),
    ];
    expect(agreedSecrets(lists, t)).toEqual([S, undefined, S + 2n, undefined, S + 4n]);
    expect(agreedSecrets([], t)).toEqual([]);
  });
});

describe("locateErrors", () => {
  it("names the wrong holders sorted by x, whatever order the shares arrive in", () => {
    const honest = parabola(S, A, 5n, range(1, 7)); // t = 3, n = 7: e = 2
    const bad = honest.map((s) => (s.x === 2 ? shift(s, 9n) : s.x === 6 ? shift(s, 4n) : s));
    expect(locateErrors([...bad].reverse(), 3)).toEqual({ secret: S, corrupt: [2, 6] });
  });

  it("decodes with no error to spare (n = t + 1, e = 0)", () => {
    expect(locateErrors(line(S, A, [3, 1, 2]), 2)).toEqual({ secret: S, corrupt: [] });
    expect(locateErrors(parabola(S, A, 8n, [1, 2, 3, 4]), 3)).toEqual({ secret: S, corrupt: [] });
  });

  it("more wrong shares than it can correct: BAD_SHARE, saying how many can be located", () => {
    const shares = line(S, A, range(1, 4)).map((s) => (s.x === 1 ? shift(s, 3n) : s.x === 3 ? shift(s, 10n) : s));
    expect(() => locateErrors(shares, 2)).toThrow(refusal("BAD_SHARE", /^the 4 shares disagree and cannot be corrected \(at most 1 wrong shares can be located\)$/));
    expect(() => decodeSecret(shares, 2)).toThrow(refusal("BAD_SHARE", /^the 4 shares disagree and cannot be corrected \(at most 1 wrong shares can be located\)$/));
    expect(() => locateErrors(line(S, A, [1, 2]), 2)).toThrow(refusal("BAD_SHARE", /^the 2 shares disagree and cannot be corrected \(at most 0 wrong shares can be located\)$/));
  });

  it("with a repeated x (the server never passes one) a decoding is still only accepted within e wrong shares", () => {
    // t = 1, e = 1: two conflicting shares at x = 1. The only solution is E = x − 1, Q = 7·(x − 1),
    // so Q/E = 7 — which both shares at x = 1 contradict: two wrong shares, more than e.
    expect(() => locateErrors([{ x: 1, y: 3n }, { x: 1, y: 5n }, { x: 2, y: 7n }], 1)).toThrow(refusal("BAD_SHARE", /^the 3 shares disagree and cannot be corrected \(at most 1 wrong shares can be located\)$/));
    // t = 1, e = 2: one holder listed three times (y = 10) against y = 1 at x = 2 and y = 2 at x = 3.
    // The solution found is E = x², Q = 10x² − 36x + 36: Q/E leaves a remainder, so nothing is
    // decoded — the triplicate does not outvote the two others.
    const triple = { x: 1, y: 10n };
    expect(() => locateErrors([triple, triple, triple, { x: 2, y: 1n }, { x: 3, y: 2n }], 1)).toThrow(refusal("BAD_SHARE", /^the 5 shares disagree and cannot be corrected \(at most 2 wrong shares can be located\)$/));
  });
});
