/**
 * One device's part in rounds, driven by the coordinator's pushed events:
 *   invite  → verify signature, checkpoint and guard → AdvertiseKeys (and start local training)
 *   roster  → ShareKeys (Shamir shares encrypted to neighbours)
 *   inbox   → await training → clip → distributed noise → quantize → attest → mask → MaskedInput
 *             (an evaluation round: await the held-out counts → bound → noise → attest → mask)
 *   consistency → sign the survivor set shown (once per attempt)
 *   unmask  → reveal only for the set signed, with t signatures on it, what the SecAgg rules allow
 * The pipeline order is written down here, once; each step is a function of its own module.
 */
import { createHash, type KeyObject } from "node:crypto";
import type { Logger } from "pino";
import { canonicalJson, publicKeyFromRaw, signBytes, type Ed25519KeyPair } from "../../shared/crypto/index.ts";
import { aggregationLength, attestationBody, dpInputsFor, openRoundConfig, provesMembership, roundDpEvent, type RoundConfig } from "../../shared/run/index.ts";
import { SecAggDevice, wireAdvertisedKeys } from "../../shared/secagg/index.ts";
import { calibrateDistributedDp, encodeClientUpdate, type DpEvent } from "../../shared/dp/index.ts";
import type { EvalCounts } from "../../shared/eval/index.ts";
import type { ModularVector } from "../../shared/modular/index.ts";
import { evalInput } from "./eval-input.ts";
import type { CoordinatorClient, ServerEvent } from "../transport/coordinator-client.ts";
import { checkRound, type DeviceLimits } from "./device-guard.ts";
import type { BudgetRecord } from "./budget-record.ts";

export type RoundPhase = "advertise" | "share" | "masked-input" | "unmask";

export interface LocalUpdate {
  delta: Float32Array;
  loss: number;
  examples: number;
}

export interface ParticipantHooks {
  /** Trains on local data from the given global weights; returns the model delta. */
  train(cfg: RoundConfig, weights: Float32Array, signal?: AbortSignal): Promise<LocalUpdate>;
  /**
   * Evaluates the global weights on the held-out slice (never trained on); returns counts only.
   * Absent: this device declines evaluation rounds.
   */
  evaluate?(cfg: RoundConfig, weights: Float32Array, signal?: AbortSignal): Promise<EvalCounts>;
  /**
   * The laptop's own reasons not to join right now (paused by its person, in use), checked
   * before anything is spent; a reason makes this a normal decline.
   */
  unavailable?(): { code: string; reason: string } | undefined;
  /** Simulation only: the phase at which this device vanishes this round, if any. */
  dropAt?(cfg: RoundConfig): RoundPhase | undefined;
  /** Called when the device vanishes (the host closes its connection). */
  onDrop?(cfg: RoundConfig, phase: RoundPhase): void;
  onEvent?(e: ParticipantEvent): void;
}

export type ParticipantEvent =
  | { type: "declined"; runId: string; round: number; code: string; reason: string }
  | { type: "joined"; runId: string; round: number; projectedEpsilon: number }
  | { type: "submitted"; runId: string; round: number; loss: number; examples: number; clipped: boolean }
  | { type: "evaluated"; runId: string; round: number; examples: number }
  | { type: "outcome"; runId: string; round: number; status: string; modelHash: string }
  | { type: "dropped"; runId: string; round: number; phase: RoundPhase }
  /** A newer attempt of the round was invited: this attempt's work stops (or its invitation is skipped). */
  | { type: "superseded"; runId: string; round: number; attempt: number }
  | { type: "error"; runId: string; round: number; message: string };

interface RoundState {
  cfg: RoundConfig;
  index: number;
  secagg: SecAggDevice;
  training: Promise<LocalUpdate>;
  /** Evaluation rounds: the held-out counts (training stays a resolved no-op). */
  evaluation: Promise<EvalCounts> | undefined;
  event: DpEvent;
  dropAt: RoundPhase | undefined;
  dropped: boolean;
  /** Aborted when a newer attempt of this round is invited: the attempt's work stops. */
  abandon: AbortController;
}

