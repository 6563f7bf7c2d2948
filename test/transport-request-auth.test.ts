import { describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { generateEd25519, canonicalJson, CanonicalJsonError, publicKeyFromRaw, privateKeyFromPem, privateKeyToPem, KeyFormatError } from "../shared/crypto/index.ts";
import { AUTH_SIGNATURE, AUTH_TIMESTAMP, AuthError, parseAuthMetadata, signedMetadata, verifyAuth } from "../shared/transport/request-auth.ts";

const METHOD = "/tacit.v1.Rounds/SubmitMaskedInput";

describe("signed request metadata", () => {
  const kp = generateEd25519();
  const creds = { keyId: "dev-abc", privateKey: kp.privateKey };

  it("verifies a fresh request for the same method and key", () => {
    const md = signedMetadata(creds, METHOD, 1_000_000);
    expect(() => verifyAuth(parseAuthMetadata(md), METHOD, kp.publicKey, 1_000_500)).not.toThrow();
  });

  it.each([
    ["another method", (md: grpc.Metadata) => md, "/tacit.v1.Rounds/Decline", 1_000_000, /does not verify/],
    ["another key", (md: grpc.Metadata) => md, METHOD, 1_000_000, /does not verify/, generateEd25519().publicKey],
    ["a stale timestamp", (md: grpc.Metadata) => md, METHOD, 1_000_000 + 10 * 60_000, /off the coordinator's clock/],
    ["a changed timestamp", (md: grpc.Metadata) => (md.set(AUTH_TIMESTAMP, "1000001"), md), METHOD, 1_000_000, /does not verify/],
  ] as const)("refuses %s", (_name, mutate, method, now, re, key = kp.publicKey) => {
    const md = mutate(signedMetadata(creds, METHOD, 1_000_000));
    expect(() => verifyAuth(parseAuthMetadata(md), method, key, now)).toThrow(re);
  });

  it("names the missing or malformed field", () => {
    const md = signedMetadata(creds, METHOD);
    md.remove(AUTH_SIGNATURE);
    expect(() => parseAuthMetadata(md)).toThrow(/missing tacit-sig/);
    const bad = signedMetadata(creds, METHOD);
    bad.set(AUTH_SIGNATURE, "AAAA");
    expect(() => parseAuthMetadata(bad)).toThrow(AuthError);
  });
});

describe("keys and canonical JSON", () => {
  it("round-trips raw public keys and PEM private keys", () => {
    const kp = generateEd25519();
    expect(publicKeyFromRaw(kp.publicRaw).export({ format: "der", type: "spki" })).toEqual(kp.publicKey.export({ format: "der", type: "spki" }));
    expect(privateKeyFromPem(privateKeyToPem(kp.privateKey)).publicRaw).toEqual(kp.publicRaw);
    expect(() => privateKeyFromPem("not a key")).toThrow(KeyFormatError);
    expect(() => publicKeyFromRaw(new Uint8Array(31))).toThrow(/32 bytes/);
  });

  it("serialises with sorted keys and refuses non-finite numbers", () => {
    expect(canonicalJson({ b: 1, a: [true, null, "x"], c: { z: 1, y: 2 } })).toBe('{"a":[true,null,"x"],"b":1,"c":{"y":2,"z":1}}');
    expect(canonicalJson({ a: 1, b: undefined })).toBe('{"a":1}');
    expect(() => canonicalJson({ x: Infinity })).toThrow(CanonicalJsonError);
    expect(() => canonicalJson({ x: NaN })).toThrow(/\$\.x/);
  });
});
