/**
 * The device's side of SecAgg / SecAgg+ (Bonawitz et al. CCS 2017, Fig. 4 with the malicious-
 * server ConsistencyCheck round; Bell et al. CCS 2020) as an explicit stage machine:
 * advertise → share → mask → consistency → unmask → done. Each method
 * checks the stage and refuses out-of-order calls; the per-round secrets (c_sk, s_sk, b) never
 * leave this object except as Shamir shares encrypted to neighbours.
 */
import { randomBytes, type KeyObject } from "node:crypto";
import { limbsFor, type ModularVector } from "../modular/index.ts";
import { publicKeyFromRaw, signBytes, verifyBytes } from "../crypto/ed25519.ts";
import { SecAggError } from "./errors.ts";
import { createShares, bytesToField, fieldToBytes, SHARE_BYTES } from "./shamir.ts";
import { agree, generateX25519, x25519Public, type X25519Pair } from "./x25519.ts";
import { pairMaskKey, pairTranscript, selfMaskCommitment, selfMaskKey } from "./prg.ts";
import { addMaskInPlace } from "./mask-prg.ts";
import { consistencyPayload, countValidSigners, sameSet, type SurvivorSignature } from "./consistency.ts";
import { openShare, sealShare } from "./share-box.ts";
import { neighboursOf } from "./graph.ts";
import { advertisePayload, type AdvertisedKeys, type EncryptedShare, type RosterEntry, type SecAggConfig, type UnmaskRequest, type UnmaskShares } from "./messages.ts";

type Stage = "advertise" | "share" | "mask" | "consistency" | "unmask" | "done";

export class SecAggDevice {
  private stage: Stage = "advertise";
  private readonly c: X25519Pair = generateX25519();
  private readonly s: X25519Pair = generateX25519();
  private readonly seed = new Uint8Array(randomBytes(32));
  private roster = new Map<number, RosterEntry>();
  /** Every device that advertised keys this round (the graph is built over them). */
  private participants = new Set<number>();
  private neighbours: number[] = [];
  /** Shares held for each neighbour v: [b_v-share, s_sk_v-share]. */
  private readonly held = new Map<number, { b: Uint8Array; s: Uint8Array }>();
  private maskedWith: number[] = [];
  /** X25519(c_sk, c_pk_v) per neighbour v, from ShareKeys; dropped after masking. */
  private readonly cAgreed = new Map<number, Uint8Array>();
  /** Identity keys of the roster (from the coordinator-signed cohort), for consistency signatures. */
  private readonly identities = new Map<number, KeyObject>();
  /** The one survivor set this device signed; it reveals shares for no other. */
  private signedSet: number[] | undefined;

  constructor(
    readonly cfg: SecAggConfig,
    readonly self: number,
    private readonly identity: { privateKey: KeyObject },
  ) {
    limbsFor(cfg.bits);
  }

  private expect(stage: Stage): void {
    if (this.stage !== stage) throw new SecAggError("STAGE", `device ${this.self}: expected stage ${stage}, in stage ${this.stage}`);
  }

  advertiseKeys(): AdvertisedKeys {
    this.expect("advertise");
    this.stage = "share";
    const commitment = selfMaskCommitment(this.seed, this.cfg, this.self);
    const payload = advertisePayload(this.cfg, this.self, this.c.publicRaw, this.s.publicRaw, commitment);
    return { index: this.self, cPk: this.c.publicRaw, sPk: this.s.publicRaw, selfMaskCommitment: commitment, signature: signBytes(this.identity.privateKey, payload) };
  }

