/** X25519 with node:crypto KeyObjects (26 µs per agreement here vs 424 µs in tweetnacl). */
import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from "node:crypto";
import { generateOkpKeyPair } from "../crypto/okp-keys.ts";
import { SecAggError } from "./errors.ts";

export interface X25519Pair {
  privateKey: KeyObject;
  publicRaw: Uint8Array;
  privateRaw: Uint8Array;
}

const b64u = (b: Uint8Array): string => Buffer.from(b).toString("base64url");

/** Not generateKeyPairSync: see shared/crypto/okp-keys.ts (a GC-time deadlock in Node 20). */
export function generateX25519(): X25519Pair {
  const { privateKey, publicRaw, privateRaw } = generateOkpKeyPair("x25519");
  return { privateKey, publicRaw, privateRaw };
}

export function x25519Public(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new SecAggError("BAD_SHARE", `X25519 public key must be 32 bytes, got ${raw.length}`);
  return createPublicKey({ key: { kty: "OKP", crv: "X25519", x: b64u(raw) }, format: "jwk" });
}

/** Rebuilds a private key from its raw scalar (after Shamir reconstruction). */
export function x25519Private(raw: Uint8Array, publicRaw: Uint8Array): KeyObject {
  try {
    return createPrivateKey({ key: { kty: "OKP", crv: "X25519", d: b64u(raw), x: b64u(publicRaw) }, format: "jwk" });
  } catch (err) {
    throw new SecAggError("BAD_SHARE", `reconstructed key is not a valid X25519 key: ${(err as Error).message}`);
  }
}

/** The raw public key of a private key (to check a reconstructed secret against its advertised key). */
export function x25519PublicOf(privateKey: KeyObject): Uint8Array {
  return new Uint8Array(Buffer.from(createPublicKey(privateKey).export({ format: "jwk" }).x!, "base64url"));
}

let probe: KeyObject | undefined;

/**
 * Refuses a low-order (or otherwise unusable) X25519 public key: agreement with such a point
 * yields the all-zero secret, which OpenSSL rejects, so every neighbour's key agreement would
 * fail. Checked by one agreement with a fixed private key (≈ 30 µs).
 */
export function assertUsablePublicKey(raw: Uint8Array, what: string): void {
  probe ??= generateX25519().privateKey;
  try {
    const z = diffieHellman({ privateKey: probe, publicKey: x25519Public(raw) });
    if (z.every((b) => b === 0)) throw new Error("all-zero shared secret");
  } catch (err) {
    throw new SecAggError("WEAK_KEY", `${what} is a low-order or invalid X25519 key (${(err as Error).message})`);
  }
}

export function agree(privateKey: KeyObject, publicKey: KeyObject): Uint8Array {
  return new Uint8Array(diffieHellman({ privateKey, publicKey }));
}
