/**
 * The audit's attack (findings 2026-11-30 §A2) replayed against the project's own SecAggDevice:
 * a malicious coordinator shows different survivor sets to different devices ("u survived" to
 * group A, "u dropped" to group B) and colluding devices sign both sets and hand over every
 * share they hold of the target u. With b_u and s_u it strips u's masks from u's masked input.
 *
 * Control: at the audit's parameters (n = 8, k = 7, t = 4) and 2t − k = 1 colluder, the attack
 * still recovers x_u through the consistency round, and devices refuse those parameters at their
 * floors. At the floors (chooseParams / checkSecAggFloors), every split of the honest devices
 * recovers nothing, at n = 8 (full graph) and at a SecAgg+ size (n = 50, the default spec).
 */
import { describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { generateEd25519, type Ed25519KeyPair } from "../shared/crypto/index.ts";
import { addWordsInPlace, fromSigned, limbsFor, type ModularVector } from "../shared/modular/index.ts";
import { advertisePayload, bytesToField, chooseParams, checkSecAggFloors, consistencyPayload, fieldToBytes, FIELD_PRIME, lagrangeAtZero, neighbourGraph, SecAggDevice, SecAggError, SecAggServer, type SecAggConfig, type SurvivorSignature } from "../shared/secagg/index.ts";
import { expandMask, pairMaskKey, pairTranscript, selfMaskKey } from "../shared/secagg/prg.ts";
import { agree, x25519Private, x25519Public } from "../shared/secagg/x25519.ts";
import { signBytes } from "../shared/crypto/ed25519.ts";

const LEN = 16;
const RATES = { dropoutFraction: 0.2, corruptFraction: 0.1 };

interface Setup {
  cfg: SecAggConfig;
  ids: Ed25519KeyPair[];
  devices: SecAggDevice[];
  server: SecAggServer;
  inputs: ModularVector[];
  masked: ModularVector[];
  roster: { index: number; cPk: Uint8Array; sPk: Uint8Array }[];
}

/** Runs an honest round up to and including MaskedInput; the coordinator keeps every y_u. */
function throughMaskedInput(n: number, threshold: number, degree: number, minSurvivors: number): Setup {
  const cfg: SecAggConfig = { runId: "attack", round: 1, attempt: 0, bits: 32, vectorLength: LEN, threshold, degree, roundSeed: randomBytes(32), minSurvivors };
  const ids = Array.from({ length: n }, () => generateEd25519());
  const devices = ids.map((k, i) => new SecAggDevice(cfg, i, { privateKey: k.privateKey }));
  const server = new SecAggServer(cfg, devices.map((_, i) => i), new Map(ids.map((k, i) => [i, k.publicKey])));
  for (const d of devices) server.receiveKeys(d.advertiseKeys());
  const roster = server.closeAdvertise();
  const full = roster.map((k) => ({ ...k, identityPublicKey: ids[k.index]!.publicKey }));
  devices.forEach((d, i) => server.receiveShares(i, d.shareKeys(full)));
  const inboxes = server.closeShareKeys();
  const inputs = devices.map((_, i) => fromSigned(32, Array.from({ length: LEN }, (_, j) => ((i * 7919 + j * 104729) % 2001) - 1000)));
  const masked = devices.map((d, i) => d.maskInput(inputs[i]!, inboxes.get(i) ?? []));
  return { cfg, ids, devices, server, inputs, masked, roster };
}

/** What a colluding device hands the coordinator: the b- and s-shares it holds of `owner`. */
function heldShares(d: SecAggDevice, owner: number): { b: Uint8Array; s: Uint8Array } | undefined {
  return (d as unknown as { held: Map<number, { b: Uint8Array; s: Uint8Array }> }).held.get(owner);
}

function combine(shares: Map<number, Uint8Array>, t: number): Uint8Array {
  const holders = [...shares.keys()].sort((a, b) => a - b).slice(0, t);
  const lambda = lagrangeAtZero(holders.map((h) => h + 1));
  let acc = 0n;
  holders.forEach((h, i) => (acc = (acc + lambda[i]! * bytesToField(shares.get(h)!)) % FIELD_PRIME));
  return fieldToBytes(acc % (1n << 256n), 32);
}

/**
 * The attack. `groupA` is shown S1 (u survived), every other honest survivor is shown S2 (u
 * dropped); colluders sign both and contribute their held shares. Returns what the coordinator
 * obtained and its best reconstruction of x_u (undefined when it lacks t shares of either kind).
 */
function attack(s: Setup, u: number, colluders: number[], groupA: Set<number>): { bShares: number; sShares: number; recovered?: number[] } {
  const { cfg, devices, ids } = s;
  const all = devices.map((_, i) => i);
  const S1 = all;
  const S2 = all.filter((v) => v !== u);
  const sign = (i: number, set: number[]): SurvivorSignature => ({ index: i, signature: signBytes(ids[i]!.privateKey, consistencyPayload(cfg, set)) });
  const sigs1: SurvivorSignature[] = colluders.map((c) => sign(c, S1));
  const sigs2: SurvivorSignature[] = colluders.map((c) => sign(c, S2));
  const honest = all.filter((v) => !colluders.includes(v));
  for (const v of honest) {
    if (groupA.has(v) || v === u) sigs1.push(devices[v]!.signSurvivors(S1));
    else sigs2.push(devices[v]!.signSurvivors(S2));
  }
  const b = new Map<number, Uint8Array>();
  const sk = new Map<number, Uint8Array>();
  for (const c of colluders) {
    const h = heldShares(devices[c]!, u);
    if (h) {
      b.set(c, h.b);
      sk.set(c, h.s);
    }
  }
  for (const v of honest) {
    if (v === u) continue;
    const inA = groupA.has(v);
    try {
      const r = devices[v]!.unmask(inA ? { survivors: S1, dropouts: [], signatures: sigs1 } : { survivors: S2, dropouts: [u], signatures: sigs2 });
      for (const x of r.selfMaskShares) if (x.owner === u) b.set(v, x.share);
      for (const x of r.secretKeyShares) if (x.owner === u) sk.set(v, x.share);
    } catch (err) {
      if (!(err instanceof SecAggError) || err.code !== "UNSAFE_UNMASK") throw err;
    }
  }
  const t = cfg.threshold;
  if (b.size < t || sk.size < t) return { bShares: b.size, sShares: sk.size };
  // Strip u's self mask and every pairwise mask u added.
  const words = LEN * limbsFor(32);
  const y = new Uint32Array(s.masked[u]!.data);
  addWordsInPlace(32, y, expandMask(selfMaskKey(combine(b, t), cfg, u), words), -1);
  const key = x25519Private(combine(sk, t), s.roster[u]!.sPk);
  const nbrs = neighbourGraph(cfg, all).get(u) ?? [];
  for (const v of nbrs) {
    const agreed = agree(key, x25519Public(s.roster[v]!.sPk));
    addWordsInPlace(32, y, expandMask(pairMaskKey(agreed, cfg, u, v, pairTranscript(u, s.roster[u]!.sPk, v, s.roster[v]!.sPk)), words), u < v ? -1 : 1);
  }
  return { bShares: b.size, sShares: sk.size, recovered: Array.from(new Int32Array(y.buffer)) };
}

const trueInput = (s: Setup, u: number): number[] => Array.from(new Int32Array(s.inputs[u]!.data.buffer));

describe("a malicious coordinator with colluding devices (audit finding 1)", () => {
  it("control: at the audit's n=8, k=7, t=4 one colluder still recovers x_u, and devices refuse those parameters", () => {
    const s = throughMaskedInput(8, 4, 7, 6);
    const r = attack(s, 0, [7], new Set([1, 2, 3]));
    expect(r.recovered).toEqual(trueInput(s, 0));
    expect(checkSecAggFloors({ cohortSize: 8, threshold: 4, degree: 7 }, RATES)).toMatch(/threshold 4 is below the minimum 5/);
  });

  it("at the floors (n=8, full graph) no split of the honest devices recovers anything", () => {
    const p = chooseParams({ cohortSize: 8, ...RATES, minSurvivors: 6 });
    expect(p).toMatchObject({ mode: "full", degree: 7, threshold: 5 });
    expect(checkSecAggFloors({ cohortSize: 8, threshold: p.threshold, degree: p.degree }, RATES)).toBeUndefined();
    const colluders = [7]; // 2t − k for the audit's t = 4
    for (let a = 0; a <= 6; a++) {
      const s = throughMaskedInput(8, p.threshold, p.degree, 6);
      const groupA = new Set([1, 2, 3, 4, 5, 6].slice(0, a));
      const r = attack(s, 0, colluders, groupA);
      expect(r.recovered).toBeUndefined();
      expect(Math.min(r.bShares, r.sShares)).toBeLessThan(p.threshold);
    }
  });

  it("at a SecAgg+ size (the default spec: n=50) the balanced split with every tolerated colluder next to u recovers nothing", () => {
    const n = 50;
    const p = chooseParams({ cohortSize: n, ...RATES, minSurvivors: 25 });
    expect(p.mode).toBe("secagg+");
    const s = throughMaskedInput(n, p.threshold, p.degree, 25);
    const u = 0;
    const nbrs = neighbourGraph(s.cfg, s.devices.map((_, i) => i)).get(u)!;
    // The audit needed 2t − k = 2 colluders at its parameters; give the coordinator all ⌈γn⌉.
    const colluders = nbrs.slice(0, p.colluders);
    expect(colluders.length).toBe(5);
    const honestNbrs = nbrs.slice(p.colluders);
    const groupA = new Set(honestNbrs.slice(0, Math.ceil(honestNbrs.length / 2)));
    // Honest devices far from u are split alternately, to help both groups reach their quorums.
    s.devices.forEach((_, v) => {
      if (v !== u && !nbrs.includes(v) && v % 2 === 0) groupA.add(v);
    });
    const r = attack(s, u, colluders, groupA);
    expect(r.recovered).toBeUndefined();
    expect(Math.min(r.bShares, r.sShares)).toBeLessThan(p.threshold);
  });
});

describe("the consistency round's guards", () => {
  const ready = () => {
    const s = throughMaskedInput(6, 4, 5, 4);
    const set = [0, 1, 2, 3, 4, 5];
    const sigs = s.devices.map((d) => d.signSurvivors(set));
    return { ...s, set, sigs };
  };

  it("reveals nothing for a survivor set other than the one the device signed", () => {
    const { devices, set, sigs } = ready();
    expect(() => devices[0]!.unmask({ survivors: set.slice(0, 5), dropouts: [5], signatures: sigs })).toThrow(/other than the one this device signed/);
    expect(devices[0]!.unmask({ survivors: set, dropouts: [], signatures: sigs }).selfMaskShares).toHaveLength(5);
  });

  it("reveals nothing with fewer than t valid signatures (missing, duplicated, forged or over another set)", () => {
    const { cfg, ids, devices, set, sigs } = ready();
    const req = (signatures: SurvivorSignature[]) => ({ survivors: set, dropouts: [], signatures });
    expect(() => devices[0]!.unmask(req(sigs.slice(0, 3)))).toThrow(/only 3 valid signatures/);
    expect(() => devices[0]!.unmask(req([...sigs.slice(0, 3), sigs[2]!, sigs[2]!]))).toThrow(/only 3 valid signatures/);
    const forged = { index: 4, signature: signBytes(ids[5]!.privateKey, consistencyPayload(cfg, set)) };
    expect(() => devices[0]!.unmask(req([...sigs.slice(0, 3), forged]))).toThrow(/only 3 valid signatures/);
    const otherSet = { index: 4, signature: signBytes(ids[4]!.privateKey, consistencyPayload(cfg, [0, 1, 2, 3, 4])) };
    expect(() => devices[0]!.unmask(req([...sigs.slice(0, 3), otherSet]))).toThrow(/only 3 valid signatures/);
    const otherAttempt = { index: 4, signature: signBytes(ids[4]!.privateKey, consistencyPayload({ ...cfg, attempt: 1 }, set)) };
    expect(() => devices[0]!.unmask(req([...sigs.slice(0, 3), otherAttempt]))).toThrow(/only 3 valid signatures/);
    expect(devices[0]!.unmask(req(sigs.slice(0, 4))).selfMaskShares).toHaveLength(5);
  });

  it("signs only once, and only a set that contains it and is large enough", () => {
    const s = throughMaskedInput(6, 4, 5, 4);
    expect(() => s.devices[0]!.signSurvivors([1, 2, 3, 4, 5])).toThrow(/not listed among the survivors/);
    expect(() => s.devices[0]!.signSurvivors([0, 1, 2])).toThrow(/only 3 survivors/);
    s.devices[0]!.signSurvivors([0, 1, 2, 3, 4, 5]);
    expect(() => s.devices[0]!.signSurvivors([0, 1, 2, 3, 4])).toThrow(expect.objectContaining({ code: "STAGE" }));
  });

  it("the coordinator refuses a bad consistency signature and unmasking from a device that did not sign", () => {
    const s = throughMaskedInput(6, 4, 5, 4);
    s.devices.forEach((_, i) => s.server.receiveMaskedInput(i, s.masked[i]!));
    const shown = s.server.closeMaskedInput();
    const sig0 = s.devices[0]!.signSurvivors(shown.survivors);
    expect(() => s.server.receiveConsistency({ index: 1, signature: sig0.signature })).toThrow(expect.objectContaining({ code: "BAD_SIGNATURE" }));
    s.server.receiveConsistency(sig0);
    for (const i of [1, 2, 3, 4]) s.server.receiveConsistency(s.devices[i]!.signSurvivors(shown.survivors));
    const req = s.server.closeConsistency();
    const late = s.devices[5]!;
    late.signSurvivors(shown.survivors);
    expect(() => s.server.receiveUnmask(late.unmask({ ...req, signatures: [...req.signatures!] }))).toThrow(/did not sign the survivor set/);
  });
});

describe("keys and reconstructed secrets (audit finding 9)", () => {
  it("refuses low-order X25519 keys at AdvertiseKeys", () => {
    const cfg: SecAggConfig = { runId: "weak", round: 0, bits: 32, vectorLength: 4, threshold: 2, degree: 2, roundSeed: randomBytes(32) };
    const id = generateEd25519();
    const server = new SecAggServer(cfg, [0], new Map([[0, id.publicKey]]));
    const zero = new Uint8Array(32);
    const one = new Uint8Array(32);
    one[0] = 1;
    // A point of order 8 (from the curve's small subgroup).
    const order8 = Uint8Array.from(Buffer.from("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", "hex"));
    const good = new SecAggDevice(cfg, 0, { privateKey: id.privateKey }).advertiseKeys();
    for (const weak of [zero, one, order8]) {
      const forged = { index: 0, cPk: weak, sPk: good.sPk, selfMaskCommitment: good.selfMaskCommitment, signature: signBytes(id.privateKey, advertisePayload(cfg, 0, weak, good.sPk, good.selfMaskCommitment)) };
      expect(() => server.receiveKeys(forged)).toThrow(expect.objectContaining({ code: "WEAK_KEY" }));
    }
    server.receiveKeys(good);
  });

  it("binds attempt, round seed and the pair's public keys into every derived key (HKDF info)", () => {
    const secret = randomBytes(32);
    const d = { runId: "r", round: 1, attempt: 0, roundSeed: Buffer.alloc(32, 1) };
    const pk = (b: number) => Buffer.alloc(32, b);
    const key = (dom: typeof d, t = pairTranscript(0, pk(1), 1, pk(2))) => Buffer.from(pairMaskKey(secret, dom, 0, 1, t)).toString("hex");
    const base = key(d);
    expect(key({ ...d, attempt: 1 })).not.toBe(base);
    expect(key({ ...d, roundSeed: Buffer.alloc(32, 2) })).not.toBe(base);
    expect(key(d, pairTranscript(0, pk(1), 1, pk(3)))).not.toBe(base);
    // Both ends of a pair derive the same transcript, whichever index they hold.
    expect(pairTranscript(1, pk(2), 0, pk(1))).toBe(pairTranscript(0, pk(1), 1, pk(2)));
    expect(Buffer.from(selfMaskKey(secret, { ...d, attempt: 1 }, 0)).equals(Buffer.from(selfMaskKey(secret, d, 0)))).toBe(false);
  });

  const toUnmask = (n: number, t: number, dropped: number[]) => {
    const s = throughMaskedInput(n, t, n - 1, t);
    const alive = s.devices.map((_, i) => i).filter((i) => !dropped.includes(i));
    for (const i of alive) s.server.receiveMaskedInput(i, s.masked[i]!);
    const shown = s.server.closeMaskedInput();
    for (const i of alive) s.server.receiveConsistency(s.devices[i]!.signSurvivors(shown.survivors));
    const req = s.server.closeConsistency();
    return { ...s, alive, reveals: alive.map((i) => s.devices[i]!.unmask(req)) };
  };
  const flip = (b: Uint8Array): Uint8Array => Uint8Array.from(b, (x, j) => (j === 40 ? x ^ 1 : x));

  it("detects a corrupt revealed self-mask share when more than t shares arrive, corrects it and names its sender", () => {
    const s = toUnmask(6, 3, []);
    s.reveals[1] = { ...s.reveals[1]!, selfMaskShares: s.reveals[1]!.selfMaskShares.map((x) => (x.owner === 0 ? { ...x, share: flip(x.share) } : x)) };
    for (const r of s.reveals) s.server.receiveUnmask(r);
    s.server.finish();
    expect([...s.server.culprits.keys()]).toEqual([1]);
    expect(s.server.culprits.get(1)).toMatch(/wrong share of device 0's self-mask seed/);
  });

  it("checks a reconstructed mask key against the advertised s_pk", () => {
    // Device 5 drops after ShareKeys: exactly t = 3 … 5 s-shares; corrupt one of the first t.
    const s = toUnmask(6, 3, [5]);
    s.reveals[0] = { ...s.reveals[0]!, secretKeyShares: s.reveals[0]!.secretKeyShares.map((x) => ({ ...x, share: flip(x.share) })) };
    for (const r of s.reveals) s.server.receiveUnmask(r);
    // Five shares at t = 3 correct one wrong share: the key that results matches s_pk.
    s.server.finish();
    expect([...s.server.culprits.keys()]).toEqual([0]);
  });

  it("with no redundancy left to correct it, a corrupt mask-key share aborts the round (never a wrongly unmasked sum)", () => {
    // Devices 4 and 5 drop after ShareKeys: 4 survivors hold 5's s-shares, t = 3, so one wrong
    // share cannot be corrected (⌊(4 − 3)/2⌋ = 0).
    const s = toUnmask(6, 3, [4, 5]);
    s.reveals[0] = { ...s.reveals[0]!, secretKeyShares: s.reveals[0]!.secretKeyShares.map((x) => ({ ...x, share: flip(x.share) })) };
    for (const r of s.reveals) s.server.receiveUnmask(r);
    expect(() => s.server.finish()).toThrow(expect.objectContaining({ code: "BAD_SHARE" }));
  });
});
