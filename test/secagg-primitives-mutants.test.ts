/**
 * The SecAgg primitives mutation testing found unpinned (issue #16; `npm run test:mutation`):
 * key-derivation labels and the key transcript (prg.ts), mask application in slices
 * (mask-prg.ts), the share box's length check and associated data (share-box.ts), the X25519 key
 * checks (x25519.ts), the wire form of advertised keys (messages.ts) and the error name
 * (errors.ts).
 *
 * Two paths cannot be reached with Node 20's OpenSSL and are reached here through a wrapper around
 * `node:crypto` that is off unless a test turns it on: a cipher whose `update` returns a buffer at
 * an odd byte offset (the copy-to-aligned fallback of `expandMask` and `addMaskInPlace`), and an
 * X25519 agreement that returns the all-zero secret instead of failing (the second line of defence
 * in `assertUsablePublicKey`).
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { createCipheriv, createDecipheriv, createHash, hkdfSync, type KeyObject } from "node:crypto";
import { addWordsInPlace } from "../shared/modular/index.ts";
import { deriveKey, expandMask, pairMaskKey, pairTranscript, selfMaskCommitment, selfMaskKey, type RoundDomain } from "../shared/secagg/prg.ts";
import { addMaskInPlace } from "../shared/secagg/mask-prg.ts";
import { openShare, sealShare } from "../shared/secagg/share-box.ts";
import { agree, assertUsablePublicKey, generateX25519, x25519Private, x25519Public, x25519PublicOf } from "../shared/secagg/x25519.ts";
import { SecAggError, wireAdvertisedKeys, type AdvertisedKeys } from "../shared/secagg/index.ts";

const hooks = vi.hoisted(() => ({ misalign: false, zeroSecretWith: undefined as string | undefined }));

vi.mock("node:crypto", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:crypto")>();
  /** The same bytes at byteOffset 1 of a fresh ArrayBuffer. */
  const shifted = (b: Buffer): Buffer => {
    const c = Buffer.alloc(b.length + 1);
    b.copy(c, 1);
    return c.subarray(1);
  };
  const createCipheriv = ((...args: Parameters<typeof real.createCipheriv>) => {
    const c = real.createCipheriv(...args);
    if (hooks.misalign) {
      const update = c.update.bind(c) as (data: Buffer) => Buffer;
      (c as unknown as { update: (data: Buffer) => Buffer }).update = (data) => shifted(update(data));
    }
    return c;
  }) as typeof real.createCipheriv;
  const diffieHellman = ((opts: { privateKey: KeyObject; publicKey: KeyObject }) => {
    if (hooks.zeroSecretWith !== undefined && opts.publicKey.export({ format: "jwk" }).x === hooks.zeroSecretWith) return Buffer.alloc(32);
    return real.diffieHellman(opts);
  }) as typeof real.diffieHellman;
  return { ...real, default: { ...real, createCipheriv, diffieHellman }, createCipheriv, diffieHellman };
});

afterEach(() => {
  hooks.misalign = false;
  hooks.zeroSecretWith = undefined;
});

const secret = new Uint8Array(32).fill(0x11);
const d: RoundDomain = { runId: "kat-run", round: 3, attempt: 1, roundSeed: Uint8Array.from({ length: 32 }, (_, i) => i) };
const seedHex = Buffer.from(d.roundSeed!).toString("hex");
const pkA = new Uint8Array(32).fill(0xaa);
const pkB = new Uint8Array(32).fill(0xbb);
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
/** The bytes of a word array, for a fast comparison of long arrays. */
const bytesOf = (w: Uint32Array): Buffer => Buffer.from(w.buffer, w.byteOffset, w.byteLength);
const sameWords = (a: Uint32Array, b: Uint32Array): boolean => a.length === b.length && bytesOf(a).equals(bytesOf(b));

