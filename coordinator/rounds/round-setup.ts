/**
 * What a training round and an evaluation round both do before their first message: pick the
 * cohort from the connected devices, size SecAgg for exactly the devices invited, and fix the
 * sections of the signed config that do not depend on the kind of round.
 */
import { randomBytes } from "node:crypto";
import { chooseParams, type SecAggParams } from "../../shared/secagg/index.ts";
import { parameterCount } from "../../shared/model/index.ts";
import { CohortTree, type CohortCommitment, type Deadlines, type RoundConfig, type RunSpec } from "../../shared/run/index.ts";
import { sampleCohort } from "./cohort.ts";
import type { DeviceHub } from "./device-hub.ts";
import type { RoundContext } from "./round-context.ts";
import type { RunRecord } from "../runs/run-store.ts";
import { boundary } from "./secagg-phases.ts";

/** A device invited to the round, with the identity key its peers check its signatures with. */
export interface CohortMember {
  deviceId: string;
  identityPublicKey: string;
}

async function waitForEligible(hub: DeviceHub, want: number, deadline: number, signal: AbortSignal): Promise<string[]> {
  for (;;) {
    if (signal.aborted) throw signal.reason;
    const eligible = hub.eligibleDevices();
    if (eligible.length >= want || Date.now() >= deadline) return eligible;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Waits (up to the selection deadline) for a cohort's worth of eligible devices, then samples
 * the cohort. Only devices still enrolled are invited (a deregistered one may linger in the hub
 * for a moment), and the SecAgg sizes are chosen for exactly the devices invited.
 */
export async function selectCohort(ctx: RoundContext, run: RunRecord, signal: AbortSignal): Promise<{ eligible: string[]; members: CohortMember[] }> {
  const spec = run.spec;
  const eligible = await waitForEligible(ctx.hub, spec.cohortSize, Date.now() + spec.deadlines.selectionMs, signal);
  await boundary(ctx, run.runId, signal);
  const members: CohortMember[] = [];
  for (const deviceId of sampleCohort(eligible, spec.cohortSize)) {
    const rec = await ctx.registry.get(deviceId);
    if (rec) members.push({ deviceId, identityPublicKey: rec.identityPublicKey });
  }
  return { eligible, members };
}

/**
 * The cohort's tree, members in the order sampled (index i is `members[i]`): its commitment goes
 * into the signed config, and each member's proof travels with its invitation and its
 * neighbours' rosters. Peers see indices and identity keys only (finding L1: index → device id
 * stays with the coordinator).
 */
export function cohortTree(members: readonly CohortMember[]): CohortTree {
  return new CohortTree(members.map((m) => new Uint8Array(Buffer.from(m.identityPublicKey, "base64"))));
}

/** SecAgg's threshold, graph degree and collusion bound for a cohort of `cohortSize` under the run's tolerances. */
export function secaggParams(spec: RunSpec, cohortSize: number): SecAggParams {
  return chooseParams({ cohortSize, dropoutFraction: spec.dropoutTolerance, corruptFraction: spec.corruptTolerance, minSurvivors: spec.minSurvivors });
}

/**
 * The sections of a round's signed config that are the same for a training and an evaluation
 * round: which run, round and model, the cohort, SecAgg's sizes (with a fresh round seed every
 * attempt) and each phase's deadline.
 */
export function commonConfig(run: RunRecord, round: number, attempt: number, modelHash: string, cohort: CohortCommitment, params: SecAggParams): Omit<RoundConfig, "protocol" | "training" | "dp" | "evaluation"> {
  const spec = run.spec;
  const now = Date.now();
  return {
    runId: run.runId,
    round,
    attempt,
    modelHash,
    parameterCount: parameterCount(spec.model),
    model: spec.model,
    secagg: secaggSection(spec, params),
    signals: spec.signals,
    cohort,
    populationSize: spec.populationSize,
    deadlines: phaseDeadlines(spec.deadlines, now),
    issuedAt: now,
  };
}

function secaggSection(spec: RunSpec, params: SecAggParams): RoundConfig["secagg"] {
  return { bits: spec.bits, threshold: params.threshold, degree: params.degree, mode: params.mode, roundSeed: randomBytes(32).toString("base64"), guarantee: params.guarantee };
}

/** Each phase's absolute deadline: the phases' budgets laid end to end from `now`. */
function phaseDeadlines(d: Deadlines, now: number): RoundConfig["deadlines"] {
  return {
    advertise: now + d.advertiseMs,
    share: now + d.advertiseMs + d.shareMs,
    maskedInput: now + d.advertiseMs + d.shareMs + d.maskedInputMs,
    unmask: now + d.advertiseMs + d.shareMs + d.maskedInputMs + d.unmaskMs,
  };
}