export interface ParticipantOptions {
  deviceId: string;
  identity: Ed25519KeyPair;
  coordinatorPublicKey: Uint8Array;
  client: CoordinatorClient;
  limits: DeviceLimits;
  budget: BudgetRecord;
  hooks: ParticipantHooks;
  log?: Logger;
}

export class RoundParticipant {
  private readonly rounds = new Map<string, RoundState>();
  /** The newest attempt invited per run/round, as labelled on arrival (see `arrived`). */
  private readonly newest = new Map<string, number>();
  private readonly coordinatorKey: KeyObject;

  constructor(private readonly o: ParticipantOptions) {
    this.coordinatorKey = publicKeyFromRaw(o.coordinatorPublicKey);
  }

  /**
   * Called as each event arrives, before it is queued for `handle` (RoundSubscription's
   * `onArrival`): an invitation labelled with a newer attempt of a round abandons the older
   * attempt's work at once — its wait for training ends, its later messages are ignored, and an
   * older invitation still queued is skipped unopened — instead of after everything queued
   * before it. Cheap and synchronous: it reads only the invitation's label; the signed config is
   * checked against that label when the invitation is handled.
   */
  arrived(ev: ServerEvent): void {
    const label = ev.invite?.ref;
    if (!label) return;
    const k = this.key(label.runId, label.round);
    if ((this.newest.get(k) ?? -1) >= ev.invite!.attempt) return;
    this.newest.set(k, ev.invite!.attempt);
    const st = this.rounds.get(k);
    if (st && st.cfg.attempt < ev.invite!.attempt) this.supersede(st);
  }

  /**
   * Stops an attempt's work: nothing more is sent for it. Its state stays until the newer
   * invitation replaces it, so the coordinator's outcome for it (sent before the newer
   * invitation) is still recorded in the budget.
   */
  private supersede(st: RoundState): void {
    if (st.abandon.signal.aborted) return;
    st.abandon.abort();
    this.o.hooks.onEvent?.({ type: "superseded", runId: st.cfg.runId, round: st.cfg.round, attempt: st.cfg.attempt });
  }

  /** Entry point for every pushed event; never throws (errors are reported as events). */
  async handle(ev: ServerEvent): Promise<void> {
    const refOf = (): { runId: string; round: number } =>
      ev.invite ? { runId: "?", round: -1 } : (ev.roster?.ref ?? ev.inbox?.ref ?? ev.consistency?.ref ?? ev.unmask?.ref ?? ev.outcome?.ref ?? { runId: "?", round: -1 });
    try {
      if (ev.invite) await this.onInvite(ev.invite);
      else if (ev.roster) await this.onRoster(ev.roster);
      else if (ev.inbox) await this.onInbox(ev.inbox);
      else if (ev.consistency) await this.onConsistency(ev.consistency);
      else if (ev.unmask) await this.onUnmask(ev.unmask);
      else if (ev.outcome) this.onOutcome(ev.outcome);
    } catch (err) {
      const r = refOf();
      this.o.hooks.onEvent?.({ type: "error", runId: r.runId, round: r.round, message: (err as Error).message });
      this.o.log?.warn({ err: (err as Error).message }, "round message failed");
    }
  }

  private key(runId: string, round: number): string {
    return `${runId}/${round}`;
  }

  private state(ref: { runId: string; round: number } | null): RoundState | undefined {
    if (!ref) return undefined;
    const st = this.rounds.get(this.key(ref.runId, ref.round));
    return st && !st.dropped && !st.abandon.signal.aborted ? st : undefined;
  }

  /** Returns true (and vanishes) when the simulated dropout phase is reached. */
  private dropsNow(st: RoundState, phase: RoundPhase): boolean {
    if (st.dropAt !== phase) return false;
    st.dropped = true;
    this.o.hooks.onEvent?.({ type: "dropped", runId: st.cfg.runId, round: st.cfg.round, phase });
    this.o.hooks.onDrop?.(st.cfg, phase);
    return true;
  }

