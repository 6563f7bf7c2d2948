/**
 * The round config's commitment to its cohort. The signed config carries only the cohort's size
 * and an RFC 9162 Merkle tree head over one leaf per member, in index order:
 *
 *   leaf(i) = SHA-256(0x00 ‖ "tacit/cohort-member/v1" ‖ uint32be(i) ‖ identity key (32 bytes))
 *
 * Each member is sent the inclusion proof of its own leaf with its invitation, and the proof of
 * every neighbour's leaf with the roster that carries the neighbour's advertised keys. A device
 * therefore checks exactly what it checked when the config listed the whole cohort — its own key
 * sits at its index, and every key it verifies a peer's signature with is the one the coordinator
 * signed for that index (a malicious coordinator cannot slip in a key it did not commit to) — but
 * an invitation is O(log n) instead of O(n): at n = 3,000 the listed cohort was 245 KB of JSON
 * per invitation, 735 MB per round, parsed and verified by every device.
 *
 * The index is in the leaf as well as in the tree position, so a proof for one index can never
 * vouch for another even across trees of different sizes.
 */
import { inclusionPath, leafHash, merkleLevels, merkleRoot, verifyInclusion } from "../crypto/merkle.ts";

export const IDENTITY_KEY_BYTES = 32;
const DOMAIN = Buffer.from("tacit/cohort-member/v1", "utf8");

/** The commitment as it stands in the signed config. */
export interface CohortCommitment {
  /** Number of members; indices are 0 … size − 1. */
  size: number;
  /** Hex RFC 9162 tree head over the members' leaves. */
  root: string;
}

export function cohortLeaf(index: number, identityPublicKey: Uint8Array): Buffer {
  const leaf = Buffer.allocUnsafe(DOMAIN.length + 4 + identityPublicKey.length);
  DOMAIN.copy(leaf, 0);
  leaf.writeUInt32BE(index, DOMAIN.length);
  leaf.set(identityPublicKey, DOMAIN.length + 4);
  return leafHash(leaf);
}

/** The coordinator's side: the whole cohort, its commitment, and each member's proof. */
export class CohortTree {
  private readonly levels: Buffer[][];
  readonly commitment: CohortCommitment;

  /** `identityKeys[i]` is the raw ed25519 key of the member at index i. */
  constructor(readonly identityKeys: readonly Uint8Array[]) {
    if (identityKeys.length < 1) throw new Error("a cohort has at least one member");
    identityKeys.forEach((k, i) => {
      if (k.length !== IDENTITY_KEY_BYTES) throw new Error(`cohort member ${i}: identity key of ${k.length} bytes, not ${IDENTITY_KEY_BYTES}`);
    });
    this.levels = merkleLevels(identityKeys.map((k, i) => cohortLeaf(i, k)));
    this.commitment = { size: identityKeys.length, root: merkleRoot(this.levels).toString("hex") };
  }

  get size(): number {
    return this.identityKeys.length;
  }

  /** The inclusion proof of member `index` (siblings from the leaf up). */
  proof(index: number): Buffer[] {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) throw new RangeError(`no cohort member ${index} in a cohort of ${this.size}`);
    return inclusionPath(index, this.levels);
  }
}

/**
 * Whether `identityPublicKey` is the key the commitment gives member `index`, by its proof. Any
 * malformed input (a key or path element of the wrong length, an index outside the cohort) is
 * simply not a proof.
 */
export function provesMembership(c: CohortCommitment, index: number, identityPublicKey: Uint8Array, path: readonly Uint8Array[]): boolean {
  if (identityPublicKey.length !== IDENTITY_KEY_BYTES || !Number.isInteger(index) || index < 0 || index >= c.size) return false;
  if (!path.every((p) => p.length === 32)) return false;
  const nodes = path.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength));
  return verifyInclusion(cohortLeaf(index, identityPublicKey), index, c.size, nodes, Buffer.from(c.root, "hex"));
}
