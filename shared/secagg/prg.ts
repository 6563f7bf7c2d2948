/**
 * Mask expansion and key derivation. Every key is derived with HKDF-SHA256 from an X25519
 * agreed secret or a self-mask seed, with domain separation by purpose, run, round and pair;
 * masks are the AES-128-CTR keystream under that key (a PRG; ~3 GB/s with node:crypto).
 */
import { createCipheriv, hkdfSync } from "node:crypto";

export interface RoundDomain {
  runId: string;
  round: number;
}

function info(purpose: string, d: RoundDomain, ...parts: (string | number)[]): Buffer {
  return Buffer.from(["tacit-secagg-v1", purpose, d.runId, String(d.round), ...parts.map(String)].join("|"));
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
export function pairMaskKey(agreed: Uint8Array, d: RoundDomain, u: number, v: number): Buffer {
  return deriveKey(agreed, 32, "pair-mask", d, Math.min(u, v), Math.max(u, v));
}

/** Self-mask key of device u from its seed b_u. */
export function selfMaskKey(seed: Uint8Array, d: RoundDomain, u: number): Buffer {
  return deriveKey(seed, 32, "self-mask", d, u);
}
