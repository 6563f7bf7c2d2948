/**
 * Shares travel through the coordinator encrypted to their recipient: AES-256-GCM under a key
 * derived (HKDF) from the X25519 secret of the sender's and recipient's c-keys, with sender,
 * recipient, run and round as associated data, so the coordinator can route but not read or
 * redirect them.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { deriveKey, type RoundDomain } from "./prg.ts";
import { SecAggError } from "./errors.ts";

function aad(d: RoundDomain, from: number, to: number): Buffer {
  return Buffer.from(`tacit-share-v1|${d.runId}|${d.round}|${from}|${to}`);
}

/** `transcript`: both c-keys of the pair (prg.ts pairTranscript). */
export function sealShare(agreed: Uint8Array, d: RoundDomain, from: number, to: number, plaintext: Uint8Array, transcript: string): Uint8Array {
  const key = deriveKey(agreed, 32, "share-box", d, Math.min(from, to), Math.max(from, to), transcript);
  const nonce = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", key, nonce);
  c.setAAD(aad(d, from, to));
  const body = Buffer.concat([c.update(plaintext), c.final()]);
  return new Uint8Array(Buffer.concat([nonce, body, c.getAuthTag()]));
}

export function openShare(agreed: Uint8Array, d: RoundDomain, from: number, to: number, sealed: Uint8Array, transcript: string): Uint8Array {
  if (sealed.length < 12 + 16) throw new SecAggError("BAD_SHARE", `encrypted share from ${from} is too short`);
  const key = deriveKey(agreed, 32, "share-box", d, Math.min(from, to), Math.max(from, to), transcript);
  const b = Buffer.from(sealed);
  const dc = createDecipheriv("aes-256-gcm", key, b.subarray(0, 12));
  dc.setAAD(aad(d, from, to));
  dc.setAuthTag(b.subarray(b.length - 16));
  try {
    return new Uint8Array(Buffer.concat([dc.update(b.subarray(12, b.length - 16)), dc.final()]));
  } catch {
    throw new SecAggError("BAD_SHARE", `encrypted share from ${from} to ${to} does not authenticate`);
  }
}
