/**
 * The SecAgg phases a training round and an evaluation round share, in order: invitation +
 * AdvertiseKeys → ShareKeys → MaskedInput → ConsistencyCheck → Unmasking. Each phase opens a
 * gate over the devices that answered the one before, fans its message out, waits for the gate
 * (every answer or the deadline), then stops at a boundary if the round was interrupted or its
 * run cancelled. What differs between the two kinds of round — the signed config, what is done
 * with the sum, whether progress is persisted — stays with the caller.
 */
import type { ModularVector } from "../../shared/modular/index.ts";
import { type AdvertisedKeys, type EncryptedShare, type UnmaskRequest } from "../../shared/secagg/index.ts";
import type { ActiveRound } from "./active-round.ts";
import { openPhaseGate } from "./phase-gate.ts";
import { runConsistencyPhase } from "./consistency-phase.ts";
import { fanOut } from "./fan-out.ts";
import { RoundInterrupted } from "./round-interrupt.ts";
import type { RoundContext } from "./round-context.ts";
import type { PhaseCounts } from "../runs/run-store.ts";

export const emptyCounts = (): PhaseCounts => ({
  invited: 0,
  declined: 0,
  advertised: 0,
  shared: 0,
  maskedInput: 0,
  unmasked: 0,
  dropouts: { advertise: 0, share: 0, maskedInput: 0, unmask: 0 },
});

/** A phase boundary: stop here if the round was interrupted or its run cancelled elsewhere. */
export async function boundary(ctx: RoundContext, runId: string, signal: AbortSignal): Promise<void> {
  if (signal.aborted) throw signal.reason;
  if (await ctx.isCancelled?.(runId)) throw new RoundInterrupted("cancelled");
}

/**
 * Makes the round reachable by the RPC handlers and lets a disconnect drop its device and a
 * cancel or shutdown end the running phase at once (the boundary after it stops the round).
 * Returns what undoes all of it, for the caller's `finally`.
 */
export function openActiveRound(ctx: RoundContext, active: ActiveRound, signal: AbortSignal): () => void {
  ctx.active.set(active.key, active);
  const onDisconnect = (deviceId: string): void => active.dropDevice(deviceId);
  ctx.hub.on("disconnect", onDisconnect);
  const endPhase = (): void => active.gate?.finish();
  signal.addEventListener("abort", endPhase);
  return () => {
    signal.removeEventListener("abort", endPhase);
    active.gate?.finish();
    ctx.hub.off("disconnect", onDisconnect);
    ctx.active.delete(active.key);
  };
}

/** What every invited device is told when the round ends, however it ended. */
export function tellCohort(ctx: RoundContext, active: ActiveRound, outcome: { status: string; modelHash: string; detail: string; survivors: number }): void {
  for (const deviceId of active.cohortDevices()) ctx.hub.send(deviceId, { outcome: { ref: refOf(active), ...outcome } });
}

/** The phases whose opening a caller may act on (a training round persists its progress there). */
export type SecAggPhase = "advertise" | "share" | "masked-input" | "unmask";

export interface SecAggRound {
  ctx: RoundContext;
  active: ActiveRound;
  signal: AbortSignal;
  /** The signed config and the model every invitation carries. */
  invitation: { json: string; signature: Uint8Array; weights: Float32Array };
  /** How long the devices get to sign the survivor set, and again to unmask, counted from when each phase opens. */
  unmaskMs: number;
  /** Filled in as the phases close: who answered and who dropped out at each. */
  counts: PhaseCounts;
  onPhase?: (phase: SecAggPhase) => Promise<void>;
  /** Runs once the server has tried to reconstruct the sum, whether or not it succeeded. */
  afterReconstruction?: () => Promise<void>;
}

/** Runs every SecAgg phase of the round; returns the unmasked sum and the survivors' indices. */
export async function runSecAggPhases(r: SecAggRound): Promise<{ sum: ModularVector; survivors: number[] }> {
  const roster = await advertisePhase(r);
  const inboxes = await shareKeysPhase(r, roster);
  const shown = await maskedInputPhase(r, inboxes);
  // ConsistencyCheck: every survivor signs the survivor set.
  const request = await runConsistencyPhase({ hub: r.ctx.hub, active: r.active, signal: r.signal, ref: refOf(r.active), shown, deadline: Date.now() + r.unmaskMs });
  await boundary(r.ctx, r.active.config.runId, r.signal);
  const sum = await unmaskPhase(r, request);
  return { sum, survivors: request.survivors };
}

const refOf = (active: ActiveRound): { runId: string; round: number } => ({ runId: active.config.runId, round: active.config.round });

