/**
 * The coordinator's side of SecAgg / SecAgg+: routes encrypted shares, keeps the running sum of
 * masked inputs (never an individual unmasked input), and at the end reconstructs the survivors'
 * self-mask seeds and the dropouts' mask keys from revealed shares to strip every mask from the
 * sum. Holds only public keys, ciphertexts it cannot read, masked vectors and revealed shares.
 */
import type { KeyObject } from "node:crypto";
import { addInPlace, limbsFor, zeros, type ModularVector } from "../modular/index.ts";
import { publicKeyFromRaw, verifyBytes } from "../crypto/ed25519.ts";
import { SecAggError } from "./errors.ts";
import { bytesToField, fieldToBytes, lagrangeAtZero, FIELD_PRIME, SHARE_BYTES } from "./shamir.ts";
import { agree, assertUsablePublicKey, x25519Private, x25519PublicOf, x25519Public } from "./x25519.ts";
import { pairMaskKey, pairTranscript, selfMaskKey } from "./prg.ts";
import { addMaskInPlace } from "./mask-prg.ts";
import { consistencyPayload, type SurvivorSignature } from "./consistency.ts";
import { neighbourGraph } from "./graph.ts";
import { advertisePayload, type AdvertisedKeys, type EncryptedShare, type SecAggConfig, type UnmaskRequest, type UnmaskShares } from "./messages.ts";

type Stage = "advertise" | "share" | "masked-input" | "consistency" | "unmask" | "done" | "aborted";

export class SecAggServer {
  private stage: Stage = "advertise";
  private readonly identity = new Map<number, KeyObject>();
  private readonly keys = new Map<number, AdvertisedKeys>();
  private graph = new Map<number, number[]>();
  private readonly outbox = new Map<number, EncryptedShare[]>();
  private readonly shared = new Set<number>();
  private readonly masked = new Set<number>();
  private sum: ModularVector;
  private request: UnmaskRequest | undefined;
  private readonly bShares = new Map<number, Map<number, Uint8Array>>();
  private readonly sShares = new Map<number, Map<number, Uint8Array>>();
  private readonly unmasked = new Set<number>();
  /** ConsistencyCheck signatures over the survivor set, by signer. */
  private readonly signatures = new Map<number, Uint8Array>();

  constructor(
    readonly cfg: SecAggConfig,
    cohort: number[],
    identityKeys: Map<number, KeyObject | Uint8Array>,
  ) {
    limbsFor(cfg.bits);
    for (const i of cohort) {
      const k = identityKeys.get(i);
      if (!k) throw new SecAggError("UNKNOWN_PEER", `no identity key for cohort member ${i}`);
      this.identity.set(i, k instanceof Uint8Array ? publicKeyFromRaw(k) : k);
    }
    this.sum = zeros(cfg.bits, cfg.vectorLength);
  }

  private expect(stage: Stage): void {
    if (this.stage !== stage) throw new SecAggError("STAGE", `expected stage ${stage}, the round is in stage ${this.stage}`);
  }

  private need(count: number, what: string): void {
    const floor = Math.max(this.cfg.threshold + 1, this.cfg.minSurvivors ?? 0);
    if (count < floor) {
      this.stage = "aborted";
      throw new SecAggError("TOO_FEW_SURVIVORS", `only ${count} devices ${what}; at least ${floor} are needed`);
    }
  }

  receiveKeys(k: AdvertisedKeys): void {
    this.expect("advertise");
    const id = this.identity.get(k.index);
    if (!id) throw new SecAggError("UNKNOWN_PEER", `device ${k.index} is not in this round's cohort`);
    if (this.keys.has(k.index)) throw new SecAggError("DUPLICATE", `device ${k.index} already advertised keys`);
    if (k.cPk.length !== 32 || k.sPk.length !== 32) throw new SecAggError("BAD_LENGTH", "advertised keys must be 32 bytes each");
    if (Buffer.compare(Buffer.from(k.cPk), Buffer.from(k.sPk)) === 0) throw new SecAggError("BAD_SHARE", "c_pk and s_pk must differ");
    // A low-order key would make every neighbour's key agreement fail: one device could abort
    // the round for everyone. Refuse it here, before it reaches the roster.
    assertUsablePublicKey(k.cPk, `c_pk of device ${k.index}`);
    assertUsablePublicKey(k.sPk, `s_pk of device ${k.index}`);
    if (!verifyBytes(id, advertisePayload(this.cfg, k.index, k.cPk, k.sPk), k.signature)) {
      throw new SecAggError("BAD_SIGNATURE", `advertised keys of device ${k.index} are not signed by its enrolled identity`);
    }
    this.keys.set(k.index, k);
  }

  closeAdvertise(): AdvertisedKeys[] {
    this.expect("advertise");
    this.need(this.keys.size, "advertised keys");
    this.graph = neighbourGraph(this.cfg, [...this.keys.keys()]);
    this.stage = "share";
    return [...this.keys.values()].sort((a, b) => a.index - b.index);
  }

