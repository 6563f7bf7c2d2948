/**
 * X25519 and Ed25519 key pairs from random bytes (shared/crypto/okp-keys.ts): the same keys the
 * RFCs define, and no GC-time deadlock. generateKeyPairSync followed by a JWK export of the new
 * key deadlocked a simulation's device thread; the stress test below hangs with it (60,000
 * pairs with a 1 MiB young generation hung 3 times in 3 within 60 s here) and completes in
 * seconds with the imported keys.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { generateEd25519, okpKeyPairFromPrivate, publicKeyFromRaw, signBytes, verifyBytes } from "../shared/crypto/index.ts";
import { agree, generateX25519, x25519Public } from "../shared/secagg/x25519.ts";

const hex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("OKP key pairs from random bytes", () => {
  it("derive the RFCs' public keys: RFC 7748 §6.1 (X25519) and RFC 8032 §7.1 test 1 (Ed25519)", () => {
    const alice = okpKeyPairFromPrivate("x25519", hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
    expect(toHex(alice.publicRaw)).toBe("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    const bob = okpKeyPairFromPrivate("x25519", hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"));
    expect(toHex(bob.publicRaw)).toBe("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    expect(toHex(agree(alice.privateKey, x25519Public(bob.publicRaw)))).toBe("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    const ed = okpKeyPairFromPrivate("ed25519", hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"));
    expect(toHex(ed.publicRaw)).toBe("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    expect(toHex(signBytes(ed.privateKey, new Uint8Array(0)))).toBe("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
  });

  it("random pairs agree, sign and verify, and keep their private bytes", () => {
    for (let i = 0; i < 50; i++) {
      const a = generateX25519();
      const b = generateX25519();
      expect(agree(a.privateKey, x25519Public(b.publicRaw))).toEqual(agree(b.privateKey, x25519Public(a.publicRaw)));
      expect(Buffer.from(a.privateKey.export({ format: "jwk" }).d!, "base64url")).toEqual(Buffer.from(a.privateRaw));
      const id = generateEd25519();
      expect(verifyBytes(publicKeyFromRaw(id.publicRaw), "m", signBytes(id.privateKey, "m"))).toBe(true);
    }
    expect(() => okpKeyPairFromPrivate("x25519", new Uint8Array(31))).toThrow(/32 bytes, got 31/);
  });

  it("60,000 pairs with garbage collections inside key exports finish: no GC-time deadlock", async () => {
    const script = join(import.meta.dirname, "support", "okp-keygen-stress.ts");
    const child = spawn(process.execPath, ["--max-semi-space-size=1", "--import", "tsx", script, "60000"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 100_000);
    const code = await new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
    clearTimeout(timer);
    expect(code, `a key-generation thread that never finishes is deadlocked (killed after 100 s): ${out}`).toBe(0);
    expect(out).toBe("done\n");
  }, 150_000);
});
