/**
 * Signed-request authentication carried in gRPC metadata: every RPC names its key id and is
 * signed with the caller's ed25519 key over (method, timestamp, nonce). The server checks the
 * signature against the registered key, a freshness window and a nonce it has not seen
 * (replay protection, see coordinator/auth). TLS protects the body; the signature proves who
 * opened the call.
 */
import { randomBytes, type KeyObject } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { signBytes, verifyBytes } from "../crypto/ed25519.ts";

export const AUTH_KEY_ID = "tacit-key-id";
export const AUTH_TIMESTAMP = "tacit-ts";
export const AUTH_NONCE = "tacit-nonce";
export const AUTH_SIGNATURE = "tacit-sig";
/** Requests older or newer than this are refused as stale (clock skew allowance included). */
export const AUTH_MAX_SKEW_MS = 120_000;

export interface Credentials {
  keyId: string;
  privateKey: KeyObject;
}

export function authPayload(method: string, timestamp: string, nonce: string): string {
  return `tacit-rpc-v1\n${method}\n${timestamp}\n${nonce}`;
}

/** Builds metadata for one call of `method` (e.g. "/tacit.v1.Rounds/SubmitMaskedInput"). */
export function signedMetadata(creds: Credentials, method: string, now = Date.now()): grpc.Metadata {
  const md = new grpc.Metadata();
  const ts = String(now);
  const nonce = randomBytes(16).toString("hex");
  md.set(AUTH_KEY_ID, creds.keyId);
  md.set(AUTH_TIMESTAMP, ts);
  md.set(AUTH_NONCE, nonce);
  md.set(AUTH_SIGNATURE, Buffer.from(signBytes(creds.privateKey, authPayload(method, ts, nonce))).toString("base64"));
  return md;
}

export interface ParsedAuth {
  keyId: string;
  timestamp: number;
  nonce: string;
  signature: Uint8Array;
}

export class AuthError extends Error {
  override name = "AuthError";
}

export function parseAuthMetadata(md: grpc.Metadata): ParsedAuth {
  const get = (k: string): string => {
    const v = md.get(k)[0];
    if (typeof v !== "string" || v.length === 0) throw new AuthError(`missing ${k} metadata: the request is not signed`);
    return v;
  };
  const keyId = get(AUTH_KEY_ID);
  const tsText = get(AUTH_TIMESTAMP);
  const nonce = get(AUTH_NONCE);
  const sig = get(AUTH_SIGNATURE);
  if (!/^[A-Za-z0-9._:-]{1,128}$/.test(keyId)) throw new AuthError("malformed key id");
  if (!/^\d{1,16}$/.test(tsText)) throw new AuthError("malformed timestamp");
  if (!/^[0-9a-f]{32}$/.test(nonce)) throw new AuthError("malformed nonce (expect 32 hex characters)");
  const signature = Buffer.from(sig, "base64");
  if (signature.length !== 64) throw new AuthError("malformed signature (expect 64 bytes base64)");
  return { keyId, timestamp: Number(tsText), nonce, signature };
}

/** Refuses a request outside the freshness window (checked before the key is even looked up). */
export function checkFreshness(parsed: ParsedAuth, now = Date.now()): void {
  if (Math.abs(now - parsed.timestamp) > AUTH_MAX_SKEW_MS) {
    throw new AuthError(`request timestamp is ${Math.round((now - parsed.timestamp) / 1000)} s off the coordinator's clock`);
  }
}

export function verifyAuth(parsed: ParsedAuth, method: string, publicKey: KeyObject, now = Date.now()): void {
  checkFreshness(parsed, now);
  if (!verifyBytes(publicKey, authPayload(method, String(parsed.timestamp), parsed.nonce), parsed.signature)) {
    throw new AuthError("request signature does not verify for this key");
  }
}