  /**
   * Opens an invitation unless a newer attempt of its round was already invited (then it is
   * skipped unopened, and undefined returned); the signed config must match the label.
   */
  private openInvite(inv: NonNullable<ServerEvent["invite"]>): RoundConfig | undefined {
    const label = inv.ref;
    if (label && (this.newest.get(this.key(label.runId, label.round)) ?? -1) > inv.attempt) {
      this.o.hooks.onEvent?.({ type: "superseded", runId: label.runId, round: label.round, attempt: inv.attempt });
      return undefined;
    }
    const cfg = openRoundConfig(inv.configJson, new Uint8Array(inv.configSignature), this.coordinatorKey);
    if (label && (label.runId !== cfg.runId || label.round !== cfg.round || inv.attempt !== cfg.attempt)) {
      throw new Error(`invitation labelled ${label.runId}/${label.round} attempt ${inv.attempt} carries the signed config of ${cfg.runId}/${cfg.round} attempt ${cfg.attempt}`);
    }
    const k = this.key(cfg.runId, cfg.round);
    const newest = this.newest.get(k) ?? -1;
    const current = this.rounds.get(k);
    if (newest > cfg.attempt || (current && current.cfg.attempt > cfg.attempt)) {
      this.o.hooks.onEvent?.({ type: "superseded", runId: cfg.runId, round: cfg.round, attempt: cfg.attempt });
      return undefined;
    }
    // A second invitation to the attempt this device already holds is not a new round: joining
    // again would advertise fresh keys the coordinator has no place for, and lose the first ones.
    if (current && current.cfg.attempt === cfg.attempt) throw new Error(`a second invitation to ${cfg.runId}/${cfg.round} attempt ${cfg.attempt}, which this device already joined; ignored`);
    this.newest.set(k, cfg.attempt);
    if (current) this.supersede(current);
    return cfg;
  }

  private async onInvite(inv: NonNullable<ServerEvent["invite"]>): Promise<void> {
    const cfg = this.openInvite(inv);
    if (!cfg) return;
    // The signed cohort names no device: this device is the member at the invitation's index,
    // and the signed cohort root must commit to this device's identity key there.
    if (inv.index >= cfg.cohort.size) throw new Error(`invitation for round ${cfg.round} gives index ${inv.index}, outside the signed cohort of ${cfg.cohort.size}`);
    if (!provesMembership(cfg.cohort, inv.index, this.o.identity.publicRaw, inv.cohortPath)) throw new Error(`invitation's cohort proof does not put this device's identity key at index ${inv.index} of the signed cohort`);
    const cp = inv.checkpoint;
    if (cp.length !== cfg.parameterCount * 4) throw new Error(`checkpoint is ${cp.length} bytes, expected ${cfg.parameterCount * 4}`);
    const weights = new Float32Array(cfg.parameterCount);
    Buffer.from(weights.buffer).set(cp);
    const hash = createHash("sha256").update(cp).digest("hex");
    if (hash !== cfg.modelHash) throw new Error(`checkpoint hash ${hash.slice(0, 12)} does not match the signed model hash ${cfg.modelHash.slice(0, 12)}`);

    const ref = { runId: cfg.runId, round: cfg.round };
    const event = roundDpEvent(cfg);
    const busy = this.o.hooks.unavailable?.() ?? (cfg.evaluation && !this.o.hooks.evaluate ? { code: "NO_EVALUATION", reason: "this device does not evaluate" } : undefined);
    const decision = busy ? ({ ok: false, ...busy } as const) : checkRound(cfg, event, this.o.budget.events(), this.o.limits);
    if (!decision.ok) {
      this.o.hooks.onEvent?.({ type: "declined", ...ref, code: decision.code, reason: decision.reason });
      await this.o.client.unary("Rounds", "Decline", { ref, reason: `${decision.code}: ${decision.reason}` });
      return;
    }
    const secagg = new SecAggDevice(
      { runId: cfg.runId, round: cfg.round, attempt: cfg.attempt, bits: cfg.secagg.bits, vectorLength: aggregationLength(cfg), threshold: cfg.secagg.threshold, degree: cfg.secagg.degree, roundSeed: Buffer.from(cfg.secagg.roundSeed, "base64"), minSurvivors: cfg.dp.minSurvivors },
      inv.index,
      { privateKey: this.o.identity.privateKey },
    );
    const st: RoundState = {
      cfg, index: inv.index, secagg, training: Promise.resolve({ delta: new Float32Array(0), loss: 0, examples: 0 }), evaluation: undefined, event, dropAt: this.o.hooks.dropAt?.(cfg), dropped: false,
      abandon: new AbortController(),
    };
    this.rounds.set(this.key(cfg.runId, cfg.round), st);
    if (this.dropsNow(st, "advertise")) return;
    this.o.hooks.onEvent?.({ type: "joined", ...ref, projectedEpsilon: decision.projectedEpsilon });
    // Training (or evaluation) starts now and overlaps the key phases; awaited at MaskedInput.
    if (cfg.evaluation) {
      st.evaluation = this.o.hooks.evaluate!(cfg, weights, st.abandon.signal);
      st.evaluation.catch(() => undefined);
    } else {
      st.training = this.o.hooks.train(cfg, weights, st.abandon.signal);
      st.training.catch(() => undefined);
    }
    const keys = secagg.advertiseKeys();
    await this.o.client.unary("Rounds", "AdvertiseKeys", { ref, keys: wireAdvertisedKeys(keys) });
  }