  /**
   * Verifies the neighbours' advertisements, then Shamir-shares b and s_sk among them.
   * `participants` are all the devices that advertised keys (the graph is built over them); the
   * roster then needs to carry only this device's own and its neighbours' keys (SecAgg+: a
   * device never uses anyone else's). Without it, the roster's indices are the participants.
   */
  shareKeys(roster: RosterEntry[], participants?: readonly number[]): EncryptedShare[] {
    this.expect("share");
    const seen = new Map<number, RosterEntry>();
    for (const r of roster) {
      if (seen.has(r.index)) throw new SecAggError("DUPLICATE", `roster lists device ${r.index} twice`);
      seen.set(r.index, r);
    }
    const all = new Set(participants ?? seen.keys());
    if (participants && all.size !== participants.length) throw new SecAggError("DUPLICATE", "the list of devices that advertised keys names one twice");
    for (const i of seen.keys()) if (!all.has(i)) throw new SecAggError("UNKNOWN_PEER", `the roster carries keys of device ${i}, which is not listed as having advertised`);
    // Only neighbours' keys are ever used, so only their signatures need checking: k, not n,
    // verifications per device (this is what keeps SecAgg+ device cost at O(log n)).
    // Each identity key is imported once: for this check and for the consistency signatures.
    const identityOf = (r: RosterEntry): KeyObject => (r.identityPublicKey instanceof Uint8Array ? publicKeyFromRaw(r.identityPublicKey) : r.identityPublicKey);
    const verify = (r: RosterEntry): KeyObject => {
      const idKey = identityOf(r);
      if (!verifyBytes(idKey, advertisePayload(this.cfg, r.index, r.cPk, r.sPk, r.selfMaskCommitment), r.signature)) {
        throw new SecAggError("BAD_SIGNATURE", `advertised keys of device ${r.index} are not signed by its identity`);
      }
      return idKey;
    };
    const mine = seen.get(this.self);
    if (!mine || Buffer.compare(Buffer.from(mine.sPk), Buffer.from(this.s.publicRaw)) !== 0 || Buffer.compare(Buffer.from(mine.cPk), Buffer.from(this.c.publicRaw)) !== 0) {
      throw new SecAggError("UNKNOWN_PEER", "the roster does not carry this device's own advertised keys");
    }
    if (all.size < this.cfg.threshold + 1) throw new SecAggError("TOO_FEW_SURVIVORS", `only ${all.size} devices advertised keys; threshold is ${this.cfg.threshold}`);
    this.roster = seen;
    this.participants = all;
    this.neighbours = neighboursOf(this.cfg, [...all], this.self) ?? [];
    for (const v of this.neighbours) {
      const r = seen.get(v);
      if (!r) throw new SecAggError("UNKNOWN_PEER", `the roster lacks the advertised keys of neighbour ${v}`);
      this.identities.set(v, verify(r));
    }
    this.identities.set(this.self, identityOf(mine));
    if (this.neighbours.length < this.cfg.threshold) throw new SecAggError("TOO_FEW_SURVIVORS", `device ${this.self} has ${this.neighbours.length} neighbours, threshold ${this.cfg.threshold}`);
    const xs = this.neighbours.map((v) => v + 1);
    const bShares = createShares(bytesToField(this.seed), this.cfg.threshold, xs);
    const sShares = createShares(bytesToField(this.s.privateRaw), this.cfg.threshold, xs);
    this.stage = "mask";
    return this.neighbours.map((v, i) => {
      const plaintext = Buffer.concat([fieldToBytes(bShares[i]!.y), fieldToBytes(sShares[i]!.y)]);
      // The c-key agreement is needed again to open this neighbour's share: computed once.
      const agreed = agree(this.c.privateKey, x25519Public(seen.get(v)!.cPk));
      this.cAgreed.set(v, agreed);
      return { from: this.self, to: v, ciphertext: sealShare(agreed, this.cfg, this.self, v, plaintext, pairTranscript(this.self, this.c.publicRaw, v, seen.get(v)!.cPk)) };
    });
  }

  /** Stores the shares addressed to it and returns y = x + PRG(b) + Σ ±PRG(s_uv) mod 2^bits. */
  maskInput(input: ModularVector, received: EncryptedShare[]): ModularVector {
    this.expect("mask");
    if (input.bits !== this.cfg.bits || input.length !== this.cfg.vectorLength) {
      throw new SecAggError("BAD_LENGTH", `input is ${input.length} @ ${input.bits} bits; the round needs ${this.cfg.vectorLength} @ ${this.cfg.bits}`);
    }
    const neighbourSet = new Set(this.neighbours);
    for (const sh of received) {
      if (sh.to !== this.self) throw new SecAggError("UNKNOWN_PEER", `share addressed to ${sh.to} delivered to ${this.self}`);
      if (!neighbourSet.has(sh.from)) throw new SecAggError("NOT_NEIGHBOUR", `share from ${sh.from}, which is not a neighbour of ${this.self}`);
      if (this.held.has(sh.from)) throw new SecAggError("DUPLICATE", `two shares from ${sh.from}`);
      const agreed = this.cAgreed.get(sh.from) ?? agree(this.c.privateKey, x25519Public(this.roster.get(sh.from)!.cPk));
      const plain = openShare(agreed, this.cfg, sh.from, this.self, sh.ciphertext, pairTranscript(this.self, this.c.publicRaw, sh.from, this.roster.get(sh.from)!.cPk));
      if (plain.length !== 2 * SHARE_BYTES) throw new SecAggError("BAD_SHARE", `share from ${sh.from} has ${plain.length} bytes`);
      this.held.set(sh.from, { b: plain.subarray(0, SHARE_BYTES), s: plain.subarray(SHARE_BYTES) });
    }
    // Pairwise masks only with neighbours that completed ShareKeys (their shares reached us),
    // so the server can cancel exactly these masks for any of them that drops later.
    this.maskedWith = this.neighbours.filter((v) => this.held.has(v));
    const y = new Uint32Array(input.data);
    addMaskInPlace(input.bits, y, selfMaskKey(this.seed, this.cfg, this.self), 1);
    for (const v of this.maskedWith) {
      const agreed = agree(this.s.privateKey, x25519Public(this.roster.get(v)!.sPk));
      const transcript = pairTranscript(this.self, this.s.publicRaw, v, this.roster.get(v)!.sPk);
      addMaskInPlace(input.bits, y, pairMaskKey(agreed, this.cfg, this.self, v, transcript), this.self < v ? 1 : -1);
    }
    this.cAgreed.clear();
    this.stage = "consistency";
    return { bits: input.bits, length: input.length, data: y };
  }

