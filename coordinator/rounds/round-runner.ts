/**
 * Executes one round of a run as a sequence of phases with deadlines:
 * select → invite/AdvertiseKeys → ShareKeys → MaskedInput → Unmasking → decode → server
 * optimizer → checkpoint. Whatever stops a round before its commit point — a SecAgg failure (too
 * few survivors at some phase), any other error (a full disk, a Redis error), a cancel or a
 * shutdown — ends the attempt cleanly: the model is left unchanged, every invited device is told
 * the outcome, and the scheduler records the attempt and decides whether to retry.
 * Cancels and shutdowns are seen at the next phase boundary: the running phase's gate is ended
 * at once, so a boundary is never further away than the current message fan-out.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { KeyObject } from "node:crypto";
import { publicKeyFromRaw, type Ed25519KeyPair } from "../../shared/crypto/index.ts";
import { chooseParams, SecAggError } from "../../shared/secagg/index.ts";
import { calibrateDistributedDp, decodeAggregate, impossibleAggregate, roundEvent, type DpEvent } from "../../shared/dp/index.ts";
import { applyServerUpdateChecked, parameterCount, weightsHash } from "../../shared/model/index.ts";
import { adaptClip, dpInputsFor, roundClip, signRoundConfig, type RoundConfig } from "../../shared/run/index.ts";
import type { DeviceHub } from "./device-hub.ts";
import { ActiveRound, type Attestation } from "./active-round.ts";
import { PhaseGate } from "./phase-gate.ts";
import { runConsistencyPhase } from "./consistency-phase.ts";
import { sampleCohort } from "./cohort.ts";
import type { DeviceRegistry } from "../state/registry.ts";
import type { CheckpointStore } from "../runs/checkpoint-store.ts";
import type { PhaseCounts, RoundRecord, RunRecord } from "../runs/run-store.ts";
import { serverStateFromJson, serverStateToJson } from "./server-state.ts";
import { failpoint, faultpoint } from "../runs/failpoint.ts";
import { RoundInterrupted } from "./round-interrupt.ts";
import { recordOffence, type OffenceLedger } from "../state/offences.ts";

export interface RoundLedgerSink {
  /** Called once per finished round (completed or aborted) with everything the ledger records. */
  round(entry: {
    run: RunRecord;
    record: RoundRecord;
    cohort: string[];
    survivors: string[];
    declines: Record<string, string>;
    event: DpEvent | undefined;
    attestations: Attestation[];
  }): Promise<void>;
}

/** A completed round's commit record, stored in its checkpoint's metadata (JSON). */
export interface RoundCommit {
  record: RoundRecord;
  cohort: string[];
  survivors: string[];
  declines: Record<string, string>;
  event: DpEvent;
  attestations: { deviceId: string; identityPublicKey: string; body: string; signature: string }[];
}

export interface RoundContext {
  hub: DeviceHub;
  registry: DeviceRegistry;
  checkpoints: CheckpointStore;
  signingKey: Ed25519KeyPair;
  log: Logger;
  active: Map<string, ActiveRound>;
  ledger: RoundLedgerSink;
  /** Publishes a committed round (ledger, LATEST, run state); idempotent. */
  commit(runId: string, round: number): Promise<void>;
  /** Persists the round's progress (phase, attempt, cohort, counts) in Redis. */
  onPhase?: (runId: string, round: number, phase: string, state: { attempt: number; cohort: string[]; counts: PhaseCounts }) => Promise<void>;
  /** True once the run was cancelled (by this or another coordinator process): read at each phase boundary. */
  isCancelled?: (runId: string) => Promise<boolean>;
  /** Where devices the SecAgg server proved to have sent wrong shares are named (state/offences.ts). */
  offences?: OffenceLedger;
}

/**
 * Names in the ledger every device the SecAgg server's reconstruction proved wrong this round,
 * once per device, whether the round then completed (wrong shares corrected) or aborted.
 */
async function nameCulprits(ctx: RoundContext, active: ActiveRound): Promise<void> {
  if (!ctx.offences) return;
  for (const [index, reason] of active.secagg.culprits) {
    const deviceId = active.deviceByIndex.get(index);
    if (deviceId) await recordOffence({ ledger: ctx.offences, hub: ctx.hub }, { deviceId, runId: active.config.runId, round: active.config.round, reason });
  }
}