  private async onRoster(roster: NonNullable<ServerEvent["roster"]>): Promise<void> {
    const st = this.state(roster.ref);
    if (!st || this.dropsNow(st, "share")) return;
    // The roster carries this device's own and its neighbours' advertisements (and the list of
    // every advertiser), each with the identity key its signature is checked against and the
    // proof that the signed cohort root commits to that key at that index.
    const proofs = new Map(roster.members.map((m) => [m.index, m]));
    const entries = roster.keys.map((k) => {
      const member = proofs.get(k.index);
      if (!member) throw new Error(`roster gives no cohort proof for index ${k.index}`);
      const identityPublicKey = new Uint8Array(member.identityPublicKey);
      if (!provesMembership(st.cfg.cohort, k.index, identityPublicKey, member.path)) throw new Error(`roster's identity key for index ${k.index} is not the one the signed cohort commits to`);
      return { index: k.index, cPk: new Uint8Array(k.cPk), sPk: new Uint8Array(k.sPk), selfMaskCommitment: new Uint8Array(k.selfMaskCommitment), signature: new Uint8Array(k.signature), identityPublicKey };
    });
    for (const i of roster.advertised) if (i >= st.cfg.cohort.size) throw new Error(`roster lists index ${i} as an advertiser, outside the signed cohort of ${st.cfg.cohort.size}`);
    const shares = st.secagg.shareKeys(entries, roster.advertised.length > 0 ? roster.advertised : undefined);
    await this.o.client.unary("Rounds", "ShareKeys", {
      ref: { runId: st.cfg.runId, round: st.cfg.round },
      shares: shares.map((s) => ({ from: s.from, to: s.to, ciphertext: Buffer.from(s.ciphertext) })),
    });
  }

  private async onInbox(inbox: NonNullable<ServerEvent["inbox"]>): Promise<void> {
    const st = this.state(inbox.ref);
    if (!st) return;
    const input = st.evaluation ? await this.evaluationInput(st, st.evaluation) : await this.trainingInput(st);
    if (!input) return;
    const cfg = st.cfg;
    const ref = { runId: cfg.runId, round: cfg.round };
    const masked = st.secagg.maskInput(
      input.encoded,
      inbox.shares.map((s) => ({ from: s.from, to: s.to, ciphertext: new Uint8Array(s.ciphertext) })),
    );
    // Attest what this device added, then charge the budget before the input leaves.
    const bodyJson = canonicalJson(attestationBody(cfg, this.o.deviceId, st.event));
    await this.o.client.unary("Rounds", "SubmitAttestation", { ref, bodyJson, signature: Buffer.from(signBytes(this.o.identity.privateKey, bodyJson)) });
    this.o.budget.charge({ runId: cfg.runId, round: cfg.round, attempt: cfg.attempt, event: st.event, at: Date.now() });
    const data = Buffer.from(masked.data.buffer, masked.data.byteOffset, masked.data.byteLength);
    await this.o.client.unary("Rounds", "SubmitMaskedInput", { ref, bits: masked.bits, length: masked.length, data }, 120_000);
    this.o.hooks.onEvent?.(input.event);
  }

