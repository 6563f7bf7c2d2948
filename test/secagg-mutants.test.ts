/**
 * The defences mutation testing found unpinned (issue #16; `npm run test:mutation`): each case
 * makes one check of the device's or the coordinator's SecAgg side the only thing between a
 * request and a leak, and asserts the specific refusal, then the control that passes it.
 * Small rounds (n ≤ 8, 4-word vectors) so that Stryker can run them per mutant.
 */
import { describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { generateEd25519, type Ed25519KeyPair } from "../shared/crypto/index.ts";
import { fromSigned, toSigned, zeros, type ModularVector } from "../shared/modular/index.ts";
import { consistencyPayload, countValidSigners, neighbourGraph, sameSet, SHARE_BYTES, SecAggDevice, SecAggServer, type EncryptedShare, type RosterEntry, type SecAggConfig, type SurvivorSignature } from "../shared/secagg/index.ts";
import { signBytes } from "../shared/crypto/ed25519.ts";

const LEN = 4;

function setup(n: number, degree: number, threshold: number, minSurvivors?: number) {
  const cfg: SecAggConfig = { runId: "mut", round: 2, attempt: 0, bits: 32, vectorLength: LEN, threshold, degree, roundSeed: randomBytes(32), ...(minSurvivors !== undefined ? { minSurvivors } : {}) };
  const ids: Ed25519KeyPair[] = Array.from({ length: n }, () => generateEd25519());
  const devices = ids.map((k, i) => new SecAggDevice(cfg, i, { privateKey: k.privateKey }));
  const server = new SecAggServer(cfg, devices.map((_, i) => i), new Map(ids.map((k, i) => [i, k.publicKey])));
  return { cfg, ids, devices, server };
}

const input = (i: number): ModularVector => fromSigned(32, Array.from({ length: LEN }, (_, j) => (i + 1) * 10 + j));

/** Advertise and ShareKeys for everyone except `silentAtShare`; returns the roster and inboxes. */
function throughShareKeys(s: ReturnType<typeof setup>, silentAtShare: number[] = []) {
  for (const d of s.devices) s.server.receiveKeys(d.advertiseKeys());
  const roster: RosterEntry[] = s.server.closeAdvertise().map((k) => ({ ...k, identityPublicKey: s.ids[k.index]!.publicKey }));
  const shares = s.devices.map((d) => d.shareKeys(roster));
  shares.forEach((sh, i) => {
    if (!silentAtShare.includes(i)) s.server.receiveShares(i, sh);
  });
  const inboxes = s.server.closeShareKeys();
  return { roster, shares, inboxes };
}

const code = (c: string) => expect.objectContaining({ code: c });
/** The refusal's code (what the participant and the coordinator act on) and its message. */
const refusal = (c: string, message: RegExp) => expect.objectContaining({ code: c, message: expect.stringMatching(message) });

describe("the device's survivor-set checks (signSurvivors and unmask)", () => {
  it("refuses a survivor set with a duplicate index, an index that never advertised, or a neighbour whose shares it never got", () => {
    const s = setup(6, 5, 3);
    const { inboxes } = throughShareKeys(s, [5]);
    // Device 5 advertised but its shares never reached anyone; the others mask with each other only.
    for (let i = 0; i < 5; i++) s.devices[i]!.maskInput(input(i), inboxes.get(i) ?? []);
    const d0 = s.devices[0]!;
    expect(() => d0.signSurvivors([0, 1, 1, 2, 3])).toThrow(refusal("UNSAFE_UNMASK", /duplicate indices in the survivor set/));
    expect(() => d0.signSurvivors([1, 2, 3, 4])).toThrow(refusal("UNSAFE_UNMASK", /this device is not listed among the survivors/));
    expect(() => d0.signSurvivors([0, 1, 2, 3, 9])).toThrow(refusal("UNKNOWN_PEER", /device 9 did not advertise keys this round/));
    expect(() => d0.signSurvivors([0, 1, 2, 3, 5])).toThrow(refusal("UNSAFE_UNMASK", /neighbour 5 is listed as a survivor but never shared keys/));
    // Every refusal above left the device able to sign an honest set.
    expect(d0.signSurvivors([0, 1, 2, 3, 4]).index).toBe(0);
  });

  it("the floor is the larger of t and minSurvivors", () => {
    // t = 2, minSurvivors = 4: three survivors meet t but not minSurvivors.
    const s = setup(5, 4, 2, 4);
    const { inboxes } = throughShareKeys(s);
    s.devices.forEach((d, i) => d.maskInput(input(i), inboxes.get(i)!));
    expect(() => s.devices[0]!.signSurvivors([0, 1, 2])).toThrow(/only 3 survivors; refusing to help unmask fewer than 4 inputs/);
    expect(s.devices[0]!.signSurvivors([0, 1, 2, 3]).index).toBe(0);
    // t = 4 > minSurvivors = 2: three survivors are refused for t.
    const u = setup(5, 4, 4, 2);
    const x = throughShareKeys(u);
    u.devices.forEach((d, i) => d.maskInput(input(i), x.inboxes.get(i)!));
    expect(() => u.devices[0]!.signSurvivors([0, 1, 2])).toThrow(/fewer than 4 inputs/);
    expect(u.devices[0]!.signSurvivors([0, 1, 2, 3]).index).toBe(0);
  });

  it("refuses an unmasking request with duplicate dropouts, unknown dropouts, or a dropped neighbour it never exchanged shares with", () => {
    const s = setup(6, 5, 3);
    const { inboxes } = throughShareKeys(s, [5]);
    for (let i = 0; i < 5; i++) s.devices[i]!.maskInput(input(i), inboxes.get(i) ?? []);
    const set = [0, 1, 2, 3];
    const sigs = set.map((i) => s.devices[i]!.signSurvivors(set));
    const d0 = s.devices[0]!;
    expect(() => d0.unmask({ survivors: [0, 1, 2, 3, 4], dropouts: [], signatures: sigs })).toThrow(refusal("UNSAFE_UNMASK", /names a survivor set other than the one this device signed/));
    expect(() => d0.unmask({ survivors: set, dropouts: [4] })).toThrow(refusal("UNSAFE_UNMASK", /only 0 valid signatures/));
    expect(() => d0.unmask({ survivors: set, dropouts: [4, 4], signatures: sigs })).toThrow(refusal("UNSAFE_UNMASK", /duplicate indices in the unmasking request/));
    expect(() => d0.unmask({ survivors: set, dropouts: [3, 4], signatures: sigs })).toThrow(refusal("UNSAFE_UNMASK", /device 3 is listed as both surviving and dropped/));
    expect(() => d0.unmask({ survivors: set, dropouts: [4, 7], signatures: sigs })).toThrow(refusal("UNKNOWN_PEER", /device 7 did not advertise keys this round/));
    expect(() => d0.unmask({ survivors: set, dropouts: [4, 5], signatures: sigs })).toThrow(refusal("UNSAFE_UNMASK", /neighbour 5 is declared dropped but never shared keys/));
    // The honest request: b-shares of the surviving neighbours, the s-share of dropout 4 only.
    const out = d0.unmask({ survivors: set, dropouts: [4], signatures: sigs });
    expect(out.from).toBe(0);
    expect(out.selfMaskShares.map((x) => x.owner).sort()).toEqual([1, 2, 3]);
    expect(out.secretKeyShares.map((x) => x.owner)).toEqual([4]);
    expect(out.selfMaskShares.every((x) => x.share.length === SHARE_BYTES)).toBe(true);
    // The two kinds are different secrets' shares (b and s_sk), never the same bytes.
    expect(Buffer.from(out.secretKeyShares[0]!.share).equals(Buffer.from(out.selfMaskShares[0]!.share))).toBe(false);
  });

  it("counts only signatures from its own neighbourhood: a non-neighbour's valid signature does not help", () => {
    // n = 8, k = 2 (a ring): device 0 has two neighbours; t = 2 with minSurvivors 2.
    const s = setup(8, 2, 2, 2);
    const { inboxes } = throughShareKeys(s);
    s.devices.forEach((d, i) => d.maskInput(input(i), inboxes.get(i)!));
    const all = [0, 1, 2, 3, 4, 5, 6, 7];
    const sigs = s.devices.map((d) => d.signSurvivors(all));
    const nbrs = neighbourGraph(s.cfg, all).get(0)!;
    const strangers = all.filter((v) => v !== 0 && !nbrs.includes(v));
    // Only strangers' signatures plus its own: one valid in its neighbourhood, two needed.
    const strangersOnly = [sigs[0]!, ...strangers.map((v) => sigs[v]!)];
    expect(() => s.devices[0]!.unmask({ survivors: all, dropouts: [], signatures: strangersOnly })).toThrow(/only 1 valid signatures/);
    // A neighbour outside the survivor set cannot vouch for it, even with a valid signature over it.
    const u = setup(8, 2, 2, 2);
    const x = throughShareKeys(u);
    u.devices.forEach((d, i) => d.maskInput(input(i), x.inboxes.get(i)!));
    const uNbrs = neighbourGraph(u.cfg, all).get(0)!;
    const survivorsWithoutNbr = all.filter((v) => v !== uNbrs[0]);
    const own = u.devices[0]!.signSurvivors(survivorsWithoutNbr);
    const fromDropped: SurvivorSignature = { index: uNbrs[0]!, signature: signBytes(u.ids[uNbrs[0]!]!.privateKey, consistencyPayload(u.cfg, survivorsWithoutNbr)) };
    expect(() => u.devices[0]!.unmask({ survivors: survivorsWithoutNbr, dropouts: [uNbrs[0]!], signatures: [own, fromDropped] })).toThrow(/only 1 valid signatures/);
    const withNeighbour = [sigs[0]!, sigs[nbrs[0]!]!];
    expect(s.devices[0]!.unmask({ survivors: all, dropouts: [], signatures: withNeighbour }).selfMaskShares.map((x) => x.owner).sort()).toEqual([...nbrs].sort());
  });
});

describe("consistency helpers", () => {
  it("sameSet ignores order and counts duplicates", () => {
    expect(sameSet([3, 1, 2], [1, 2, 3])).toBe(true);
    expect(sameSet([1, 2, 3], [3, 1, 2])).toBe(true);
    expect(sameSet([9, 10], [10, 9])).toBe(true);
    expect(sameSet([4, 10, 9, 1], [10, 1, 9, 4])).toBe(true);
    expect(sameSet([1, 2, 3], [1, 2])).toBe(false);
    expect(sameSet([1, 1, 2], [1, 2, 2])).toBe(false);
    expect(sameSet([10, 9], [9, 10])).toBe(true); // numeric, not lexicographic, order
    expect(sameSet([2, 10, 9], [10, 9, 3])).toBe(false);
  });

  it("the consistency payload binds run, round, attempt, seed and the numerically sorted set", () => {
    const d = { runId: "r", round: 7, attempt: 2, roundSeed: Uint8Array.from([1, 255]) };
    expect(consistencyPayload(d, [10, 9, 2]).toString()).toBe("tacit-consistency-v1|r|7|2|01ff|2,9,10");
    expect(consistencyPayload({ runId: "r", round: 7, roundSeed: Uint8Array.from([0]) }, [1]).toString()).toBe("tacit-consistency-v1|r|7|0|00|1");
  });

  it("countValidSigners counts distinct allowed signers with a 64-byte signature that verifies", () => {
    const keys = [generateEd25519(), generateEd25519(), generateEd25519()];
    const payload = Buffer.from("p");
    const sig = (i: number, body = payload): SurvivorSignature => ({ index: i, signature: signBytes(keys[i]!.privateKey, body) });
    const id = (i: number) => keys[i]?.publicKey;
    const allowed = new Set([0, 1]);
    expect(countValidSigners(payload, [sig(0), sig(1)], allowed, id)).toBe(2);
    expect(countValidSigners(payload, [sig(0), sig(0), sig(0)], allowed, id)).toBe(1);
    expect(countValidSigners(payload, [sig(0), sig(2)], allowed, id)).toBe(1);
    expect(countValidSigners(payload, [sig(0), sig(1, Buffer.from("q"))], allowed, id)).toBe(1);
    expect(countValidSigners(payload, [sig(0), { index: 1, signature: sig(1).signature.subarray(0, 63) }], allowed, id)).toBe(1);
    expect(countValidSigners(payload, [sig(1)], allowed, () => undefined)).toBe(0);
    // A bad signature first does not shadow the same signer's good one.
    expect(countValidSigners(payload, [{ index: 0, signature: new Uint8Array(64) }, sig(0)], allowed, id)).toBe(1);
  });
});

describe("the coordinator's neighbour checks", () => {
  it("refuses unmasking shares from a survivor that never signed the survivor set", () => {
    const s = setup(5, 4, 3);
    const { inboxes } = throughShareKeys(s);
    s.devices.forEach((d, i) => s.server.receiveMaskedInput(i, d.maskInput(input(i), inboxes.get(i)!)));
    const shown = s.server.closeMaskedInput();
    for (const i of [0, 1, 2, 3]) s.server.receiveConsistency(s.devices[i]!.signSurvivors(shown.survivors));
    s.server.closeConsistency();
    expect(() => s.server.receiveUnmask({ from: 4, selfMaskShares: [], secretKeyShares: [] })).toThrow(refusal("UNKNOWN_PEER", /device 4 did not sign the survivor set/));
  });

  it("refuses shares addressed outside the sender's neighbourhood, or duplicated, or from a device that sent twice", () => {
    const s = setup(8, 2, 2, 2);
    for (const d of s.devices) s.server.receiveKeys(d.advertiseKeys());
    const roster: RosterEntry[] = s.server.closeAdvertise().map((k) => ({ ...k, identityPublicKey: s.ids[k.index]!.publicKey }));
    const shares = s.devices.map((d) => d.shareKeys(roster));
    const nbrs = neighbourGraph(s.cfg, [0, 1, 2, 3, 4, 5, 6, 7]).get(0)!;
    const stranger = [1, 2, 3, 4, 5, 6, 7].find((v) => !nbrs.includes(v))!;
    const redirected: EncryptedShare[] = [shares[0]![0]!, { ...shares[0]![1]!, to: stranger }];
    expect(() => s.server.receiveShares(0, redirected)).toThrow(refusal("NOT_NEIGHBOUR", new RegExp(`share for ${stranger}, which is not a neighbour of 0`)));
    const twice: EncryptedShare[] = [shares[0]![0]!, shares[0]![0]!];
    expect(() => s.server.receiveShares(0, twice)).toThrow(refusal("NOT_NEIGHBOUR", /not a neighbour of 0 \(or a duplicate\)/));
    expect(() => s.server.receiveShares(0, shares[0]!.slice(0, 1))).toThrow(refusal("BAD_SHARE", /device 0 sent 1 shares for 2 neighbours/));
    expect(() => s.server.receiveShares(0, [shares[0]![0]!, { ...shares[0]![1]!, from: 3 }])).toThrow(refusal("BAD_SHARE", /share claims sender 3, caller is 0/));
    expect(() => s.server.receiveShares(0, [shares[0]![0]!, { ...shares[0]![1]!, to: 12 }])).toThrow(refusal("UNKNOWN_PEER", /share for unknown device 12/));
    expect(() => s.server.receiveShares(9, shares[0]!)).toThrow(refusal("UNKNOWN_PEER", /device 9 did not advertise keys this round/));
    s.server.receiveShares(0, shares[0]!);
    expect(() => s.server.receiveShares(0, shares[0]!)).toThrow(refusal("DUPLICATE", /device 0 already sent its shares/));
  });

  it("routes each share to its addressee only, and only from devices that completed ShareKeys", () => {
    const s = setup(5, 4, 3);
    const { inboxes, shares } = throughShareKeys(s, [4]);
    expect([...inboxes.keys()].sort()).toEqual([0, 1, 2, 3]);
    for (const [to, box] of inboxes) {
      expect(box.every((sh) => sh.to === to && sh.from !== 4)).toBe(true);
      expect(box.map((sh) => sh.from).sort()).toEqual([0, 1, 2, 3].filter((v) => v !== to));
      for (const sh of box) expect(shares[sh.from]!.some((x) => x.ciphertext === sh.ciphertext)).toBe(true);
    }
  });

  it("refuses masked input from a device that did not share, twice, or of the wrong shape", () => {
    const s = setup(5, 4, 3);
    const { inboxes } = throughShareKeys(s, [4]);
    const y0 = s.devices[0]!.maskInput(input(0), inboxes.get(0)!);
    expect(() => s.server.receiveMaskedInput(4, y0)).toThrow(code("UNKNOWN_PEER"));
    expect(() => s.server.receiveMaskedInput(0, { ...y0, bits: 64 })).toThrow(code("BAD_LENGTH"));
    expect(() => s.server.receiveMaskedInput(0, zeros(32, LEN + 1))).toThrow(code("BAD_LENGTH"));
    s.server.receiveMaskedInput(0, y0);
    expect(() => s.server.receiveMaskedInput(0, y0)).toThrow(code("DUPLICATE"));
  });

  it("refuses unmasking shares the request does not ask for, for non-neighbours, or of the wrong size; the dropout mask is removed exactly", () => {
    // n = 8, k = 4, t = 3: a sparse graph; device 7 drops after ShareKeys (its pairwise masks must be cancelled).
    const s = setup(8, 4, 3, 3);
    const { inboxes } = throughShareKeys(s);
    const alive = [0, 1, 2, 3, 4, 5, 6];
    for (const i of alive) s.server.receiveMaskedInput(i, s.devices[i]!.maskInput(input(i), inboxes.get(i)!));
    const shown = s.server.closeMaskedInput();
    expect(shown).toEqual({ survivors: alive, dropouts: [7] });
    for (const i of alive) s.server.receiveConsistency(s.devices[i]!.signSurvivors(shown.survivors));
    const req = s.server.closeConsistency();
    const graph = neighbourGraph(s.cfg, [0, 1, 2, 3, 4, 5, 6, 7]);
    const replies = alive.map((i) => s.devices[i]!.unmask(req));
    const r0 = replies[0]!;
    const nonNeighbour = alive.find((v) => v !== 0 && !graph.get(0)!.includes(v))!;
    const share32 = new Uint8Array(SHARE_BYTES);
    // Asking for what the request does not name: a survivor's s-share, a dropout's b-share.
    expect(() => s.server.receiveUnmask({ ...r0, secretKeyShares: [{ owner: 1, share: share32 }] })).toThrow(refusal("UNSAFE_UNMASK", /secret-key share for 1, which this request does not ask for/));
    expect(() => s.server.receiveUnmask({ ...r0, selfMaskShares: [{ owner: 7, share: share32 }] })).toThrow(refusal("UNSAFE_UNMASK", /self-mask share for 7, which this request does not ask for/));
    expect(() => s.server.receiveUnmask({ ...r0, selfMaskShares: [{ owner: nonNeighbour, share: share32 }] })).toThrow(refusal("NOT_NEIGHBOUR", new RegExp(`self-mask share for ${nonNeighbour}, not a neighbour of 0`)));
    const own = r0.selfMaskShares[0]!;
    expect(() => s.server.receiveUnmask({ ...r0, selfMaskShares: [{ owner: own.owner, share: own.share.subarray(0, 31) }] })).toThrow(refusal("BAD_SHARE", new RegExp(`self-mask share for ${own.owner} has 31 bytes`)));
    expect(() => s.server.receiveUnmask({ ...r0, from: 7 })).toThrow(refusal("UNKNOWN_PEER", /device 7 is not a survivor/));
    replies.forEach((r) => s.server.receiveUnmask(r));
    expect(() => s.server.receiveUnmask(r0)).toThrow(refusal("DUPLICATE", /device 0 already sent its unmasking shares/));
    const sum = s.server.finish();
    const want = alive.reduce((acc, i) => acc.map((x, j) => x + toSigned(input(i))[j]!), [0, 0, 0, 0]);
    expect(Array.from(toSigned(sum))).toEqual(want);
  });
});