/** How an attempt ended. A completed one is committed and published; the others are not. */
export type RoundResult =
  | { status: "completed"; record: RoundRecord }
  | {
      status: "aborted" | "cancelled";
      record: RoundRecord;
      cohort: string[];
      declines: Record<string, string>;
      cause: AbortCause;
    };

/** What stopped an attempt: decides whether the scheduler counts it towards the retry limit. */
export type AbortCause = "too-few-devices" | "secagg" | "error" | "cancelled" | "shutdown";

/**
 * An error after the round's commit point (the checkpoint is durable, publishing it failed):
 * the round is committed and must be published again, never re-run.
 */
export class PublishError extends Error {
  override name = "PublishError";
}

export const emptyCounts = (): PhaseCounts => ({
  invited: 0,
  declined: 0,
  advertised: 0,
  shared: 0,
  maskedInput: 0,
  unmasked: 0,
  dropouts: { advertise: 0, share: 0, maskedInput: 0, unmask: 0 },
});

/**
 * Lets the event loop turn every 64 sends, so that a phase fanning out to a thousand devices
 * never starves their RPCs, the HTTP/2 keepalive pings or the BullMQ lock renewal.
 */
async function breathe(n: number): Promise<void> {
  if (n % 64 === 63) await new Promise((r) => setImmediate(r));
}

