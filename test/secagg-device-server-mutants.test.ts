/**
 * The refusals and bookkeeping of SecAggDevice, SecAggServer and countValidSigners that the
 * mutation run of shared/secagg left unpinned (issue #16): each refusal with its error code and
 * its exact message, each stage a later call reports, the server's sorted lists, and the
 * reconstruction's corner cases (shares that are not field elements, too few shares, a dealer
 * whose consistent shares open nothing, wrong shares that fool the cheap window check, shares
 * beyond correction). The reconstruction cases replay one recorded honest round (10 devices,
 * t = 4) into fresh servers with the unmasking replies edited, so each case costs milliseconds.
 */
import { describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { generateEd25519, signBytes, type Ed25519KeyPair } from "../shared/crypto/index.ts";
import { fromSigned, toSigned, zeros, type ModularVector } from "../shared/modular/index.ts";
import {
  advertisePayload, bytesToField, consistencyPayload, countValidSigners, createShares, fieldInverse, fieldToBytes, FIELD_PRIME, lagrangeAtZero, neighbourGraph, SecAggDevice, SecAggServer,
  type AdvertisedKeys, type EncryptedShare, type RosterEntry, type SecAggConfig, type SurvivorSignature, type UnmaskRequest, type UnmaskShares,
} from "../shared/secagg/index.ts";
import { agree, generateX25519, x25519Public } from "../shared/secagg/x25519.ts";
import { pairTranscript } from "../shared/secagg/prg.ts";
import { sealShare } from "../shared/secagg/share-box.ts";

const LEN = 4;

function setup(n: number, degree: number, threshold: number, minSurvivors?: number) {
  const cfg: SecAggConfig = { runId: "mut-d", round: 3, attempt: 0, bits: 32, vectorLength: LEN, threshold, degree, roundSeed: randomBytes(32), ...(minSurvivors !== undefined ? { minSurvivors } : {}) };
  const ids: Ed25519KeyPair[] = Array.from({ length: n }, () => generateEd25519());
  const devices = ids.map((k, i) => new SecAggDevice(cfg, i, { privateKey: k.privateKey }));
  const server = new SecAggServer(cfg, devices.map((_, i) => i), new Map(ids.map((k, i) => [i, k.publicKey])));
  return { cfg, ids, devices, server };
}
type Setup = ReturnType<typeof setup>;

const input = (i: number): ModularVector => fromSigned(32, Array.from({ length: LEN }, (_, j) => (i + 1) * 10 + j));
const sumOf = (members: readonly number[]): number[] => members.reduce((acc, i) => acc.map((x, j) => x + Array.from(toSigned(input(i)))[j]!), new Array<number>(LEN).fill(0));
const entry = (s: Setup, k: AdvertisedKeys): RosterEntry => ({ ...k, identityPublicKey: s.ids[k.index]!.publicKey });
/** The advertisement re-signed by its member's identity (for keys edited on purpose). */
const resign = (s: Setup, k: AdvertisedKeys): AdvertisedKeys => ({ ...k, signature: signBytes(s.ids[k.index]!.privateKey, advertisePayload(s.cfg, k.index, k.cPk, k.sPk, k.selfMaskCommitment)) });

/** The refusal's code (what the participant and the coordinator act on) and its exact message. */
const refusal = (c: string, message: RegExp) => expect.objectContaining({ code: c, message: expect.stringMatching(message) });
const thrown = (f: () => unknown): unknown => {
  try {
    f();
  } catch (err) {
    return err;
  }
  throw new Error("expected a throw");
};

describe("SecAggDevice refuses a bad roster in ShareKeys", () => {
  it("a duplicate entry, a duplicate or short advertiser list, a missing or foreign own entry, a bad signature, a missing neighbour", () => {
    const s = setup(5, 4, 2);
    const adverts = s.devices.map((d) => d.advertiseKeys());
    const roster = adverts.map((k) => entry(s, k));
    const d0 = s.devices[0]!;
    const all = [0, 1, 2, 3, 4];
    // Out of order first: masking before ShareKeys.
    expect(() => d0.maskInput(input(0), [])).toThrow(refusal("STAGE", /^device 0: expected stage mask, in stage share$/));
    expect(() => d0.shareKeys([...roster, roster[1]!])).toThrow(refusal("DUPLICATE", /^roster lists device 1 twice$/));
    expect(() => d0.shareKeys(roster, [0, 1, 2, 3, 4, 0])).toThrow(refusal("DUPLICATE", /^the list of devices that advertised keys names one twice$/));
    expect(() => d0.shareKeys(roster, [0, 1, 2, 3])).toThrow(refusal("UNKNOWN_PEER", /^the roster carries keys of device 4, which is not listed as having advertised$/));
    const ownMissing = /^the roster does not carry this device's own advertised keys$/;
    expect(() => d0.shareKeys(roster.slice(1), all)).toThrow(refusal("UNKNOWN_PEER", ownMissing));
    // Its own entry carrying another device's s_pk, or another device's c_pk (each alone).
    expect(() => d0.shareKeys([{ ...roster[0]!, sPk: adverts[1]!.sPk }, ...roster.slice(1)], all)).toThrow(refusal("UNKNOWN_PEER", ownMissing));
    expect(() => d0.shareKeys([{ ...roster[0]!, cPk: adverts[1]!.cPk }, ...roster.slice(1)], all)).toThrow(refusal("UNKNOWN_PEER", ownMissing));
    expect(() => d0.shareKeys([roster[0]!, { ...roster[1]!, signature: adverts[2]!.signature }, ...roster.slice(2)], all)).toThrow(refusal("BAD_SIGNATURE", /^advertised keys of device 1 are not signed by its identity$/));
    expect(() => d0.shareKeys(roster.filter((r) => r.index !== 3), all)).toThrow(refusal("UNKNOWN_PEER", /^the roster lacks the advertised keys of neighbour 3$/));
    // Every refusal above left it able to take the honest roster, with the advertiser list.
    const shares = d0.shareKeys(roster, all);
    expect(shares.map((x) => [x.from, x.to])).toEqual([[0, 1], [0, 2], [0, 3], [0, 4]]);
  });

  it("fewer than t + 1 advertisers, or fewer than t neighbours", () => {
    // n = 3 = t: one short of t + 1 (the check before the neighbour count, which would also fail).
    const s = setup(3, 2, 3);
    const roster = s.devices.map((d) => entry(s, d.advertiseKeys()));
    expect(() => s.devices[0]!.shareKeys(roster)).toThrow(refusal("TOO_FEW_SURVIVORS", /^only 3 devices advertised keys; threshold is 3$/));
    // n = 4 = t + 1 passes.
    const u = setup(4, 3, 3);
    const uRoster = u.devices.map((d) => entry(u, d.advertiseKeys()));
    expect(u.devices[0]!.shareKeys(uRoster)).toHaveLength(3);
    // n = 8, k = 2 < t = 3: enough advertisers, too few neighbours.
    const v = setup(8, 2, 3);
    const vRoster = v.devices.map((d) => entry(v, d.advertiseKeys()));
    expect(() => v.devices[0]!.shareKeys(vRoster)).toThrow(refusal("TOO_FEW_SURVIVORS", /^device 0 has 2 neighbours, threshold 3$/));
  });

  it("a device's bits are checked when it is built", () => {
    const s = setup(2, 1, 1);
    expect(() => new SecAggDevice({ ...s.cfg, bits: 31 }, 0, { privateKey: s.ids[0]!.privateKey })).toThrow(/modulus bits must be an integer in \[32, 64\], got 31/);
  });
});

describe("SecAggDevice refuses bad input and bad shares in MaskedInput", () => {
  it("an input of the wrong bits or length, a share for another device, a duplicate share", () => {
    const s = setup(5, 4, 2);
    for (const d of s.devices) s.server.receiveKeys(d.advertiseKeys());
    const roster = s.server.closeAdvertise().map((k) => entry(s, k));
    s.devices.forEach((d, i) => s.server.receiveShares(i, d.shareKeys(roster)));
    const inboxes = s.server.closeShareKeys();
    const d0 = s.devices[0]!;
    const box = inboxes.get(0)!;
    expect(() => d0.maskInput({ bits: 33, length: LEN, data: new Uint32Array(LEN) }, box)).toThrow(refusal("BAD_LENGTH", /^input is 4 @ 33 bits; the round needs 4 @ 32$/));
    expect(() => d0.maskInput(zeros(32, LEN + 1), box)).toThrow(refusal("BAD_LENGTH", /^input is 5 @ 32 bits; the round needs 4 @ 32$/));
    const forOne = inboxes.get(1)!.find((x) => x.from === 2)!;
    expect(() => d0.maskInput(input(0), [forOne])).toThrow(refusal("UNKNOWN_PEER", /^share addressed to 1 delivered to 0$/));
    expect(() => d0.maskInput(input(0), [box[0]!, box[0]!])).toThrow(refusal("DUPLICATE", new RegExp(`^two shares from ${box[0]!.from}$`)));
  });

  it("a share from a device that is not a neighbour", () => {
    const s = setup(8, 2, 2, 2);
    for (const d of s.devices) s.server.receiveKeys(d.advertiseKeys());
    const roster = s.server.closeAdvertise().map((k) => entry(s, k));
    const shares = s.devices.map((d) => d.shareKeys(roster));
    const nbrs = neighbourGraph(s.cfg, [0, 1, 2, 3, 4, 5, 6, 7]).get(0)!;
    const stranger = [1, 2, 3, 4, 5, 6, 7].find((v) => !nbrs.includes(v))!;
    const forged: EncryptedShare = { from: stranger, to: 0, ciphertext: shares[stranger]![0]!.ciphertext };
    expect(() => s.devices[0]!.maskInput(input(0), [forged])).toThrow(refusal("NOT_NEIGHBOUR", new RegExp(`^share from ${stranger}, which is not a neighbour of 0$`)));
  });

  it("a share that authenticates but is not two field elements long", () => {
    // Device 1's round keys are made here, so a share can be sealed to device 0 with them.
    const s = setup(3, 2, 2);
    const a0 = s.devices[0]!.advertiseKeys();
    const c1 = generateX25519();
    const s1 = generateX25519();
    const a1 = resign(s, { index: 1, cPk: c1.publicRaw, sPk: s1.publicRaw, selfMaskCommitment: new Uint8Array(randomBytes(32)), signature: new Uint8Array(64) });
    const a2 = s.devices[2]!.advertiseKeys();
    s.devices[0]!.shareKeys([a0, a1, a2].map((k) => entry(s, k)));
    const plain = new Uint8Array(10);
    const sealed = sealShare(agree(c1.privateKey, x25519Public(a0.cPk)), s.cfg, 1, 0, plain, pairTranscript(1, c1.publicRaw, 0, a0.cPk));
    expect(() => s.devices[0]!.maskInput(input(0), [{ from: 1, to: 0, ciphertext: sealed }])).toThrow(refusal("BAD_SHARE", /^share from 1 has 10 bytes$/));
  });
});

describe("countValidSigners stops at enough", () => {
  it("returns enough, not more, once that many verified", () => {
    const keys = [generateEd25519(), generateEd25519(), generateEd25519()];
    const payload = Buffer.from("p");
    const sigs: SurvivorSignature[] = keys.map((k, i) => ({ index: i, signature: signBytes(k.privateKey, payload) }));
    const allowed = new Set([0, 1, 2]);
    const id = (i: number) => keys[i]?.publicKey;
    expect(countValidSigners(payload, sigs, allowed, id, 2)).toBe(2);
    expect(countValidSigners(payload, sigs, allowed, id, 3)).toBe(3);
    expect(countValidSigners(payload, sigs, allowed, id)).toBe(3);
  });
});

describe("SecAggServer refuses bad advertisements", () => {
  it("a threshold below 1 or not an integer (reconstruction would never end at t = 0)", () => {
    const s = setup(3, 2, 1);
    const keys = new Map(s.ids.map((k, i) => [i, k.publicKey] as const));
    for (const threshold of [0, -1, 1.5, Number.NaN]) {
      expect(() => new SecAggServer({ ...s.cfg, threshold }, [0, 1, 2], keys)).toThrow(new RangeError(`SecAgg threshold must be an integer ≥ 1, got ${threshold}`));
    }
    expect(new SecAggServer({ ...s.cfg, threshold: 1 }, [0, 1, 2], keys).cfg.threshold).toBe(1);
  });

  it("an identity key missing for a cohort member", () => {
    const s = setup(3, 2, 1);
    expect(() => new SecAggServer(s.cfg, [0, 1, 2], new Map([[0, s.ids[0]!.publicKey], [1, s.ids[1]!.publicKey]]))).toThrow(refusal("UNKNOWN_PEER", /^no identity key for cohort member 2$/));
  });

  it("an unknown device, a second advertisement, keys or commitment of the wrong size, equal keys, low-order keys, a copied key", () => {
    const s = setup(4, 3, 2);
    const a = s.devices.map((d) => d.advertiseKeys());
    const sv = s.server;
    expect(() => sv.receiveKeys({ ...a[0]!, index: 9 })).toThrow(refusal("UNKNOWN_PEER", /^device 9 is not in this round's cohort$/));
    sv.receiveKeys(a[0]!);
    expect(() => sv.receiveKeys(a[0]!)).toThrow(refusal("DUPLICATE", /^device 0 already advertised keys$/));
    const a1 = a[1]!;
    const lengths = /^advertised keys must be 32 bytes each$/;
    expect(() => sv.receiveKeys({ ...a1, cPk: a1.cPk.subarray(0, 31) })).toThrow(refusal("BAD_LENGTH", lengths));
    expect(() => sv.receiveKeys({ ...a1, sPk: a1.sPk.subarray(0, 31) })).toThrow(refusal("BAD_LENGTH", lengths));
    const commitment = /^the self-mask seed commitment must be 32 bytes$/;
    expect(() => sv.receiveKeys({ ...a1, selfMaskCommitment: undefined } as unknown as AdvertisedKeys)).toThrow(refusal("BAD_LENGTH", commitment));
    expect(() => sv.receiveKeys({ ...a1, selfMaskCommitment: a1.selfMaskCommitment.subarray(0, 31) })).toThrow(refusal("BAD_LENGTH", commitment));
    // Equal keys, signed by the member itself: refused for being equal, not for the signature.
    expect(() => sv.receiveKeys(resign(s, { ...a1, sPk: a1.cPk }))).toThrow(refusal("BAD_SHARE", /^c_pk and s_pk must differ$/));
    expect(() => sv.receiveKeys({ ...a1, cPk: new Uint8Array(32) })).toThrow(refusal("WEAK_KEY", /^c_pk of device 1 is a low-order or invalid X25519 key/));
    expect(() => sv.receiveKeys({ ...a1, sPk: new Uint8Array(32) })).toThrow(refusal("WEAK_KEY", /^s_pk of device 1 is a low-order or invalid X25519 key/));
    expect(() => sv.receiveKeys({ ...a1, signature: a[2]!.signature })).toThrow(refusal("BAD_SIGNATURE", /^advertised keys of device 1 are not signed by its enrolled identity$/));
    expect(() => sv.receiveKeys(resign(s, { ...a1, cPk: a[0]!.cPk }))).toThrow(refusal("DUPLICATE", /^device 1 advertised a key that device 0 already advertised$/));
    // Out of order: shares before the advertisement phase closed.
    expect(() => sv.receiveShares(0, [])).toThrow(refusal("STAGE", /^expected stage share, the round is in stage advertise$/));
    // None of the refusals left a trace: the honest advertisements all go in, returned by index.
    for (const i of [3, 1, 2]) sv.receiveKeys(a[i]!);
    expect(sv.closeAdvertise()).toEqual([a[0], a[1], a[2], a[3]]);
  });

  it("closeAdvertise returns the advertisements sorted by index, whatever the order they came in", () => {
    const s = setup(5, 4, 2);
    const a = s.devices.map((d) => d.advertiseKeys());
    for (const i of [3, 1, 4, 0, 2]) s.server.receiveKeys(a[i]!);
    expect(s.server.closeAdvertise().map((k) => k.index)).toEqual([0, 1, 2, 3, 4]);
  });

  it("the floor is the larger of t + 1 and minSurvivors, and an abort is a stage", () => {
    // t = 2, minSurvivors = 4: three advertisers meet t + 1 but not minSurvivors.
    const s = setup(5, 4, 2, 4);
    for (const d of s.devices.slice(0, 3)) s.server.receiveKeys(d.advertiseKeys());
    expect(() => s.server.closeAdvertise()).toThrow(refusal("TOO_FEW_SURVIVORS", /^only 3 devices advertised keys; at least 4 are needed$/));
    expect(() => s.server.closeAdvertise()).toThrow(refusal("STAGE", /^expected stage advertise, the round is in stage aborted$/));
    const u = setup(5, 4, 2, 4);
    for (const d of u.devices.slice(0, 4)) u.server.receiveKeys(d.advertiseKeys());
    expect(u.server.closeAdvertise()).toHaveLength(4);
  });
});

describe("SecAggServer's rosters, neighbourhoods and who can unmask", () => {
  const s = setup(8, 2, 2, 2);
  const adverts = s.devices.map((d) => d.advertiseKeys());
  for (const k of adverts) s.server.receiveKeys(k);
  s.server.closeAdvertise();
  const all = [0, 1, 2, 3, 4, 5, 6, 7];
  const g = neighbourGraph(s.cfg, all);

  it("rosterFor gives a device its own and its neighbours' advertisements, by index", () => {
    for (const i of all) {
      const want = [...g.get(i)!, i].sort((a, b) => a - b);
      expect(s.server.rosterFor(i).map((k) => k.index)).toEqual(want);
      expect(s.server.rosterFor(i)).toEqual(want.map((v) => adverts[v]));
    }
    expect(() => s.server.rosterFor(99)).toThrow(refusal("UNKNOWN_PEER", /^device 99 did not advertise keys this round$/));
  });

  it("neighbourhood is the device and its neighbours, by index; an unknown device's is itself", () => {
    for (const i of all) expect(s.server.neighbourhood(i)).toEqual([...g.get(i)!, i].sort((a, b) => a - b));
    expect(s.server.neighbourhood(99)).toEqual([99]);
  });

  it("ableToUnmask keeps, in order, the signers with at least t signers in their neighbourhood", () => {
    const a = g.get(0)![0]!;
    const far = all.find((v) => v !== 0 && v !== a && !g.get(v)!.includes(0) && !g.get(v)!.includes(a))!;
    // 0 and a: exactly t = 2 (each other and themselves); far: itself only.
    expect(s.server.ableToUnmask([far, a, 0])).toEqual([a, 0]);
    expect(s.server.ableToUnmask([far])).toEqual([]);
    expect(s.server.ableToUnmask(all)).toEqual(all);
  });
});

/** An honest round's messages, replayed into fresh servers (the server is deterministic in them). */
interface Recorded {
  s: Setup;
  adverts: AdvertisedKeys[];
  shares: EncryptedShare[][];
  masked: Map<number, ModularVector>;
  signatures: SurvivorSignature[];
  request: UnmaskRequest;
  replies: UnmaskShares[];
}

/** n = 10, full graph, t = 4; device 9 drops after ShareKeys. Each survivor's b has 8 holders (e = 2). */
function record(): Recorded {
  const s = setup(10, 9, 4, 4);
  const adverts = s.devices.map((d) => d.advertiseKeys());
  for (const k of adverts) s.server.receiveKeys(k);
  const roster = s.server.closeAdvertise().map((k) => entry(s, k));
  const shares = s.devices.map((d) => d.shareKeys(roster));
  shares.forEach((sh, i) => s.server.receiveShares(i, sh));
  const inboxes = s.server.closeShareKeys();
  const masked = new Map<number, ModularVector>();
  for (let i = 0; i < 9; i++) masked.set(i, s.devices[i]!.maskInput(input(i), inboxes.get(i)!));
  const shown = { survivors: [0, 1, 2, 3, 4, 5, 6, 7, 8], dropouts: [9] };
  const signatures = shown.survivors.map((i) => s.devices[i]!.signSurvivors(shown.survivors));
  const request: UnmaskRequest = { ...shown, signatures };
  const replies = shown.survivors.map((i) => s.devices[i]!.unmask(request));
  return { s, adverts, shares, masked, signatures, request, replies };
}

const REC = record();
const SURVIVORS = REC.request.survivors;

/** A fresh server fed the recorded round, with the unmasking replies as `edit` makes them. */
function replay(edit: (replies: UnmaskShares[]) => UnmaskShares[] = (r) => r): SecAggServer {
  const { s } = REC;
  const server = new SecAggServer(s.cfg, s.devices.map((_, i) => i), new Map(s.ids.map((k, i) => [i, k.publicRaw])));
  for (const k of REC.adverts) server.receiveKeys(k);
  server.closeAdvertise();
  REC.shares.forEach((sh, i) => server.receiveShares(i, sh));
  server.closeShareKeys();
  for (const [i, y] of REC.masked) server.receiveMaskedInput(i, y);
  expect(server.closeMaskedInput()).toEqual({ survivors: SURVIVORS, dropouts: [9] });
  for (const sig of REC.signatures) server.receiveConsistency(sig);
  server.closeConsistency();
  for (const r of edit(REC.replies.map((r) => ({ ...r, selfMaskShares: [...r.selfMaskShares], secretKeyShares: [...r.secretKeyShares] })))) server.receiveUnmask(r);
  return server;
}

/** Replaces holder `h`'s b-share of `owner` by `f(y)` (as a 66-byte field encoding unless bytes are given). */
function editB(replies: UnmaskShares[], h: number, owner: number, f: (y: bigint) => bigint | Uint8Array): void {
  const r = replies.find((x) => x.from === h)!;
  r.selfMaskShares = r.selfMaskShares.map((x) => {
    if (x.owner !== owner) return x;
    const v = f(bytesToField(x.share));
    return { owner, share: v instanceof Uint8Array ? v : fieldToBytes(v) };
  });
}
const onlyHolders = (replies: UnmaskShares[], owner: number, keep: readonly number[]): UnmaskShares[] =>
  replies.map((r) => (keep.includes(r.from) ? r : { ...r, selfMaskShares: r.selfMaskShares.filter((x) => x.owner !== owner) }));
/** The b-shares of `owner` replaced by shares of `secret` at the holders' x (a dealer that lied consistently). */
function dealt(replies: UnmaskShares[], owner: number, secret: bigint, holders: readonly number[]): void {
  const shares = createShares(secret, 4, holders.map((h) => h + 1));
  holders.forEach((h, i) => editB(replies, h, owner, () => shares[i]!.y));
}
const NOT_FIELD = new Uint8Array(66).fill(0xff);
const OWNER = 2;
const HOLDERS = SURVIVORS.filter((v) => v !== OWNER);
const abortedAfter = (server: SecAggServer) => expect(() => server.finish()).toThrow(refusal("STAGE", /^expected stage unmask, the round is in stage aborted$/));

describe("SecAggServer's reconstruction", () => {
  it("the honest replay sums exactly; the round then is done, and the device too", () => {
    const server = replay();
    expect(Array.from(toSigned(server.finish()))).toEqual(sumOf(SURVIVORS));
    expect(server.culprits.size).toBe(0);
    expect(() => server.finish()).toThrow(refusal("STAGE", /^expected stage unmask, the round is in stage done$/));
    expect(() => REC.s.devices[0]!.unmask(REC.request)).toThrow(refusal("STAGE", /^device 0: expected stage unmask, in stage done$/));
  });

  it("a holder with wrong shares of two owners is named once, for the first (owners in index order)", () => {
    const server = replay((r) => {
      editB(r, 1, 3, (y) => (y + 1n) % FIELD_PRIME);
      editB(r, 1, 2, (y) => (y + 1n) % FIELD_PRIME);
      return r;
    });
    expect(Array.from(toSigned(server.finish()))).toEqual(sumOf(SURVIVORS));
    expect([...server.culprits]).toEqual([[1, "revealed a wrong share of device 2's self-mask seed"]]);
  });

  it("a revealed share that is not a field element is dropped and its holder named, for a seed and for a mask key", () => {
    const server = replay((r) => {
      editB(r, 1, OWNER, () => NOT_FIELD);
      const r5 = r.find((x) => x.from === 5)!;
      r5.secretKeyShares = r5.secretKeyShares.map((x) => ({ ...x, share: NOT_FIELD }));
      return r;
    });
    expect(Array.from(toSigned(server.finish()))).toEqual(sumOf(SURVIVORS));
    expect(server.culprits.get(1)).toBe("revealed a share of device 2's self-mask seed that is not a field element");
    expect(server.culprits.get(5)).toBe("revealed a share of device 9's mask key that is not a field element");
    expect(server.culprits.size).toBe(2);
  });

  it("fewer than t shares of a seed abort the round", () => {
    const server = replay((r) => onlyHolders(r, OWNER, HOLDERS.slice(0, 3)));
    expect(() => server.finish()).toThrow(refusal("TOO_FEW_SURVIVORS", /^only 3 shares of device 2's self-mask seed; 4 needed$/));
    abortedAfter(server);
  });

  it("no share at all of a seed: zero shares, and nobody named", () => {
    const server = replay((r) => onlyHolders(r, OWNER, []));
    expect(() => server.finish()).toThrow(refusal("TOO_FEW_SURVIVORS", /^only 0 shares of device 2's self-mask seed; 4 needed$/));
    expect(server.culprits.size).toBe(0);
  });

  it("consistent shares of 2^256 (a field element, not a 32-byte seed): the dealer is named", () => {
    const server = replay((r) => {
      dealt(r, OWNER, 1n << 256n, HOLDERS);
      return r;
    });
    expect(() => server.finish()).toThrow(refusal("BAD_SHARE", /^device 2's reconstructed self-mask seed is invalid \(a revealed share is corrupt\)$/));
    expect([...server.culprits]).toEqual([[2, "dealt shares of its self-mask seed that do not match what it advertised"]]);
    abortedAfter(server);
  });

  it("a dealer's wrong shares with one holder's share also wrong: the holder is named, the dealer is not", () => {
    const server = replay((r) => {
      dealt(r, OWNER, bytesToField(randomBytes(32)), HOLDERS);
      editB(r, 1, OWNER, (y) => (y + 1n) % FIELD_PRIME);
      return r;
    });
    expect(() => server.finish()).toThrow(refusal("BAD_SHARE", /^device 2's reconstructed self-mask seed is invalid/));
    expect([...server.culprits]).toEqual([[1, "revealed a wrong share of device 2's self-mask seed"]]);
  });

  it("a dealer's wrong shares with exactly t holders: nothing can be told apart, nobody is named", () => {
    // No redundancy: locating errors is impossible, so this aborts as undecodable (line 305's
    // dealer naming is reached only with more than t shares).
    const holders = HOLDERS.slice(0, 4);
    const server = replay((r) => {
      const kept = onlyHolders(r, OWNER, holders);
      dealt(kept, OWNER, bytesToField(randomBytes(32)), holders);
      return kept;
    });
    expect(() => server.finish()).toThrow(refusal("BAD_SHARE", /^the shares of device 2's self-mask seed are inconsistent beyond correction \(the 4 shares disagree and cannot be corrected \(at most 0 wrong shares can be located\)\)$/));
    expect(server.culprits.size).toBe(0);
  });

  it("two wrong shares that make both windows agree on a wrong seed are still located and corrected", () => {
    // Holders of 2 by x = index + 1: [1, 2, 4, 5 | 6, 7, 8, 9]. One share in each window of t = 4
    // is moved so that the window's secret is the true one + 1: the windows agree, the seed does
    // not open the commitment, and Berlekamp–Welch (e = 2) finds the two.
    const server = replay((r) => {
      const xs = HOLDERS.map((h) => h + 1);
      const windows = [xs.slice(0, 4), xs.slice(4, 8)];
      for (const [w, at] of [[0, 0], [1, 1]] as const) {
        const lambda = lagrangeAtZero(windows[w]!)[at]!;
        const holder = windows[w]![at]! - 1;
        editB(r, holder, OWNER, (y) => (y + fieldInverse(lambda)) % FIELD_PRIME);
      }
      return r;
    });
    expect(Array.from(toSigned(server.finish()))).toEqual(sumOf(SURVIVORS));
    expect([...server.culprits]).toEqual([
      [0, "revealed a wrong share of device 2's self-mask seed"],
      [6, "revealed a wrong share of device 2's self-mask seed"],
    ]);
  });

  it("shares wrong beyond correction abort the round with the decoder's reason", () => {
    const server = replay((r) => {
      for (const h of [0, 4, 7]) editB(r, h, OWNER, (y) => (y + 12345n) % FIELD_PRIME);
      return r;
    });
    const err = thrown(() => server.finish());
    expect(err).toEqual(refusal("BAD_SHARE", /^the shares of device 2's self-mask seed are inconsistent beyond correction \(the 8 shares disagree and cannot be corrected \(at most 2 wrong shares can be located\)\)$/));
    abortedAfter(server);
  });
});

describe("SecAggServer refuses at the later phases", () => {
  /** n = 4, t = 2: every close needs 3. */
  function through(stage: "share" | "masked" | "consistency" | "unmask", count: number) {
    const s = setup(4, 3, 2);
    for (const d of s.devices) s.server.receiveKeys(d.advertiseKeys());
    const roster = s.server.closeAdvertise().map((k) => entry(s, k));
    const shares = s.devices.map((d) => d.shareKeys(roster));
    const sharing = stage === "share" ? count : 4;
    for (let i = 0; i < sharing; i++) s.server.receiveShares(i, shares[i]!);
    if (stage === "share") return s;
    const inboxes = s.server.closeShareKeys();
    const masking = stage === "masked" ? count : 4;
    for (let i = 0; i < masking; i++) s.server.receiveMaskedInput(i, s.devices[i]!.maskInput(input(i), inboxes.get(i)!));
    if (stage === "masked") return s;
    const shown = s.server.closeMaskedInput();
    const signing = stage === "consistency" ? count : 3;
    for (let i = 0; i < signing; i++) s.server.receiveConsistency(s.devices[i]!.signSurvivors(shown.survivors));
    if (stage === "consistency") return s;
    const req = s.server.closeConsistency();
    for (let i = 0; i < count; i++) s.server.receiveUnmask(s.devices[i]!.unmask(req));
    return s;
  }

  it("each close names what too few devices did", () => {
    expect(() => through("share", 2).server.closeShareKeys()).toThrow(refusal("TOO_FEW_SURVIVORS", /^only 2 devices shared their keys; at least 3 are needed$/));
    expect(() => through("masked", 2).server.closeMaskedInput()).toThrow(refusal("TOO_FEW_SURVIVORS", /^only 2 devices sent masked inputs; at least 3 are needed$/));
    expect(() => through("consistency", 2).server.closeConsistency()).toThrow(refusal("TOO_FEW_SURVIVORS", /^only 2 devices signed the survivor set; at least 3 are needed$/));
    expect(() => through("unmask", 2).server.finish()).toThrow(refusal("TOO_FEW_SURVIVORS", /^only 2 devices sent unmasking shares; at least 3 are needed$/));
  });

  it("masked input from a device that did not share, twice, or of the wrong shape", () => {
    const s = setup(4, 3, 2);
    for (const d of s.devices) s.server.receiveKeys(d.advertiseKeys());
    const roster = s.server.closeAdvertise().map((k) => entry(s, k));
    const shares = s.devices.map((d) => d.shareKeys(roster));
    for (let i = 0; i < 3; i++) s.server.receiveShares(i, shares[i]!);
    const inboxes = s.server.closeShareKeys();
    const y0 = s.devices[0]!.maskInput(input(0), inboxes.get(0)!);
    expect(() => s.server.receiveMaskedInput(3, y0)).toThrow(refusal("UNKNOWN_PEER", /^device 3 did not complete ShareKeys$/));
    expect(() => s.server.receiveMaskedInput(0, { ...y0, bits: 64 })).toThrow(refusal("BAD_LENGTH", /^masked input is 4 @ 64 bits; the round needs 4 @ 32$/));
    s.server.receiveMaskedInput(0, y0);
    expect(() => s.server.receiveMaskedInput(0, y0)).toThrow(refusal("DUPLICATE", /^device 0 already sent its masked input$/));
  });

  it("closeMaskedInput lists survivors and dropouts by index, whatever the order they came in", () => {
    const s = setup(6, 5, 2);
    for (const d of s.devices) s.server.receiveKeys(d.advertiseKeys());
    const roster = s.server.closeAdvertise().map((k) => entry(s, k));
    const shares = s.devices.map((d) => d.shareKeys(roster));
    for (const i of [5, 4, 3, 2, 1, 0]) s.server.receiveShares(i, shares[i]!);
    const inboxes = s.server.closeShareKeys();
    for (const i of [3, 1, 2]) s.server.receiveMaskedInput(i, s.devices[i]!.maskInput(input(i), inboxes.get(i)!));
    expect(s.server.closeMaskedInput()).toEqual({ survivors: [1, 2, 3], dropouts: [0, 4, 5] });
  });

  it("a survivor-set signature from a dropout, a second one, or one that does not verify", () => {
    const s = through("masked", 3);
    const shown = s.server.closeMaskedInput();
    expect(shown).toEqual({ survivors: [0, 1, 2], dropouts: [3] });
    // Device 3 (dropped) signs the right set with its real identity: still not a survivor.
    const fromDropout = { index: 3, signature: signBytes(s.ids[3]!.privateKey, consistencyPayload(s.cfg, shown.survivors)) };
    expect(() => s.server.receiveConsistency(fromDropout)).toThrow(refusal("UNKNOWN_PEER", /^device 3 is not a survivor$/));
    const sig0 = s.devices[0]!.signSurvivors(shown.survivors);
    s.server.receiveConsistency(sig0);
    expect(() => s.server.receiveConsistency(sig0)).toThrow(refusal("DUPLICATE", /^device 0 already signed the survivor set$/));
    expect(() => s.server.receiveConsistency({ index: 1, signature: sig0.signature })).toThrow(refusal("BAD_SIGNATURE", /^device 1's signature over the survivor set does not verify$/));
  });
});