describe("key derivation (prg.ts): labels, domain and transcript are pinned", () => {
  // Known-answer vectors computed once from this code. They pin the wire format: two devices of
  // different versions must derive the same keys, and the coordinator the same masks.
  const transcript = `${"aa".repeat(32)}:${"bb".repeat(32)}`;

  it("the pair transcript lists the public keys in index order, whichever end computes it", () => {
    expect(pairTranscript(2, pkA, 5, pkB)).toBe(transcript);
    expect(pairTranscript(5, pkB, 2, pkA)).toBe(transcript);
  });

  it("the pairwise mask key is HKDF over the v2 label, the round domain, (min, max) and the transcript", () => {
    const expected = "55913e82c9c78e60a4bd48c17b71e2ed99294273b46c260eac83243044b8a227";
    expect(hex(pairMaskKey(secret, d, 5, 2, transcript))).toBe(expected);
    expect(hex(pairMaskKey(secret, d, 2, 5, transcript))).toBe(expected);
    const info = `tacit-secagg-v2|pair-mask|kat-run|3|1|${seedHex}|2|5|${transcript}`;
    expect(hex(new Uint8Array(hkdfSync("sha256", secret, Buffer.alloc(0), Buffer.from(info), 32)))).toBe(expected);
  });

  it("the self-mask key binds the purpose, the round domain and the device index", () => {
    expect(hex(selfMaskKey(secret, d, 4))).toBe("998d9204c957876ac2eab0ac79c3e31b8e4ae451f70b6a9a0d24d7f4c015e381");
    // Without attempt and round seed (attempt 0, empty seed field).
    const bare: RoundDomain = { runId: "kat-run", round: 3 };
    expect(hex(selfMaskKey(secret, bare, 4))).toBe("2eb7dc3e12197e9600efc702bfa1d8029ddd72486aeb8ed27402f24173c54ebd");
    const info = "tacit-secagg-v2|self-mask|kat-run|3|0||4";
    expect(hex(new Uint8Array(hkdfSync("sha256", secret, Buffer.alloc(0), Buffer.from(info), 32)))).toBe("2eb7dc3e12197e9600efc702bfa1d8029ddd72486aeb8ed27402f24173c54ebd");
  });

  it("the self-mask commitment is SHA-256 over the commitment domain, a separator and the seed", () => {
    const expected = "133dbee223bc79eab1882f1e7ed914ea4d8c47d24d2be703ae5bb1d0195e2835";
    expect(hex(selfMaskCommitment(secret, d, 4))).toBe(expected);
    const domain = `tacit-secagg-v2|self-mask-commitment|kat-run|3|1|${seedHex}|4`;
    expect(createHash("sha256").update(domain).update("|").update(secret).digest("hex")).toBe(expected);
  });

  it("the share-box key is pinned too", () => {
    expect(hex(deriveKey(secret, 32, "share-box", d, 2, 5, transcript))).toBe("5acd371b73d67e59b799504199c026e82253a92d8d8afdbf2ba57f0984b7b743");
  });
});