  receiveShares(from: number, shares: EncryptedShare[]): void {
    this.expect("share");
    const nbrs = this.graph.get(from);
    if (!nbrs) throw new SecAggError("UNKNOWN_PEER", `device ${from} did not advertise keys this round`);
    if (this.shared.has(from)) throw new SecAggError("DUPLICATE", `device ${from} already sent its shares`);
    const expected = new Set(nbrs);
    if (shares.length !== expected.size) throw new SecAggError("BAD_SHARE", `device ${from} sent ${shares.length} shares for ${expected.size} neighbours`);
    for (const s of shares) {
      if (s.from !== from) throw new SecAggError("BAD_SHARE", `share claims sender ${s.from}, caller is ${from}`);
      if (!this.keys.has(s.to)) throw new SecAggError("UNKNOWN_PEER", `share for unknown device ${s.to}`);
      if (!expected.delete(s.to)) throw new SecAggError("NOT_NEIGHBOUR", `share for ${s.to}, which is not a neighbour of ${from} (or a duplicate)`);
    }
    for (const s of shares) {
      const box = this.outbox.get(s.to) ?? [];
      box.push(s);
      this.outbox.set(s.to, box);
    }
    this.shared.add(from);
  }

  /** Per-recipient inboxes, holding only shares from devices that completed this phase. */
  closeShareKeys(): Map<number, EncryptedShare[]> {
    this.expect("share");
    this.need(this.shared.size, "shared their keys");
    this.stage = "masked-input";
    const inboxes = new Map<number, EncryptedShare[]>();
    for (const u of this.shared) inboxes.set(u, (this.outbox.get(u) ?? []).filter((s) => this.shared.has(s.from)));
    return inboxes;
  }

  receiveMaskedInput(from: number, y: ModularVector): void {
    this.expect("masked-input");
    if (!this.shared.has(from)) throw new SecAggError("UNKNOWN_PEER", `device ${from} did not complete ShareKeys`);
    if (this.masked.has(from)) throw new SecAggError("DUPLICATE", `device ${from} already sent its masked input`);
    if (y.bits !== this.cfg.bits || y.length !== this.cfg.vectorLength) {
      throw new SecAggError("BAD_LENGTH", `masked input is ${y.length} @ ${y.bits} bits; the round needs ${this.cfg.vectorLength} @ ${this.cfg.bits}`);
    }
    // Only the running sum is kept: no individual masked vector outlives this call.
    addInPlace(this.sum, y);
    this.masked.add(from);
  }

  /** Closes MaskedInput: the survivor set every survivor is asked to sign (ConsistencyCheck). */
  closeMaskedInput(): UnmaskRequest {
    this.expect("masked-input");
    this.need(this.masked.size, "sent masked inputs");
    const survivors = [...this.masked].sort((a, b) => a - b);
    const dropouts = [...this.shared].filter((u) => !this.masked.has(u)).sort((a, b) => a - b);
    this.request = { survivors, dropouts };
    this.stage = "consistency";
    return this.request;
  }

  /** A survivor's signature over the survivor set; checked against its enrolled identity. */
  receiveConsistency(s: SurvivorSignature): void {
    this.expect("consistency");
    if (!this.request!.survivors.includes(s.index)) throw new SecAggError("UNKNOWN_PEER", `device ${s.index} is not a survivor`);
    if (this.signatures.has(s.index)) throw new SecAggError("DUPLICATE", `device ${s.index} already signed the survivor set`);
    if (!verifyBytes(this.identity.get(s.index)!, consistencyPayload(this.cfg, this.request!.survivors), s.signature)) {
      throw new SecAggError("BAD_SIGNATURE", `device ${s.index}'s signature over the survivor set does not verify`);
    }
    this.signatures.set(s.index, s.signature);
  }

  /** Closes ConsistencyCheck: the unmasking request, carrying every signature collected. */
  closeConsistency(): UnmaskRequest {
    this.expect("consistency");
    this.need(this.signatures.size, "signed the survivor set");
    const signatures = [...this.signatures].map(([index, signature]) => ({ index, signature }));
    this.request = { ...this.request!, signatures };
    this.stage = "unmask";
    return this.request;
  }

