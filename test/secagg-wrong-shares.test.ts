/**
 * Finding M2 inside the SecAgg server, in process with real crypto: unmasking shares that are
 * valid field elements but wrong are corrected from the redundant shares, the round's sum stays
 * exact, and the holder who sent them is named (`culprits`). A device that dealt shares of a key
 * other than the one it advertised is named as the dealer.
 */
import { describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { generateEd25519 } from "../shared/crypto/index.ts";
import { addInPlace, fromSigned, zeros } from "../shared/modular/index.ts";
import { FIELD_PRIME, SecAggDevice, SecAggError, SecAggServer, bytesToField, fieldToBytes, type SecAggConfig, type UnmaskShares } from "../shared/secagg/index.ts";
import { generateX25519 } from "../shared/secagg/x25519.ts";

const N = 8;
const BITS = 32;
const LEN = 16;

/** Adds 1 to every share (mod p): still a field element, so only the redundancy can catch it. */
function shift(u: UnmaskShares): UnmaskShares {
  const bump = (s: { owner: number; share: Uint8Array }) => ({ owner: s.owner, share: fieldToBytes((bytesToField(s.share) + 1n) % FIELD_PRIME) });
  return { from: u.from, selfMaskShares: u.selfMaskShares.map(bump), secretKeyShares: u.secretKeyShares.map(bump) };
}

/** Shifts only the secret-key shares (of dropped devices). */
function shiftKeys(u: UnmaskShares): UnmaskShares {
  return { ...shift(u), selfMaskShares: u.selfMaskShares };
}

/**
 * One full-graph round (n = 8, k = 7, t = 4: every owner's secret has 7 shares, one wrong one is
 * correctable). `dropAtMask` vanish after ShareKeys (so their s_sk is reconstructed);
 * `tamper` rewrites one device's unmasking message; `beforeShare` can alter a device first.
 */
function round(o: { dropAtMask?: number[]; tamper?: Map<number, (u: UnmaskShares) => UnmaskShares>; beforeShare?: (devices: SecAggDevice[]) => void; afterShare?: (devices: SecAggDevice[]) => void }) {
  const cfg: SecAggConfig = { runId: "run-w", round: 0, bits: BITS, vectorLength: LEN, threshold: 4, degree: 7, roundSeed: randomBytes(32), minSurvivors: 4 };
  const ids = Array.from({ length: N }, () => generateEd25519());
  const devices = ids.map((k, i) => new SecAggDevice(cfg, i, { privateKey: k.privateKey }));
  const server = new SecAggServer(cfg, devices.map((_, i) => i), new Map(ids.map((k, i) => [i, k.publicKey])));
  const inputs = devices.map((_, i) => fromSigned(BITS, Array.from({ length: LEN }, (_, j) => i * 100 + j - 50)));
  for (const d of devices) server.receiveKeys(d.advertiseKeys());
  o.beforeShare?.(devices);
  const roster = server.closeAdvertise().map((k) => ({ ...k, identityPublicKey: ids[k.index]!.publicKey }));
  devices.forEach((d, i) => server.receiveShares(i, d.shareKeys(roster)));
  o.afterShare?.(devices);
  const inboxes = server.closeShareKeys();
  const alive = devices.map((_, i) => i).filter((i) => !(o.dropAtMask ?? []).includes(i));
  const plain = zeros(BITS, LEN);
  for (const i of alive) {
    server.receiveMaskedInput(i, devices[i]!.maskInput(inputs[i]!, inboxes.get(i) ?? []));
    addInPlace(plain, inputs[i]!);
  }
  const shown = server.closeMaskedInput();
  for (const i of alive) server.receiveConsistency(devices[i]!.signSurvivors(shown.survivors));
  const req = server.closeConsistency();
  for (const i of alive) {
    const u = devices[i]!.unmask(req);
    server.receiveUnmask(o.tamper?.get(i)?.(u) ?? u);
  }
  let sum;
  let error: SecAggError | undefined;
  try {
    sum = server.finish();
  } catch (err) {
    if (!(err instanceof SecAggError)) throw err;
    error = err;
  }
  return { sum, plain, error, culprits: server.culprits };
}

describe("wrong unmasking shares that are valid field elements (M2)", () => {
  it("honest round: exact sum, nobody named", () => {
    const r = round({});
    expect(r.error).toBeUndefined();
    expect(Array.from(r.sum!.data)).toEqual(Array.from(r.plain.data));
    expect(r.culprits.size).toBe(0);
  });

  it("a device that shifts its self-mask shares is corrected and named; the sum is still exact", () => {
    const r = round({ tamper: new Map([[5, shift]]) });
    expect(r.error).toBeUndefined();
    expect(Array.from(r.sum!.data)).toEqual(Array.from(r.plain.data));
    expect([...r.culprits.keys()]).toEqual([5]);
    expect(r.culprits.get(5)).toMatch(/wrong share of device \d+'s self-mask seed/);
  });

  it("a device that shifts a dropout's secret-key shares is corrected and named; the sum is still exact", () => {
    const r = round({ dropAtMask: [2], tamper: new Map([[6, shiftKeys]]) });
    expect(r.error).toBeUndefined();
    expect(Array.from(r.sum!.data)).toEqual(Array.from(r.plain.data));
    expect([...r.culprits.keys()]).toEqual([6]);
    expect(r.culprits.get(6)).toMatch(/device 2's mask key/);
  });

  it("a device that dealt shares of a key other than its advertised s_pk is named as the dealer, and the round aborts", () => {
    const r = round({
      dropAtMask: [3],
      beforeShare: (devices) => {
        // Device 3 keeps its advertised s-key for masking but Shamir-shares another key's scalar.
        const d = devices[3] as unknown as { s: { publicRaw: Uint8Array; privateRaw: Uint8Array; privateKey: unknown } };
        d.s = { ...d.s, privateRaw: generateX25519().privateRaw };
      },
    });
    expect(r.error?.code).toBe("BAD_SHARE");
    expect([...r.culprits.keys()]).toEqual([3]);
    expect(r.culprits.get(3)).toMatch(/dealt shares of its mask key/);
  });

  it("a device that masks with its committed self-mask seed b but deals shares of another seed is named as the dealer, and the round aborts", () => {
    let committed: Uint8Array | undefined;
    const seedOf = (d: SecAggDevice) => d as unknown as { seed: Uint8Array };
    const r = round({
      // Device 4 advertised (and signed) H(b); it Shamir-shares some other b' consistently
      // among its neighbours, then masks its input with b.
      beforeShare: (devices) => {
        committed = seedOf(devices[4]!).seed;
        seedOf(devices[4]!).seed = new Uint8Array(randomBytes(32));
      },
      afterShare: (devices) => {
        seedOf(devices[4]!).seed = committed!;
      },
    });
    expect(r.sum).toBeUndefined(); // never a garbage sum
    expect(r.error?.code).toBe("BAD_SHARE");
    expect([...r.culprits.keys()]).toEqual([4]);
    expect(r.culprits.get(4)).toMatch(/dealt shares of its self-mask seed that do not match what it advertised/);
  });

  it("the self-mask commitment is part of the signed advertisement: a changed commitment is refused by the coordinator and by neighbours", () => {
    const cfg: SecAggConfig = { runId: "run-c", round: 0, bits: BITS, vectorLength: LEN, threshold: 2, degree: 2, roundSeed: randomBytes(32) };
    const ids = [generateEd25519(), generateEd25519(), generateEd25519()];
    const devices = ids.map((k, i) => new SecAggDevice(cfg, i, { privateKey: k.privateKey }));
    const ads = devices.map((d) => d.advertiseKeys());
    expect(ads[0]!.selfMaskCommitment).toHaveLength(32);
    expect(Buffer.from(ads[0]!.selfMaskCommitment).equals(Buffer.from(ads[1]!.selfMaskCommitment))).toBe(false);
    const swapped = { ...ads[1]!, selfMaskCommitment: new Uint8Array(randomBytes(32)) };
    const server = new SecAggServer(cfg, [0, 1, 2], new Map(ids.map((k, i) => [i, k.publicKey])));
    expect(() => server.receiveKeys(swapped)).toThrow(expect.objectContaining({ code: "BAD_SIGNATURE" }));
    expect(() => server.receiveKeys({ ...ads[1]!, selfMaskCommitment: new Uint8Array(31) })).toThrow(expect.objectContaining({ code: "BAD_LENGTH" }));
    // A coordinator that rewrote the commitment in the roster: device 0 refuses its neighbour 1.
    const roster = [ads[0]!, swapped, ads[2]!].map((k) => ({ ...k, identityPublicKey: ids[k.index]!.publicKey }));
    expect(() => devices[0]!.shareKeys(roster)).toThrow(expect.objectContaining({ code: "BAD_SIGNATURE" }));
  });

  it("two devices shifting shares of the same owner exceed what k = 7, t = 4 corrects: the round aborts, never a wrong sum", () => {
    const r = round({ tamper: new Map([[1, shift], [5, shift]]) });
    expect(r.sum).toBeUndefined();
    expect(r.error?.code).toBe("BAD_SHARE");
  });
});

describe("advertised round keys are unique across the cohort (finding I1)", () => {
  it("refuses a device re-advertising another member's keys under its own signature", async () => {
    const { signBytes } = await import("../shared/crypto/index.ts");
    const { advertisePayload } = await import("../shared/secagg/index.ts");
    const cfg: SecAggConfig = { runId: "run-i1", round: 0, bits: BITS, vectorLength: LEN, threshold: 2, degree: 2, roundSeed: randomBytes(32) };
    const ids = [generateEd25519(), generateEd25519(), generateEd25519()];
    const server = new SecAggServer(cfg, [0, 1, 2], new Map(ids.map((k, i) => [i, k.publicKey])));
    const honest = new SecAggDevice(cfg, 0, { privateKey: ids[0]!.privateKey }).advertiseKeys();
    server.receiveKeys(honest);
    const c1 = randomBytes(32);
    const copy = { index: 1, cPk: honest.cPk, sPk: honest.sPk, selfMaskCommitment: c1, signature: signBytes(ids[1]!.privateKey, advertisePayload(cfg, 1, honest.cPk, honest.sPk, c1)) };
    expect(() => server.receiveKeys(copy)).toThrow(expect.objectContaining({ code: "DUPLICATE" }));
    // Swapped halves are copies too.
    const own = new SecAggDevice(cfg, 1, { privateKey: ids[1]!.privateKey }).advertiseKeys();
    const mixed = { index: 1, cPk: own.cPk, sPk: honest.cPk, selfMaskCommitment: c1, signature: signBytes(ids[1]!.privateKey, advertisePayload(cfg, 1, own.cPk, honest.cPk, c1)) };
    expect(() => server.receiveKeys(mixed)).toThrow(expect.objectContaining({ code: "DUPLICATE" }));
    server.receiveKeys(own);
    server.receiveKeys(new SecAggDevice(cfg, 2, { privateKey: ids[2]!.privateKey }).advertiseKeys());
  });
});