describe("mask application (mask-prg.ts, prg.ts expandMask)", () => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => 7 * i + 1);
  // Three 64 KiB slices, the last one partial (12 bytes): every slice offset is exercised.
  const WORDS = 2 * 16_384 + 6;

  /** acc ± keystream computed from expandMask in one piece. */
  function reference(bits: number, acc: Uint32Array, sign: 1 | -1): Uint32Array {
    const out = new Uint32Array(acc);
    addWordsInPlace(bits, out, expandMask(key, acc.length), sign);
    return out;
  }
  const start = (): Uint32Array => Uint32Array.from({ length: WORDS }, (_, i) => (i * 2_654_435_761) >>> 0);

  it("expandMask is AES-128-CTR under (key ‖ iv)", () => {
    const k = new Uint8Array(32).fill(7);
    expect([...expandMask(k, 4)]).toEqual([1889555163, 1480435076, 3005850652, 3423648210]);
    const c = createCipheriv("aes-128-ctr", k.subarray(0, 16), k.subarray(16));
    expect(bytesOf(expandMask(k, 4)).toString("hex")).toBe(hex(c.update(Buffer.alloc(16))));
  });

  it("adds and subtracts the same keystream as expandMask across several slices, at 32 and 64 bits", () => {
    for (const bits of [32, 64]) {
      for (const sign of [1, -1] as const) {
        const acc = start();
        addMaskInPlace(bits, acc, key, sign);
        expect(sameWords(acc, reference(bits, start(), sign))).toBe(true);
      }
    }
    // The stream really is long: the third slice differs from the first.
    const ks = expandMask(key, WORDS);
    expect(ks.subarray(2 * 16_384, 2 * 16_384 + 6)).not.toEqual(ks.subarray(0, 6));
  });

  it("a keystream returned at an odd byte offset is copied into an aligned slice (same words)", () => {
    const want32 = reference(32, start(), 1);
    const want64 = reference(64, start(), -1);
    const short = reference(32, Uint32Array.of(1, 2, 3), 1);
    const k4 = [...expandMask(key, 5)];
    hooks.misalign = true;
    // The wrapper is in effect: update's output is not 4-byte aligned.
    expect(createCipheriv("aes-128-ctr", key.subarray(0, 16), key.subarray(16)).update(Buffer.alloc(8)).byteOffset % 4).toBe(1);
    const acc32 = start();
    addMaskInPlace(32, acc32, key, 1);
    expect(sameWords(acc32, want32)).toBe(true);
    const acc64 = start();
    addMaskInPlace(64, acc64, key, -1);
    expect(sameWords(acc64, want64)).toBe(true);
    const acc3 = Uint32Array.of(1, 2, 3);
    addMaskInPlace(32, acc3, key, 1);
    expect(acc3).toEqual(short);
    const m = expandMask(key, 5);
    expect(m.byteOffset % 4).toBe(0);
    expect([...m]).toEqual(k4);
  });
});

describe("the share box (share-box.ts)", () => {
  const plaintext = Uint8Array.from({ length: 64 }, (_, i) => i);
  const t = pairTranscript(1, pkA, 2, pkB);

  it("opens what it sealed; the ciphertext is nonce ‖ body ‖ tag with the pinned associated data", () => {
    const sealed = sealShare(secret, d, 2, 1, plaintext, t);
    expect(sealed.length).toBe(12 + 64 + 16);
    expect(openShare(secret, d, 2, 1, sealed, t)).toEqual(plaintext);
    // Decrypted by hand: the key is the share-box key of the pair, the associated data names
    // run, round, sender and recipient in that order (pins the wire format).
    const b = Buffer.from(sealed);
    const dc = createDecipheriv("aes-256-gcm", deriveKey(secret, 32, "share-box", d, 1, 2, t), b.subarray(0, 12));
    dc.setAAD(Buffer.from("tacit-share-v1|kat-run|3|2|1"));
    dc.setAuthTag(b.subarray(b.length - 16));
    expect(new Uint8Array(Buffer.concat([dc.update(b.subarray(12, b.length - 16)), dc.final()]))).toEqual(plaintext);
  });

  it("refuses a share replayed in the other direction of the pair (same key, other associated data)", () => {
    const sealed = sealShare(secret, d, 2, 1, plaintext, t);
    expect(() => openShare(secret, d, 1, 2, sealed, t)).toThrow(expect.objectContaining({ code: "BAD_SHARE", message: "encrypted share from 1 to 2 does not authenticate" }));
    expect(() => openShare(secret, { ...d, round: 4 }, 2, 1, sealed, t)).toThrow(expect.objectContaining({ code: "BAD_SHARE", message: "encrypted share from 2 to 1 does not authenticate" }));
  });

  it("refuses a ciphertext shorter than nonce and tag, and accepts exactly that length (empty plaintext)", () => {
    for (const len of [0, 1, 12, 27]) {
      expect(() => openShare(secret, d, 3, 1, new Uint8Array(len), t)).toThrow(expect.objectContaining({ code: "BAD_SHARE", message: "encrypted share from 3 is too short" }));
    }
    const empty = sealShare(secret, d, 3, 1, new Uint8Array(0), t);
    expect(empty.length).toBe(28);
    expect(openShare(secret, d, 3, 1, empty, t)).toEqual(new Uint8Array(0));
  });
});

