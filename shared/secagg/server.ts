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
import { bytesToField, fieldToBytes, SHARE_BYTES, type Share } from "./shamir.ts";
import { agreedSecrets, decodeSecret, locateErrors, type DecodedSecret } from "./share-decoding.ts";
import { agree, assertUsablePublicKey, x25519Private, x25519PublicOf, x25519Public } from "./x25519.ts";
import { pairMaskKey, pairTranscript, selfMaskCommitment, selfMaskKey } from "./prg.ts";
import { addMaskInPlace } from "./mask-prg.ts";
import { consistencyPayload, type SurvivorSignature } from "./consistency.ts";
import { neighbourGraph } from "./graph.ts";
import { advertisePayload, type AdvertisedKeys, type EncryptedShare, type SecAggConfig, type UnmaskRequest, type UnmaskShares } from "./messages.ts";

type Stage = "advertise" | "share" | "masked-input" | "consistency" | "unmask" | "done" | "aborted";

export class SecAggServer {
  private stage: Stage = "advertise";
  private readonly identity = new Map<number, KeyObject>();
  private readonly keys = new Map<number, AdvertisedKeys>();
  /** Every advertised public key (hex, c_pk and s_pk alike) → the device that advertised it. */
  private readonly advertisedBy = new Map<string, number>();
  private graph = new Map<number, number[]>();
  private readonly outbox = new Map<number, EncryptedShare[]>();
  private readonly shared = new Set<number>();
  private readonly masked = new Set<number>();
  private sum: ModularVector;
  private request: UnmaskRequest | undefined;
  /** The request's survivor and dropout sets, built once (every device's message is checked against them). */
  private survivorSet = new Set<number>();
  private dropoutSet = new Set<number>();
  /** What every survivor signs (the same bytes for all: built once, not per signature). */
  private consistencyMessage: Buffer | undefined;
  private readonly bShares = new Map<number, Map<number, Uint8Array>>();
  private readonly sShares = new Map<number, Map<number, Uint8Array>>();
  private readonly unmasked = new Set<number>();
  /** ConsistencyCheck signatures over the survivor set, by signer. */
  private readonly signatures = new Map<number, Uint8Array>();
  /** Devices proved to have sent wrong shares, by index (see `culprits`). */
  private readonly named = new Map<number, string>();

  constructor(
    readonly cfg: SecAggConfig,
    cohort: number[],
    identityKeys: Map<number, KeyObject | Uint8Array>,
  ) {
    limbsFor(cfg.bits);
    // Reconstruction walks the shares in windows of t: with t = 0 it would never end.
    if (!Number.isInteger(cfg.threshold) || cfg.threshold < 1) throw new RangeError(`SecAgg threshold must be an integer ≥ 1, got ${cfg.threshold}`);
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
    if (k.selfMaskCommitment?.length !== 32) throw new SecAggError("BAD_LENGTH", "the self-mask seed commitment must be 32 bytes");
    if (Buffer.compare(Buffer.from(k.cPk), Buffer.from(k.sPk)) === 0) throw new SecAggError("BAD_SHARE", "c_pk and s_pk must differ");
    // A low-order key would make every neighbour's key agreement fail: one device could abort
    // the round for everyone. Refuse it here, before it reaches the roster.
    assertUsablePublicKey(k.cPk, `c_pk of device ${k.index}`);
    assertUsablePublicKey(k.sPk, `s_pk of device ${k.index}`);
    if (!verifyBytes(id, advertisePayload(this.cfg, k.index, k.cPk, k.sPk, k.selfMaskCommitment), k.signature)) {
      throw new SecAggError("BAD_SIGNATURE", `advertised keys of device ${k.index} are not signed by its enrolled identity`);
    }
    // Round keys are fresh per device and attempt: a key another member already advertised is a
    // copy (finding I1), and a copied s_pk would make two members' masks and shares collide.
    // Looked up by value (hex) in one map of every key advertised: O(1) per device, not O(n).
    const cHex = Buffer.from(k.cPk).toString("hex");
    const sHex = Buffer.from(k.sPk).toString("hex");
    for (const mine of [cHex, sHex]) {
      const other = this.advertisedBy.get(mine);
      if (other !== undefined) throw new SecAggError("DUPLICATE", `device ${k.index} advertised a key that device ${other} already advertised`);
    }
    this.advertisedBy.set(cHex, k.index);
    this.advertisedBy.set(sHex, k.index);
    this.keys.set(k.index, k);
  }

