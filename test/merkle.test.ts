/**
 * The RFC 9162 Merkle tree both commitments rest on (the ledger's member commitment, the round
 * config's cohort commitment): the level-wise tree against RFC 9162's recursive definition, and
 * inclusion proofs that refuse every altered input.
 */
import { describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { inclusionPath, leafHash, merkleLevels, merkleRoot, verifyInclusion } from "../shared/crypto/merkle.ts";

// RFC 9162 §2.1.1 and §2.1.3.1, transcribed as written: the oracle for the level-wise tree.
const H = (...parts: Buffer[]): Buffer => parts.reduce((h, p) => h.update(p), createHash("sha256")).digest();
const k = (n: number): number => 2 ** Math.ceil(Math.log2(n) - 1);
function rfcMth(d: Buffer[]): Buffer {
  if (d.length === 0) return H();
  if (d.length === 1) return d[0]!;
  return H(Buffer.from([1]), rfcMth(d.slice(0, k(d.length))), rfcMth(d.slice(k(d.length))));
}
function rfcPath(m: number, d: Buffer[]): Buffer[] {
  if (d.length <= 1) return [];
  const s = k(d.length);
  return m < s ? [...rfcPath(m, d.slice(0, s)), rfcMth(d.slice(s))] : [...rfcPath(m - s, d.slice(s)), rfcMth(d.slice(0, s))];
}
const leaves = (n: number): Buffer[] => Array.from({ length: n }, (_, i) => leafHash(`leaf ${i}`));

describe("Merkle tree (RFC 9162)", () => {
  it("has RFC 9162's head and inclusion proofs for every size up to 40 and every leaf", () => {
    for (let n = 0; n <= 40; n++) {
      const d = leaves(n);
      const levels = merkleLevels(d);
      expect(merkleRoot(levels).equals(rfcMth(d)), `root n=${n}`).toBe(true);
      for (let m = 0; m < n; m++) {
        const path = inclusionPath(m, levels);
        expect(path.map((h) => h.toString("hex")), `path n=${n} m=${m}`).toEqual(rfcPath(m, d).map((h) => h.toString("hex")));
        expect(verifyInclusion(d[m]!, m, n, path, merkleRoot(levels))).toBe(true);
      }
    }
  });

  it("accepts no proof with a changed leaf, index, size, path element, or a path one too short or too long", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 300 }), fc.nat(), fc.nat(), (n, mi, pi) => {
        const d = leaves(n);
        const levels = merkleLevels(d);
        const root = merkleRoot(levels);
        const m = mi % n;
        const path = inclusionPath(m, levels);
        expect(verifyInclusion(d[m]!, m, n, path, root)).toBe(true);
        expect(verifyInclusion(d[(m + 1) % n]!, m, n, path, root)).toBe(false);
        expect(verifyInclusion(d[m]!, (m + 1) % n, n, path, root)).toBe(false);
        expect(verifyInclusion(d[m]!, m, m, path, root)).toBe(false);
        const bent = path.map((h) => Buffer.from(h));
        bent[pi % bent.length]![0]! ^= 1;
        expect(verifyInclusion(d[m]!, m, n, bent, root)).toBe(false);
        expect(verifyInclusion(d[m]!, m, n, path.slice(0, -1), root)).toBe(false);
        expect(verifyInclusion(d[m]!, m, n, [...path, root], root)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it("refuses an index outside the tree even where the path alone would fit (a one-leaf tree has an empty path)", () => {
    const [only] = leaves(1);
    expect(verifyInclusion(only!, 0, 1, [], only!)).toBe(true);
    for (const index of [1, -1, 2 ** 40, Number.NaN, 0.5, Number.POSITIVE_INFINITY]) expect(verifyInclusion(only!, index, 1, [], only!), `index ${index}`).toBe(false);
    for (const size of [0, Number.NaN, 1.5]) expect(verifyInclusion(only!, 0, size, [], only!), `size ${size}`).toBe(false);
  });
});

