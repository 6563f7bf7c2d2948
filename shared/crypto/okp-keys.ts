/**
 * X25519 and Ed25519 key pairs made from 32 bytes of node:crypto randomness imported as a JWK,
 * instead of generateKeyPairSync.
 *
 * Why: on Node 20, generateKeyPairSync leaves a KeyGenJob behind whose destructor, run by the
 * garbage collector, locks the generated key's mutex. When that collection happens inside an
 * export of the same key (ExportJWK holds the mutex while it allocates the result), the thread
 * deadlocks in native code, where no timer or termination reaches it. A simulation's device
 * thread hung that way after 20 rounds (gdb: ~KeyGenJob → uv_mutex_lock under
 * KeyObjectHandle::ExportJWK), and 60,000 generate-and-export calls with a 1 MiB young generation
 * hung 3 times in 3 within 60 s (test/okp-keys.test.ts). An imported key has no KeyGenJob. The keys are the
 * same: an X25519 or Ed25519 private key is 32 uniformly random bytes (RFC 7748 §5, RFC 8032 §5.1.5).
 */
import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from "node:crypto";

export type OkpCurve = "x25519" | "ed25519";

const JWK_CURVE: Record<OkpCurve, string> = { x25519: "X25519", ed25519: "Ed25519" };

export interface OkpKeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The 32 private key bytes (what a JWK's `d` holds). */
  privateRaw: Uint8Array;
  /** The 32 public key bytes (what a JWK's `x` holds). */
  publicRaw: Uint8Array;
}

/** The private key whose 32 bytes are `privateRaw`, and its public key. */
export function okpKeyPairFromPrivate(curve: OkpCurve, privateRaw: Uint8Array): OkpKeyPair {
  if (privateRaw.length !== 32) throw new RangeError(`${curve} private key must be 32 bytes, got ${privateRaw.length}`);
  // A JWK import (≈ 0.1 ms; a PKCS#8 DER import goes through OpenSSL's decoder chain and takes
  // ≈ 1 ms). Node derives the public key from `d` and only type-checks `x`, which we do not know
  // yet; the public key exported below is the derived one (okp-keys.test.ts checks it agrees).
  const privateKey = createPrivateKey({ key: { kty: "OKP", crv: JWK_CURVE[curve], d: Buffer.from(privateRaw).toString("base64url"), x: "" }, format: "jwk" });
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, privateRaw, publicRaw: new Uint8Array(Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url")) };
}

export function generateOkpKeyPair(curve: OkpCurve): OkpKeyPair {
  return okpKeyPairFromPrivate(curve, new Uint8Array(randomBytes(32)));
}