  closeAdvertise(): AdvertisedKeys[] {
    this.expect("advertise");
    this.need(this.keys.size, "advertised keys");
    this.graph = neighbourGraph(this.cfg, [...this.keys.keys()]);
    this.stage = "share";
    return [...this.keys.values()].sort((a, b) => a.index - b.index);
  }

  /**
   * The advertisements device `i` needs after AdvertiseKeys: its own and its neighbours' (sorted
   * by index). Sent with the list of every advertiser, this is its roster — O(k) keys, not O(n).
   */
  rosterFor(i: number): AdvertisedKeys[] {
    const nbrs = this.graph.get(i);
    if (!nbrs) throw new SecAggError("UNKNOWN_PEER", `device ${i} did not advertise keys this round`);
    return [...nbrs, i].sort((a, b) => a - b).map((v) => this.keys.get(v)!);
  }

  /** Device `i` and its neighbours (sorted): whose survivor-set signatures `i` checks before unmasking. */
  neighbourhood(i: number): number[] {
    return [...(this.graph.get(i) ?? []), i].sort((a, b) => a - b);
  }

  /**
   * Of the devices that signed the survivor set, those that can unmask: a device reveals shares
   * only with at least t signatures on the set from its own neighbourhood (itself included), so
   * one without them refuses — rightly, and silently. The coordinator waits for these alone:
   * waiting for the others held the round until its last deadline (11 minutes with the
   * defaults) when many neighbours had dropped out.
   */
  ableToUnmask(signers: readonly number[]): number[] {
    const signed = new Set(signers);
    return signers.filter((i) => this.neighbourhood(i).filter((j) => signed.has(j)).length >= this.cfg.threshold);
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
    this.survivorSet = new Set(survivors);
    this.dropoutSet = new Set(dropouts);
    this.stage = "consistency";
    return this.request;
  }

