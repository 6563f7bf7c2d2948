/**
 * RFC 9162 (Certificate Transparency v2) Merkle trees over SHA-256: the tree head, inclusion
 * proofs and their verification. Two commitments are built on it: the ledger's member commitment
 * (a device sees only its own leaf) and the round config's cohort commitment (a device checks
 * its own and its neighbours' membership without receiving the whole cohort).
 *
 * Leaves and interior nodes are domain-separated (0x00 / 0x01 prefixes, RFC 9162 §2.1.1), so an
 * interior node can never be presented as a leaf.
 */
import { createHash } from "node:crypto";

const sha256 = (...parts: Buffer[]): Buffer => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
};
const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);

/** MTH of one entry: SHA-256(0x00 ‖ data); a string is hashed as its UTF-8 bytes. */
export function leafHash(data: string | Uint8Array): Buffer {
  return sha256(LEAF, typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
}

function nodeHash(left: Buffer, right: Buffer): Buffer {
  return sha256(NODE, left, right);
}

/**
 * The tree's levels, leaves first. Pairing nodes left to right and carrying an unpaired last node
 * up unchanged builds exactly RFC 9162's tree (split at the largest power of two below n), and
 * gives every inclusion proof in O(log n) once the levels exist.
 */
export function merkleLevels(leaves: readonly Buffer[]): Buffer[][] {
  const levels: Buffer[][] = [[...leaves]];
  for (let cur = levels[0]!; cur.length > 1; ) {
    const next: Buffer[] = [];
    for (let i = 0; i < cur.length; i += 2) next.push(i + 1 < cur.length ? nodeHash(cur[i]!, cur[i + 1]!) : cur[i]!);
    levels.push(next);
    cur = next;
  }
  return levels;
}

/** RFC 9162 §2.1.1 Merkle tree head; the hash of the empty string for no leaves. */
export function merkleRoot(levels: readonly Buffer[][]): Buffer {
  const top = levels[levels.length - 1]!;
  return top.length === 0 ? sha256() : top[0]!;
}

/** RFC 9162 §2.1.3.1 inclusion proof of leaf `m`: the siblings from the leaf up. */
export function inclusionPath(m: number, levels: readonly Buffer[][]): Buffer[] {
  const path: Buffer[] = [];
  let i = m;
  for (let l = 0; l < levels.length - 1; l++) {
    const sibling = i ^ 1;
    if (sibling < levels[l]!.length) path.push(levels[l]![sibling]!);
    i >>= 1;
  }
  return path;
}

/** RFC 9162 §2.1.3.2: whether `leaf` sits at `index` of a tree of `size` leaves with head `root`. */
export function verifyInclusion(leaf: Buffer, index: number, size: number, path: readonly Buffer[], root: Buffer): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else r = nodeHash(r, p);
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r.equals(root);
}