  receiveUnmask(u: UnmaskShares): void {
    this.expect("unmask");
    const req = this.request!;
    if (!req.survivors.includes(u.from)) throw new SecAggError("UNKNOWN_PEER", `device ${u.from} is not a survivor`);
    if (!this.signatures.has(u.from)) throw new SecAggError("UNKNOWN_PEER", `device ${u.from} did not sign the survivor set`);
    if (this.unmasked.has(u.from)) throw new SecAggError("DUPLICATE", `device ${u.from} already sent its unmasking shares`);
    const nbrs = new Set(this.graph.get(u.from) ?? []);
    const survivors = new Set(req.survivors);
    const dropouts = new Set(req.dropouts);
    const check = (owner: number, share: Uint8Array, allowed: Set<number>, kind: string): void => {
      if (!allowed.has(owner)) throw new SecAggError("UNSAFE_UNMASK", `${kind} share for ${owner}, which this request does not ask for`);
      if (!nbrs.has(owner)) throw new SecAggError("NOT_NEIGHBOUR", `${kind} share for ${owner}, not a neighbour of ${u.from}`);
      if (share.length !== SHARE_BYTES) throw new SecAggError("BAD_SHARE", `${kind} share for ${owner} has ${share.length} bytes`);
    };
    for (const s of u.selfMaskShares) check(s.owner, s.share, survivors, "self-mask");
    for (const s of u.secretKeyShares) check(s.owner, s.share, dropouts, "secret-key");
    for (const s of u.selfMaskShares) {
      const m = this.bShares.get(s.owner) ?? new Map<number, Uint8Array>();
      m.set(u.from, s.share);
      this.bShares.set(s.owner, m);
    }
    for (const s of u.secretKeyShares) {
      const m = this.sShares.get(s.owner) ?? new Map<number, Uint8Array>();
      m.set(u.from, s.share);
      this.sShares.set(s.owner, m);
    }
    this.unmasked.add(u.from);
  }

  private reconstruct(owner: number, shares: Map<number, Uint8Array> | undefined, what: string): Uint8Array {
    const t = this.cfg.threshold;
    if (!shares || shares.size < t) {
      this.stage = "aborted";
      throw new SecAggError("TOO_FEW_SURVIVORS", `only ${shares?.size ?? 0} shares of device ${owner}'s ${what}; ${t} needed`);
    }
    const all = [...shares.keys()].sort((a, b) => a - b);
    const at = (holders: number[]): bigint => {
      const lambda = lagrangeAtZero(holders.map((h) => h + 1));
      let acc = 0n;
      holders.forEach((h, i) => (acc = (acc + lambda[i]! * bytesToField(shares.get(h)!)) % FIELD_PRIME));
      return acc;
    };
    const secret = at(all.slice(0, t));
    // With more than t shares, a second t-subset must give the same secret: the shares lie on one
    // polynomial of degree < t. A single bad share changes one of the two results.
    if (all.length > t && at(all.slice(-t)) !== secret) {
      this.stage = "aborted";
      throw new SecAggError("BAD_SHARE", `the shares of device ${owner}'s ${what} are inconsistent (a revealed share is corrupt)`);
    }
    if (secret >= 1n << 256n) {
      this.stage = "aborted";
      throw new SecAggError("BAD_SHARE", `device ${owner}'s reconstructed ${what} is not a 32-byte value (a revealed share is corrupt)`);
    }
    return fieldToBytes(secret, 32);
  }

  /** The exact sum of the survivors' inputs mod 2^bits, or a SecAggError if that is impossible. */
  finish(): ModularVector {
    this.expect("unmask");
    this.need(this.unmasked.size, "sent unmasking shares");
    const { survivors, dropouts } = this.request!;
    const out = { bits: this.sum.bits, length: this.sum.length, data: new Uint32Array(this.sum.data) };
    for (const u of survivors) {
      const seed = this.reconstruct(u, this.bShares.get(u), "self-mask seed");
      addMaskInPlace(this.cfg.bits, out.data, selfMaskKey(seed, this.cfg, u), -1);
    }
    const survivorSet = new Set(survivors);
    for (const v of dropouts) {
      const raw = this.reconstruct(v, this.sShares.get(v), "mask key");
      const sk = x25519Private(raw, this.keys.get(v)!.sPk);
      // The reconstructed secret must belong to the advertised public key; otherwise the masks
      // removed would be wrong and the sum silently corrupted.
      if (Buffer.compare(Buffer.from(x25519PublicOf(sk)), Buffer.from(this.keys.get(v)!.sPk)) !== 0) {
        this.stage = "aborted";
        throw new SecAggError("BAD_SHARE", `device ${v}'s reconstructed mask key does not match its advertised s_pk (a revealed share is corrupt)`);
      }
      for (const u of this.graph.get(v) ?? []) {
        if (!survivorSet.has(u)) continue;
        // u added sign(u, v)·PRG(s_uv) for v; remove exactly that.
        const agreed = agree(sk, x25519Public(this.keys.get(u)!.sPk));
        const transcript = pairTranscript(u, this.keys.get(u)!.sPk, v, this.keys.get(v)!.sPk);
        addMaskInPlace(this.cfg.bits, out.data, pairMaskKey(agreed, this.cfg, u, v, transcript), u < v ? -1 : 1);
      }
    }
    this.stage = "done";
    return out;
  }
}