/** Invitation + AdvertiseKeys: every cohort member gets the signed config and the model. */
async function advertisePhase(r: SecAggRound): Promise<AdvertisedKeys[]> {
  const { ctx, active, counts } = r;
  const cohort = active.cohortIndices();
  await r.onPhase?.("advertise");
  const checkpoint = Buffer.from(r.invitation.weights.buffer, r.invitation.weights.byteOffset, r.invitation.weights.byteLength);
  openPhaseGate(active, r.signal, cohort, active.config.deadlines.advertise);
  const invitation = { ref: refOf(active), attempt: active.config.attempt, configJson: r.invitation.json, configSignature: Buffer.from(r.invitation.signature), checkpoint };
  const invites = ctx.hub.encodeInvites(invitation, (i) => active.cohort.proof(i));
  await fanOut(ctx.hub, active, cohort, invites);
  await boundary(ctx, active.config.runId, r.signal);
  counts.declined = active.declines.size;
  counts.advertised = active.answered.advertise.size;
  counts.dropouts.advertise = cohort.length - counts.declined - counts.advertised;
  return active.secagg.closeAdvertise();
}

/** ShareKeys: the advertisers get the roster of everyone's keys. */
async function shareKeysPhase(r: SecAggRound, roster: AdvertisedKeys[]): Promise<Map<number, EncryptedShare[]>> {
  const { ctx, active, counts } = r;
  active.phase = "share";
  await r.onPhase?.("share");
  const advertisers = [...active.answered.advertise];
  openPhaseGate(active, r.signal, advertisers, active.config.deadlines.share);
  // Each device's roster: every advertiser's index, but only its own and its neighbours' keys.
  const rosterOf = ctx.hub.encodeRosters(refOf(active), roster.map((k) => k.index), (i) => active.secagg.rosterFor(i), (i) => active.memberProof(i));
  await fanOut(ctx.hub, active, advertisers, rosterOf);
  await boundary(ctx, active.config.runId, r.signal);
  counts.shared = active.answered.share.size;
  counts.dropouts.share = advertisers.length - counts.shared;
  return active.secagg.closeShareKeys();
}

/** MaskedInput: each sharer gets the shares addressed to it (devices train, clip, noise, quantize and mask meanwhile). */
async function maskedInputPhase(r: SecAggRound, inboxes: Map<number, EncryptedShare[]>): Promise<UnmaskRequest> {
  const { ctx, active, counts } = r;
  active.phase = "masked-input";
  await r.onPhase?.("masked-input");
  const sharers = [...active.answered.share];
  openPhaseGate(active, r.signal, sharers, active.config.deadlines.maskedInput);
  const ref = refOf(active);
  await fanOut(ctx.hub, active, sharers, (i) => ({ inbox: { ref, shares: (inboxes.get(i) ?? []).map((s) => ({ from: s.from, to: s.to, ciphertext: Buffer.from(s.ciphertext) })) } }));
  await boundary(ctx, active.config.runId, r.signal);
  counts.maskedInput = active.answered["masked-input"].size;
  counts.dropouts.maskedInput = sharers.length - counts.maskedInput;
  return active.secagg.closeMaskedInput();
}

/** Unmasking: the survivors that signed the set reveal the shares that remove the masks. */
async function unmaskPhase(r: SecAggRound, request: UnmaskRequest): Promise<ModularVector> {
  const { ctx, active, counts } = r;
  active.phase = "unmask";
  await r.onPhase?.("unmask");
  // Only survivors that signed the set are asked (the others could not be answered), and of
  // those only the ones with t signatures in their neighbourhood: the rest must refuse.
  const signers = (request.signatures ?? []).map((s) => s.index).sort((a, b) => a - b);
  const asked = active.secagg.ableToUnmask(signers);
  openPhaseGate(active, r.signal, asked, Math.max(active.config.deadlines.unmask, Date.now() + r.unmaskMs));
  // Each device gets the sets and the signatures of its own neighbourhood (those it checks).
  const unmaskOf = ctx.hub.encodeUnmaskRequests(refOf(active), request.survivors, request.dropouts, request.signatures ?? [], (i) => active.secagg.neighbourhood(i));
  await fanOut(ctx.hub, active, asked, unmaskOf);
  await boundary(ctx, active.config.runId, r.signal);
  counts.unmasked = active.answered.unmask.size;
  counts.dropouts.unmask = request.survivors.length - counts.unmasked;
  let sum: ModularVector;
  try {
    sum = active.secagg.finish();
  } finally {
    await r.afterReconstruction?.();
  }
  active.phase = "finished";
  return sum;
}
