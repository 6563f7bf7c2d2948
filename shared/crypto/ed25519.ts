/**
 * Ed25519 identities with node:crypto (fast path: ~60 µs verify vs ~10 ms in tweetnacl).
 * Public keys travel as raw 32 bytes; private keys are stored as PKCS#8 PEM (mode 0600).
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from "node:crypto";
import { generateOkpKeyPair } from "./okp-keys.ts";

export interface Ed25519KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicRaw: Uint8Array;
}

export class KeyFormatError extends Error {
  override name = "KeyFormatError";
}

/** Not generateKeyPairSync: see okp-keys.ts (a GC-time deadlock in Node 20). */
export function generateEd25519(): Ed25519KeyPair {
  const { privateKey, publicKey, publicRaw } = generateOkpKeyPair("ed25519");
  return { privateKey, publicKey, publicRaw };
}

export function rawPublicKey(publicKey: KeyObject): Uint8Array {
  const der = publicKey.export({ format: "der", type: "spki" });
  return new Uint8Array(der.subarray(der.length - 32));
}

export function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new KeyFormatError(`ed25519 public key must be 32 bytes, got ${raw.length}`);
  // A JWK import is ~10× cheaper than DER/SPKI here (Node 20 runs SPKI through OpenSSL 3's
  // generic decoder chain); the key is the same. Devices import every neighbour's key once per round.
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(raw).toString("base64url") }, format: "jwk" });
}

export function privateKeyToPem(key: KeyObject): string {
  return key.export({ format: "pem", type: "pkcs8" }).toString();
}

export function privateKeyFromPem(pem: string, what = "private key"): Ed25519KeyPair {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (err) {
    throw new KeyFormatError(`${what} is not a readable PEM private key (${(err as Error).message})`);
  }
  if (privateKey.asymmetricKeyType !== "ed25519") {
    throw new KeyFormatError(`${what} is a ${privateKey.asymmetricKeyType} key, expected ed25519`);
  }
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, publicRaw: rawPublicKey(publicKey) };
}

export function signBytes(privateKey: KeyObject, data: Uint8Array | string): Uint8Array {
  return new Uint8Array(sign(null, typeof data === "string" ? Buffer.from(data) : data, privateKey));
}

export function verifyBytes(publicKey: KeyObject, data: Uint8Array | string, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  try {
    return verify(null, typeof data === "string" ? Buffer.from(data) : data, publicKey, signature);
  } catch {
    return false;
  }
}