async function waitForEligible(hub: DeviceHub, want: number, deadline: number, signal: AbortSignal): Promise<string[]> {
  for (;;) {
    if (signal.aborted) throw signal.reason;
    const eligible = hub.eligibleDevices();
    if (eligible.length >= want || Date.now() >= deadline) return eligible;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A phase boundary: stop here if the round was interrupted or its run cancelled elsewhere. */
async function boundary(ctx: RoundContext, runId: string, signal: AbortSignal): Promise<void> {
  if (signal.aborted) throw signal.reason;
  if (await ctx.isCancelled?.(runId)) throw new RoundInterrupted("cancelled");
}

function causeOf(err: unknown): AbortCause {
  if (err instanceof RoundInterrupted) return err.reason;
  return err instanceof SecAggError ? "secagg" : "error";
}

export async function executeRound(ctx: RoundContext, run: RunRecord, round: number, attempt: number, signal: AbortSignal = new AbortController().signal): Promise<RoundResult> {
  const spec = run.spec;
  const startedAt = Date.now();
  faultpoint("checkpoint-read", round);
  const current = await ctx.checkpoints.latest(run.runId);
  if (!current) throw new Error(`run ${run.runId} has no checkpoint`);
  const counts = emptyCounts();
  const base: Omit<RoundRecord, "status" | "survivors" | "modelHashAfter" | "detail" | "endedAt"> = {
    round,
    attempt,
    cohort: 0,
    modelHashBefore: current.hash,
    phases: counts,
    secagg: { threshold: 0, degree: 0, mode: "", guarantee: "", bits: spec.bits },
    startedAt,
  };
  const ended = (status: "aborted" | "cancelled", cause: AbortCause, detail: string, cohort: string[], declines: Record<string, string>): RoundResult => ({
    status,
    cause,
    cohort,
    declines,
    record: { ...base, status, survivors: 0, modelHashAfter: current.hash, detail, endedAt: Date.now() },
  });

  let cohortIds: string[];
  let eligible: string[];
  let registered: { deviceId: string; identityPublicKey: string }[];
  try {
    await ctx.onPhase?.(run.runId, round, "selection", { attempt, cohort: [], counts });
    eligible = await waitForEligible(ctx.hub, spec.cohortSize, Date.now() + spec.deadlines.selectionMs, signal);
    await boundary(ctx, run.runId, signal);
    // Only devices still enrolled are invited (a deregistered one may linger in the hub for a
    // moment), and the SecAgg sizes below are chosen for exactly the devices invited.
    registered = [];
    for (const deviceId of sampleCohort(eligible, spec.cohortSize)) {
      const rec = await ctx.registry.get(deviceId);
      if (rec) registered.push({ deviceId, identityPublicKey: rec.identityPublicKey });
    }
    cohortIds = registered.map((r) => r.deviceId);
  } catch (err) {
    // Nobody was invited yet: there is no one to tell.
    const cause = causeOf(err);
    return ended(cause === "cancelled" ? "cancelled" : "aborted", cause, `stopped during selection: ${describe(err)}`, [], {});
  }
  base.cohort = cohortIds.length;
  counts.invited = cohortIds.length;
  if (cohortIds.length < spec.minSurvivors) {
    return ended("aborted", "too-few-devices", `only ${cohortIds.length} eligible devices connected, the run needs at least minSurvivors=${spec.minSurvivors}`, cohortIds, {});
  }

  const params = chooseParams({
    cohortSize: cohortIds.length,
    dropoutFraction: spec.dropoutTolerance,
    corruptFraction: spec.corruptTolerance,
    minSurvivors: spec.minSurvivors,
  });
  base.secagg = { threshold: params.threshold, degree: params.degree, mode: params.mode, guarantee: params.guarantee, bits: spec.bits };

  const identityKeys = new Map<number, KeyObject>();
  const cohort: RoundConfig["cohort"] = [];
  for (const [index, { identityPublicKey }] of registered.entries()) {
    identityKeys.set(index, publicKeyFromRaw(Buffer.from(identityPublicKey, "base64")));
    cohort.push({ index, identityPublicKey });
  }
  const dim = parameterCount(spec.model);
  const now = Date.now();
  const d = spec.deadlines;
  const config: RoundConfig = {
    protocol: "tacit-round-v1",
    runId: run.runId,
    round,
    attempt,
    modelHash: current.hash,
    parameterCount: dim,
    model: spec.model,
    training: {
      localEpochs: spec.localEpochs,
      maxLocalSteps: spec.maxLocalSteps,
      batchSize: spec.batchSize,
      learningRate: spec.clientLearningRate,
      optimizer: spec.clientOptimizer,
      seed: (spec.seed * 1_000_003 + round * 7919 + attempt) % 2 ** 31,
      // Devices keep the most recent slice of their store out of training for evaluation rounds.
      ...(spec.evaluation ? { heldOutFraction: spec.evaluation.heldOutFraction } : {}),
    },
    dp: {
      mechanism: spec.mechanism,
      // Adaptive clipping: this round's C, carried in the checkpoint (shared/run/adaptive-clip-round.ts).
      clip: roundClip(spec, current.serverState),
      noiseMultiplier: spec.noiseMultiplier,
      minSurvivors: spec.minSurvivors,
      // Upper bound on the number of inputs summed: sizes the modulus headroom.
      expectedSurvivors: cohort.length,
      // Survivors that may collude with a malicious coordinator: noise is sized without theirs.
      colluders: params.colluders,
      delta: spec.delta,
      rotationSeed: randomBytes(32).toString("base64"),
      ...(spec.adaptiveClip ? { adaptiveClip: spec.adaptiveClip } : {}),
    },
    secagg: {
      bits: spec.bits,
      threshold: params.threshold,
      degree: params.degree,
      mode: params.mode,
      roundSeed: randomBytes(32).toString("base64"),
      guarantee: params.guarantee,
    },
    signals: spec.signals,
    cohort,
    populationSize: spec.populationSize,
    deadlines: {
      advertise: now + d.advertiseMs,
      share: now + d.advertiseMs + d.shareMs,
      maskedInput: now + d.advertiseMs + d.shareMs + d.maskedInputMs,
      unmask: now + d.advertiseMs + d.shareMs + d.maskedInputMs + d.unmaskMs,
    },
    issuedAt: now,
  };
  // What the ledger records about this round's privacy: the pool the cohort was drawn from, the
  // sampling scheme, the collusion assumption behind σ², and the wrap-around bound.
  base.privacy = {
    eligible: eligible.length,
    sampling: "fixed-size-without-replacement",
    colluders: params.colluders,
    honestNoiseShares: spec.minSurvivors - params.colluders,
    wrapProbability: calibrateDistributedDp(dpInputsFor(config)).overflowProbabilityBound,
  };
  const signed = signRoundConfig(config, ctx.signingKey.privateKey);
  const active = new ActiveRound(config, identityKeys, cohortIds);
  ctx.active.set(active.key, active);
  const onDisconnect = (deviceId: string): void => active.dropDevice(deviceId);
  ctx.hub.on("disconnect", onDisconnect);
  const deviceOf = (i: number): string => active.deviceByIndex.get(i)!;
  const ref = { runId: run.runId, round };
  // A cancel or shutdown ends the running phase now; the boundary after it stops the round.
  const endPhase = (): void => active.gate?.finish();
  signal.addEventListener("abort", endPhase);
  let committed = false;

  try {
    // Phase 1: invitation + AdvertiseKeys.
    await ctx.onPhase?.(run.runId, round, "advertise", { attempt, cohort: cohortIds, counts });
    const checkpointBytes = Buffer.from(current.weights.buffer, current.weights.byteOffset, current.weights.byteLength);
    active.gate = new PhaseGate(cohort.map((m) => m.index), config.deadlines.advertise);
    const invites = ctx.hub.encodeInvites({ ref, attempt, configJson: signed.json, configSignature: Buffer.from(signed.signature), checkpoint: checkpointBytes });
    for (const [n, m] of cohort.entries()) {
      const sent = ctx.hub.send(deviceOf(m.index), invites(m.index));
      if (!sent) active.gate.settle(m.index);
      await breathe(n);
    }
    await active.gate.done;
    await boundary(ctx, run.runId, signal);
    counts.declined = active.declines.size;
    counts.advertised = active.answered.advertise.size;
    counts.dropouts.advertise = cohort.length - counts.declined - counts.advertised;
    const roster = active.secagg.closeAdvertise();

    // Phase 2: ShareKeys.
    active.phase = "share";
    await ctx.onPhase?.(run.runId, round, "share", { attempt, cohort: cohortIds, counts });
    const advertisers = [...active.answered.advertise];
    active.gate = new PhaseGate(advertisers, config.deadlines.share);
    // Each device's roster: every advertiser's index, but only its own and its neighbours' keys.
    const rosterOf = ctx.hub.encodeRosters(ref, roster.map((k) => k.index), (i) => active.secagg.rosterFor(i));
    for (const [n, i] of advertisers.entries()) {
      if (!ctx.hub.send(deviceOf(i), rosterOf(i))) active.gate.settle(i);
      await breathe(n);
    }
    await active.gate.done;
    await boundary(ctx, run.runId, signal);
    counts.shared = active.answered.share.size;
    counts.dropouts.share = advertisers.length - counts.shared;
    const inboxes = active.secagg.closeShareKeys();

    // Phase 3: MaskedInput (devices train, clip, noise, quantize and mask meanwhile).
    active.phase = "masked-input";
    await ctx.onPhase?.(run.runId, round, "masked-input", { attempt, cohort: cohortIds, counts });
    const sharers = [...active.answered.share];
    active.gate = new PhaseGate(sharers, config.deadlines.maskedInput);
    for (const [n, i] of sharers.entries()) {
      const inbox = (inboxes.get(i) ?? []).map((s) => ({ from: s.from, to: s.to, ciphertext: Buffer.from(s.ciphertext) }));
      if (!ctx.hub.send(deviceOf(i), { inbox: { ref, shares: inbox } })) active.gate.settle(i);
      await breathe(n);
    }
    await active.gate.done;
    await boundary(ctx, run.runId, signal);
    counts.maskedInput = active.answered["masked-input"].size;
    counts.dropouts.maskedInput = sharers.length - counts.maskedInput;
    const shown = active.secagg.closeMaskedInput();

    // Phase 3½: ConsistencyCheck (every survivor signs the survivor set).
    const request = await runConsistencyPhase({ hub: ctx.hub, active, ref, shown, deadline: Date.now() + d.unmaskMs });
    await boundary(ctx, run.runId, signal);

    // Phase 4: Unmasking.
    active.phase = "unmask";
    await ctx.onPhase?.(run.runId, round, "unmask", { attempt, cohort: cohortIds, counts });
    // Only survivors that signed the set are asked (the others could not be answered).
    const signers = (request.signatures ?? []).map((s) => s.index).sort((a, b) => a - b);
    active.gate = new PhaseGate(signers, Math.max(config.deadlines.unmask, Date.now() + d.unmaskMs));
    // Each device gets the sets and the signatures of its own neighbourhood (those it checks).
    const unmaskOf = ctx.hub.encodeUnmaskRequests(ref, request.survivors, request.dropouts, request.signatures ?? [], (i) => active.secagg.neighbourhood(i));
    for (const [n, i] of signers.entries()) {
      if (!ctx.hub.send(deviceOf(i), unmaskOf(i))) active.gate.settle(i);
      await breathe(n);
    }
    await active.gate.done;
    await boundary(ctx, run.runId, signal);
    counts.unmasked = active.answered.unmask.size;
    counts.dropouts.unmask = request.survivors.length - counts.unmasked;
    let sum;
    try {
      sum = active.secagg.finish();
    } finally {
      // Wrong shares were corrected (or made the round abort): their senders are named either way.
      await nameCulprits(ctx, active);
    }
    active.phase = "finished";

    // Decode the noised sum, average over the survivors, apply the server optimizer.
    const survivors = request.survivors;
    const dp = calibrateDistributedDp(dpInputsFor(config));
    // An aggregate no honest run can produce (corrupt share, unclipped input) is never applied.
    const impossible = impossibleAggregate(sum, dp, survivors.length);
    if (impossible) throw new SecAggError("ABORTED", `aggregate refused: ${impossible}`);
    const deltaSum = decodeAggregate(sum, dp);
    const meanDelta = new Float32Array(dim);
    // Uniform weighting: every survivor's delta is clipped to the same norm C, which is what
    // the sensitivity analysis assumes; weighting by example counts would let one device's
    // weight (and so its influence) exceed C / |survivors|.
    for (let i = 0; i < dim; i++) meanDelta[i] = deltaSum[i]! / survivors.length;
    // Adaptive clipping: b̄ from the summed clip bits, and the next round's C (recorded in the ledger).
    const clipUpdate = adaptClip(spec, dp, sum, survivors.length);
    if (clipUpdate && base.privacy) base.privacy.adaptiveClip = clipUpdate;
    // Never a non-finite global model: a NaN/∞ aggregate or step aborts this attempt (issue #13).
    const next = applyServerUpdateChecked(
      serverStateFromJson(current.serverState),
      current.weights,
      meanDelta,
      { optimizer: spec.serverOptimizer, learningRate: spec.serverLearningRate, momentum: spec.serverMomentum },
    );
    const hashAfter = weightsHash(next.weights);
    const record: RoundRecord = {
      ...base,
      status: "completed",
      survivors: survivors.length,
      modelHashAfter: hashAfter,
      detail: `${survivors.length} of ${cohort.length} devices survived`,
      endedAt: Date.now(),
    };
    const commit: RoundCommit = {
      record,
      cohort: cohortIds,
      survivors: survivors.map(deviceOf),
      declines: Object.fromEntries([...active.declines].map(([i, r]) => [deviceOf(i), r])),
      event: roundEvent(dp),
      attestations: survivors
        .map((i) => active.attestations.get(i))
        .filter((a): a is Attestation => a !== undefined)
        .map((a) => ({ deviceId: a.deviceId, identityPublicKey: a.identityPublicKey, body: a.body, signature: Buffer.from(a.signature).toString("base64") })),
    };
    // The last boundary: a cancel that arrives before the commit point is never released.
    await boundary(ctx, run.runId, signal);
    // The commit point: the checkpoint directory, carrying its commit record, is renamed into
    // place atomically. Ledger, LATEST and Redis follow (and are redone after a crash).
    faultpoint("checkpoint-write", round);
    await ctx.checkpoints.write(run.runId, round, spec.model, next.weights, { ...serverStateToJson(next.state), ...(clipUpdate ? { clip: clipUpdate.nextClip } : {}) }, commit);
    committed = true;
    failpoint("after-checkpoint", round);
    await ctx.commit(run.runId, round);
    for (const m of cohort) ctx.hub.send(deviceOf(m.index), { outcome: { ref, status: "completed", modelHash: hashAfter, detail: record.detail, survivors: survivors.length } });
    return { status: "completed", record };
  } catch (err) {
    if (committed) throw new PublishError(`round ${round} of run ${run.runId} is committed, but publishing it failed: ${describe(err)}`, { cause: err });
    const phase = active.phase;
    active.phase = "finished";
    const cause = causeOf(err);
    const status = cause === "cancelled" ? "cancelled" : "aborted";
    const detail =
      cause === "secagg" ? `secure aggregation aborted in phase ${phase}: ${describe(err)}`
      : cause === "error" ? `error in phase ${phase}: ${describe(err)}`
      : `${describe(err)} during phase ${phase}`;
    const res = ended(status, cause, detail, cohortIds, Object.fromEntries([...active.declines].map(([i, r]) => [deviceOf(i), r])));
    for (const m of cohort) ctx.hub.send(deviceOf(m.index), { outcome: { ref, status, modelHash: current.hash, detail, survivors: 0 } });
    return res;
  } finally {
    signal.removeEventListener("abort", endPhase);
    active.gate?.finish();
    ctx.hub.off("disconnect", onDisconnect);
    ctx.active.delete(active.key);
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