  /** The training pipeline's input: the update clipped, noised and quantized; undefined if this device dropped. */
  private async trainingInput(st: RoundState): Promise<{ encoded: ModularVector; event: ParticipantEvent } | undefined> {
    const update = await untilAbandoned(st.training, st.abandon.signal);
    if (!update || st.dropped || this.dropsNow(st, "masked-input")) return undefined;
    const cfg = st.cfg;
    if (update.delta.length !== cfg.parameterCount) throw new Error(`local update has ${update.delta.length} values, expected ${cfg.parameterCount}`);
    const dp = calibrateDistributedDp(dpInputsFor(cfg));
    // A diverged local model (NaN/∞) still sends a zero update with its noise share: going
    // silent would stall the round until the deadline, and the others' DP needs that noise.
    const finite = update.delta.every(Number.isFinite);
    if (!finite) this.o.log?.warn({ runId: cfg.runId, round: cfg.round }, "local training diverged (non-finite update): contributing a zero update with its noise");
    const { encoded, wasClipped } = encodeClientUpdate(finite ? update.delta : new Float32Array(update.delta.length), dp);
    return { encoded, event: { type: "submitted", runId: cfg.runId, round: cfg.round, loss: update.loss, examples: update.examples, clipped: wasClipped } };
  }

  /** An evaluation round's input: the held-out counts, bounded and noised; undefined if this device dropped. */
  private async evaluationInput(st: RoundState, evaluation: Promise<EvalCounts>): Promise<{ encoded: ModularVector; event: ParticipantEvent } | undefined> {
    const counts = await untilAbandoned(evaluation, st.abandon.signal);
    if (!counts || st.dropped || this.dropsNow(st, "masked-input")) return undefined;
    return { encoded: evalInput(st.cfg, counts), event: { type: "evaluated", runId: st.cfg.runId, round: st.cfg.round, examples: counts.examples } };
  }

  private async onConsistency(c: NonNullable<ServerEvent["consistency"]>): Promise<void> {
    const st = this.state(c.ref);
    if (!st) return;
    const sig = st.secagg.signSurvivors(c.survivors);
    await this.o.client.unary("Rounds", "SignSurvivors", { ref: { runId: st.cfg.runId, round: st.cfg.round }, signature: Buffer.from(sig.signature) });
  }

  private async onUnmask(req: NonNullable<ServerEvent["unmask"]>): Promise<void> {
    const st = this.state(req.ref);
    if (!st || this.dropsNow(st, "unmask")) return;
    const signatures = req.signatures.map((s) => ({ index: s.index, signature: new Uint8Array(s.signature) }));
    const u = st.secagg.unmask({ survivors: req.survivors, dropouts: req.dropouts, signatures });
    this.o.budget.markRevealed(st.cfg.runId, st.cfg.round, st.cfg.attempt);
    await this.o.client.unary("Rounds", "SubmitUnmasking", {
      ref: { runId: st.cfg.runId, round: st.cfg.round },
      selfMaskShares: u.selfMaskShares.map((s) => ({ owner: s.owner, share: Buffer.from(s.share) })),
      secretKeyShares: u.secretKeyShares.map((s) => ({ owner: s.owner, share: Buffer.from(s.share) })),
    });
  }

  private onOutcome(o: NonNullable<ServerEvent["outcome"]>): void {
    if (!o.ref) return;
    const k = this.key(o.ref.runId, o.ref.round);
    const st = this.rounds.get(k);
    if (st) this.o.budget.markOutcome(o.ref.runId, o.ref.round, st.cfg.attempt, o.status === "completed" ? "completed" : "aborted");
    this.rounds.delete(k);
    this.o.hooks.onEvent?.({ type: "outcome", runId: o.ref.runId, round: o.ref.round, status: o.status, modelHash: o.modelHash });
  }
}

/** The promise's value, or undefined as soon as `signal` aborts (the attempt was superseded). */
function untilAbandoned<T>(p: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise<T | undefined>((resolve, reject) => {
    const stop = (): void => resolve(undefined);
    signal.addEventListener("abort", stop, { once: true });
    p.then(
      (v) => (signal.removeEventListener("abort", stop), resolve(signal.aborted ? undefined : v)),
      (e: unknown) => (signal.removeEventListener("abort", stop), reject(e)),
    );
  });
}