describe("X25519 key checks (x25519.ts)", () => {
  it("a public key must be 32 bytes", () => {
    for (const len of [0, 31, 33]) {
      expect(() => x25519Public(new Uint8Array(len).fill(9))).toThrow(expect.objectContaining({ code: "BAD_SHARE", message: `X25519 public key must be 32 bytes, got ${len}` }));
    }
    const k = generateX25519();
    expect(x25519Public(k.publicRaw).asymmetricKeyType).toBe("x25519");
  });

  it("a reconstructed private key that is not a valid scalar is refused as a bad share", () => {
    const k = generateX25519();
    expect(() => x25519Private(new Uint8Array(31).fill(1), k.publicRaw)).toThrow(
      expect.objectContaining({ code: "BAD_SHARE", message: "reconstructed key is not a valid X25519 key: Invalid JWK data" }),
    );
    // Control: the real scalar rebuilds the key.
    expect(hex(x25519PublicOf(x25519Private(k.privateRaw, k.publicRaw)))).toBe(hex(k.publicRaw));
  });

  it("refuses a low-order public key with WEAK_KEY, naming it and OpenSSL's reason", () => {
    expect(() => assertUsablePublicKey(new Uint8Array(32), "device 4's c_pk")).toThrow(
      expect.objectContaining({ code: "WEAK_KEY", message: expect.stringMatching(/^device 4's c_pk is a low-order or invalid X25519 key \(.*failed during derivation\)$/) }),
    );
    expect(() => assertUsablePublicKey(new Uint8Array(31), "device 5's s_pk")).toThrow(
      expect.objectContaining({ code: "WEAK_KEY", message: "device 5's s_pk is a low-order or invalid X25519 key (X25519 public key must be 32 bytes, got 31)" }),
    );
    expect(() => assertUsablePublicKey(generateX25519().publicRaw, "device 6's c_pk")).not.toThrow();
  });

  it("refuses a key whose agreement yields the all-zero secret even if the backend does not fail", () => {
    const k = generateX25519();
    hooks.zeroSecretWith = Buffer.from(k.publicRaw).toString("base64url");
    // The wrapper is in effect: this agreement gives 32 zero bytes.
    expect([...agree(generateX25519().privateKey, x25519Public(k.publicRaw))]).toEqual(new Array(32).fill(0));
    expect(() => assertUsablePublicKey(k.publicRaw, "device 7's s_pk")).toThrow(
      expect.objectContaining({ code: "WEAK_KEY", message: "device 7's s_pk is a low-order or invalid X25519 key (all-zero shared secret)" }),
    );
    hooks.zeroSecretWith = undefined;
    expect(() => assertUsablePublicKey(k.publicRaw, "device 7's s_pk")).not.toThrow();
  });
});

describe("messages.ts and errors.ts", () => {
  it("wireAdvertisedKeys carries every field as a Buffer", () => {
    const k: AdvertisedKeys = { index: 7, cPk: pkA, sPk: pkB, selfMaskCommitment: new Uint8Array(32).fill(0xcc), signature: new Uint8Array(64).fill(0xdd) };
    const w = wireAdvertisedKeys(k);
    expect(Object.keys(w).sort()).toEqual(["cPk", "index", "sPk", "selfMaskCommitment", "signature"]);
    expect(w.index).toBe(7);
    for (const [field, want] of [["cPk", pkA], ["sPk", pkB], ["selfMaskCommitment", k.selfMaskCommitment], ["signature", k.signature]] as const) {
      expect(Buffer.isBuffer(w[field])).toBe(true);
      expect(hex(w[field])).toBe(hex(want));
    }
  });

  it("a SecAggError is named SecAggError (logs and stack traces show it)", () => {
    const e = new SecAggError("STAGE", "out of order");
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("SecAggError");
    expect(String(e)).toBe("SecAggError: out of order");
    expect(e.code).toBe("STAGE");
  });
});
