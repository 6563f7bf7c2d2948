/**
 * Mask expansion and key derivation. Every key is derived with HKDF-SHA256 from an X25519
 * agreed secret or a self-mask seed, with domain separation by purpose, run, round, attempt,
 * the attempt's round seed and pair; keys agreed between two devices also bind both public keys
 * (the key transcript), so a secret can never be reused under another attempt or another pair of
 * keys even if key freshness were lost. Masks are the AES-128-CTR keystream under that key (a
 * PRG; ~3 GB/s with node:crypto).
 */
import { createCipheriv, createHash, hkdfSync } from "node:crypto";

export interface RoundDomain {
  runId: string;
  round: number;
  attempt?: number;
  roundSeed?: Uint8Array;
}

const hex = (b: Uint8Array | undefined): string => (b ? Buffer.from(b).toString("hex") : "");

function info(purpose: string, d: RoundDomain, ...parts: (string | number)[]): Buffer {
  return Buffer.from(["tacit-secagg-v2", purpose, d.runId, String(d.round), String(d.attempt ?? 0), hex(d.roundSeed), ...parts.map(String)].join("|"));
}

/** The public keys of a pair, in index order: both ends derive the same transcript. */
export function pairTranscript(u: number, pkU: Uint8Array, v: number, pkV: Uint8Array): string {
  return u < v ? `${hex(pkU)}:${hex(pkV)}` : `${hex(pkV)}:${hex(pkU)}`;
}

export function deriveKey(secret: Uint8Array, bytes: number, purpose: string, d: RoundDomain, ...parts: (string | number)[]): Buffer {
  return Buffer.from(hkdfSync("sha256", secret, Buffer.alloc(0), info(purpose, d, ...parts), bytes));
}

/** `words` uint32 of AES-128-CTR keystream under a 32-byte (key ‖ iv) derived for this purpose. */
export function expandMask(keyAndIv: Uint8Array, words: number): Uint32Array {
  const cipher = createCipheriv("aes-128-ctr", keyAndIv.subarray(0, 16), keyAndIv.subarray(16, 32));
  const out = cipher.update(Buffer.alloc(words * 4));
  // Use the keystream in place when it is 4-byte aligned (update's result may share a pool with
  // an odd offset; then copy).
  if (out.byteOffset % 4 === 0) return new Uint32Array(out.buffer, out.byteOffset, words);
  const aligned = new Uint32Array(words);
  new Uint8Array(aligned.buffer).set(out);
  return aligned;
}

/** Pairwise mask key for devices u, v (order-independent): both derive the same bytes. */
export function pairMaskKey(agreed: Uint8Array, d: RoundDomain, u: number, v: number, transcript: string): Buffer {
  return deriveKey(agreed, 32, "pair-mask", d, Math.min(u, v), Math.max(u, v), transcript);
}

/** Self-mask key of device u from its seed b_u. */
export function selfMaskKey(seed: Uint8Array, d: RoundDomain, u: number): Buffer {
  return deriveKey(seed, 32, "self-mask", d, u);
}

/**
 * The commitment to device u's self-mask seed b_u that it signs into its advertisement:
 * SHA-256 over a domain string (purpose, run, round, attempt, round seed, index) and b_u. b_u is
 * 32 uniformly random bytes, so the digest reveals nothing usable about it; at unmasking the
 * coordinator checks the b_u it reconstructed from the shares against it, as it checks a
 * reconstructed s_sk against s_pk, and so can tell a dealer who shared another seed.
 */
export function selfMaskCommitment(seed: Uint8Array, d: RoundDomain, u: number): Buffer {
  return createHash("sha256").update(info("self-mask-commitment", d, u)).update("|").update(seed).digest();
}