  /** The checks every survivor set must pass, whether shown for signing or in the request. */
  private checkSurvivorSet(list: readonly number[]): Set<number> {
    const survivors = new Set(list);
    if (survivors.size !== list.length) throw new SecAggError("UNSAFE_UNMASK", "duplicate indices in the survivor set");
    if (!survivors.has(this.self)) throw new SecAggError("UNSAFE_UNMASK", "this device is not listed among the survivors");
    const floor = Math.max(this.cfg.threshold, this.cfg.minSurvivors ?? 0);
    if (survivors.size < floor) throw new SecAggError("UNSAFE_UNMASK", `only ${survivors.size} survivors; refusing to help unmask fewer than ${floor} inputs`);
    for (const v of survivors) if (!this.participants.has(v)) throw new SecAggError("UNKNOWN_PEER", `device ${v} did not advertise keys this round`);
    // A surviving neighbour masked its input with this device only if its shares reached it.
    for (const v of this.neighbours) if (survivors.has(v) && !this.held.has(v)) throw new SecAggError("UNSAFE_UNMASK", `neighbour ${v} is listed as a survivor but never shared keys with this device`);
    return survivors;
  }

  /**
   * ConsistencyCheck: signs the survivor set the coordinator shows (run, round, attempt, round
   * seed, set). Once per attempt: this device will reveal shares for this set and no other.
   */
  signSurvivors(survivors: readonly number[]): SurvivorSignature {
    this.expect("consistency");
    this.checkSurvivorSet(survivors);
    this.signedSet = [...survivors].sort((a, b) => a - b);
    this.stage = "unmask";
    return { index: this.self, signature: signBytes(this.identity.privateKey, consistencyPayload(this.cfg, this.signedSet)) };
  }

  /**
   * Reveals b-shares of surviving neighbours and s_sk-shares of dropped ones — never both kinds
   * for one peer, once per round, only for the survivor set this device signed, only when at
   * least t of its neighbours (or itself) signed that same set, and only if the set is large
   * enough that the coordinator learns a sum, not an individual input.
   */
  unmask(req: UnmaskRequest): UnmaskShares {
    this.expect("unmask");
    if (!this.signedSet || !sameSet(req.survivors, this.signedSet)) throw new SecAggError("UNSAFE_UNMASK", "the unmasking request names a survivor set other than the one this device signed");
    const survivors = this.checkSurvivorSet(req.survivors);
    const signers = new Set([...this.neighbours, this.self].filter((v) => survivors.has(v)));
    const valid = countValidSigners(consistencyPayload(this.cfg, this.signedSet), req.signatures ?? [], signers, (i) => this.identities.get(i), this.cfg.threshold);
    if (valid < this.cfg.threshold) throw new SecAggError("UNSAFE_UNMASK", `only ${valid} valid signatures on the survivor set from this device's neighbourhood; ${this.cfg.threshold} needed`);
    const dropouts = new Set(req.dropouts);
    if (dropouts.size !== req.dropouts.length) throw new SecAggError("UNSAFE_UNMASK", "duplicate indices in the unmasking request");
    for (const v of dropouts) if (survivors.has(v)) throw new SecAggError("UNSAFE_UNMASK", `device ${v} is listed as both surviving and dropped`);
    for (const v of dropouts) if (!this.participants.has(v)) throw new SecAggError("UNKNOWN_PEER", `device ${v} did not advertise keys this round`);
    const neighbourSet = new Set(this.neighbours);
    for (const v of dropouts) {
      // Only neighbours concern this device. A dropped neighbour must be one it exchanged shares
      // with (the server lists only devices that completed ShareKeys); otherwise the request
      // lies about membership.
      if (neighbourSet.has(v) && !this.held.has(v)) throw new SecAggError("UNSAFE_UNMASK", `neighbour ${v} is declared dropped but never shared keys with this device`);
    }
    this.stage = "done";
    const selfMaskShares = [...survivors].filter((v) => this.held.has(v)).map((v) => ({ owner: v, share: this.held.get(v)!.b }));
    const secretKeyShares = [...dropouts].filter((v) => this.held.has(v)).map((v) => ({ owner: v, share: this.held.get(v)!.s }));
    // This device's own b is revealed to the server only through its neighbours' shares.
    return { from: this.self, selfMaskShares, secretKeyShares };
  }
}