  /** A survivor's signature over the survivor set; checked against its enrolled identity. */
  receiveConsistency(s: SurvivorSignature): void {
    this.expect("consistency");
    if (!this.survivorSet.has(s.index)) throw new SecAggError("UNKNOWN_PEER", `device ${s.index} is not a survivor`);
    if (this.signatures.has(s.index)) throw new SecAggError("DUPLICATE", `device ${s.index} already signed the survivor set`);
    this.consistencyMessage ??= consistencyPayload(this.cfg, this.request!.survivors);
    if (!verifyBytes(this.identity.get(s.index)!, this.consistencyMessage, s.signature)) {
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
    if (!this.survivorSet.has(u.from)) throw new SecAggError("UNKNOWN_PEER", `device ${u.from} is not a survivor`);
    if (!this.signatures.has(u.from)) throw new SecAggError("UNKNOWN_PEER", `device ${u.from} did not sign the survivor set`);
    if (this.unmasked.has(u.from)) throw new SecAggError("DUPLICATE", `device ${u.from} already sent its unmasking shares`);
    const nbrs = new Set(this.graph.get(u.from) ?? []);
    const survivors = this.survivorSet;
    const dropouts = this.dropoutSet;
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

  /**
   * Holders (and lying dealers) the redundant shares proved wrong, with why: the coordinator
   * names them in the ledger (finding M2). Filled by finish(), also when it aborts.
   */
  get culprits(): ReadonlyMap<number, string> {
    return this.named;
  }

  private name(index: number, reason: string): void {
    if (!this.named.has(index)) this.named.set(index, reason);
  }

  private abort(message: string): never {
    this.stage = "aborted";
    throw new SecAggError("BAD_SHARE", message);
  }

  /** The owner's revealed shares as field points; holders of non-field values are named. */
  private points(owner: number, shares: Map<number, Uint8Array> | undefined, what: string): Share[] {
    const t = this.cfg.threshold;
    const points: Share[] = [];
    for (const [holder, bytes] of shares ?? []) {
      try {
        points.push({ x: holder + 1, y: bytesToField(bytes) });
      } catch {
        this.name(holder, `revealed a share of device ${owner}'s ${what} that is not a field element`);
      }
    }
    if (points.length < t) {
      this.stage = "aborted";
      throw new SecAggError("TOO_FEW_SURVIVORS", `only ${points.length} shares of device ${owner}'s ${what}; ${t} needed`);
    }
    return points;
  }

  /**
   * The owner's secret from its revealed shares, error-corrected (share-decoding.ts): shares that
   * lie off the polynomial the others determine are ignored and their holders named. `valid`
   * checks the 32-byte secret against what the owner committed to (s_pk, or H(b)); if the shares agree
   * with each other but not with that, the owner itself dealt wrong shares and is named.
   * `agreed`: the secret `agreedSecrets` found these shares to agree on (all owners' windows
   * decoded in one batch), if they do.
   */
  private reconstruct(owner: number, points: Share[], what: string, agreed: bigint | undefined, valid: (secret: Uint8Array) => boolean = () => true): Uint8Array {
    const t = this.cfg.threshold;
    const usable = (v: bigint): Uint8Array | undefined => {
      if (v >= 1n << 256n) return undefined;
      const bytes = fieldToBytes(v, 32);
      return valid(bytes) ? bytes : undefined;
    };
    let decoded: DecodedSecret;
    try {
      decoded = agreed !== undefined ? { secret: agreed, corrupt: [] } : decodeSecret(points, t);
      if (!usable(decoded.secret) && decoded.corrupt.length === 0) decoded = locateErrors(points, t);
    } catch (err) {
      if (err instanceof SecAggError && err.code === "BAD_SHARE") this.abort(`the shares of device ${owner}'s ${what} are inconsistent beyond correction (${err.message})`);
      throw err;
    }
    for (const x of decoded.corrupt) this.name(x - 1, `revealed a wrong share of device ${owner}'s ${what}`);
    const secret = usable(decoded.secret);
    if (secret) return secret;
    // Shares that agree with each other (no holder is off the polynomial) but give a secret the
    // owner's own commitment rules out: the owner dealt them. With n = t nothing can be told apart.
    if (decoded.corrupt.length === 0 && points.length > t) this.name(owner, `dealt shares of its ${what} that do not match what it advertised`);
    this.abort(`device ${owner}'s reconstructed ${what} is invalid (a revealed share is corrupt)`);
  }

  /** Every owner's points, and the secret each owner's shares agree on (one batched decoding). */
  private pointsOf(owners: readonly number[], shares: Map<number, Map<number, Uint8Array>>, what: string): { points: Share[][]; agreed: (bigint | undefined)[] } {
    const points = owners.map((u) => this.points(u, shares.get(u), what));
    return { points, agreed: agreedSecrets(points, this.cfg.threshold) };
  }

  /** The exact sum of the survivors' inputs mod 2^bits, or a SecAggError if that is impossible. */
  finish(): ModularVector {
    this.expect("unmask");
    this.need(this.unmasked.size, "sent unmasking shares");
    const { survivors, dropouts } = this.request!;
    const out = { bits: this.sum.bits, length: this.sum.length, data: new Uint32Array(this.sum.data) };
    const seeds = this.pointsOf(survivors, this.bShares, "self-mask seed");
    for (const [k, u] of survivors.entries()) {
      // The reconstructed b must open the commitment u signed when it advertised: otherwise u
      // dealt shares of a seed other than the one it masked with, and is named.
      const committed = Buffer.from(this.keys.get(u)!.selfMaskCommitment);
      const opens = (seed: Uint8Array): boolean => selfMaskCommitment(seed, this.cfg, u).equals(committed);
      const seed = this.reconstruct(u, seeds.points[k]!, "self-mask seed", seeds.agreed[k], opens);
      addMaskInPlace(this.cfg.bits, out.data, selfMaskKey(seed, this.cfg, u), -1);
    }
    const survivorSet = new Set(survivors);
    const keys = this.pointsOf(dropouts, this.sShares, "mask key");
    // A survivor's s_pk, imported once though it neighbours several dropouts.
    const sPkOf = new Map<number, KeyObject>();
    for (const [k, v] of dropouts.entries()) {
      const sPk = this.keys.get(v)!.sPk;
      // The reconstructed secret must belong to the advertised public key; otherwise the masks
      // removed would be wrong and the sum silently corrupted.
      const matches = (raw: Uint8Array): boolean => {
        try {
          return Buffer.compare(Buffer.from(x25519PublicOf(x25519Private(raw, sPk))), Buffer.from(sPk)) === 0;
        } catch {
          return false;
        }
      };
      const sk = x25519Private(this.reconstruct(v, keys.points[k]!, "mask key", keys.agreed[k], matches), sPk);
      for (const u of this.graph.get(v) ?? []) {
        if (!survivorSet.has(u)) continue;
        // u added sign(u, v)·PRG(s_uv) for v; remove exactly that.
        let pk = sPkOf.get(u);
        if (!pk) sPkOf.set(u, (pk = x25519Public(this.keys.get(u)!.sPk)));
        const agreed = agree(sk, pk);
        const transcript = pairTranscript(u, this.keys.get(u)!.sPk, v, this.keys.get(v)!.sPk);
        addMaskInPlace(this.cfg.bits, out.data, pairMaskKey(agreed, this.cfg, u, v, transcript), u < v ? -1 : 1);
      }
    }
    this.stage = "done";
    return out;
  }
}
