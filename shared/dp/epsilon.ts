/**
 * The two figures Tacit shows wherever ε appears:
 * - device ε: composition of the round events of the rounds a device actually joined, no
 *   amplification — what the device and a reviewer can compute alone;
 * - population ε: the same per-round event amplified by Poisson sampling at the rate the
 *   coordinator claims (cohort / population). It rests on that claim (uniform selection).
 */
import type { DpEvent } from "./events.ts";
import { RdpAccountant } from "./rdp-accountant.ts";
import { PldAccountant } from "./pld/pld-accountant.ts";
import { AccountantInputError, type PrivacyAccountant } from "./accountant.ts";

export function makeAccountant(kind: "rdp" | "pld"): PrivacyAccountant {
  if (kind === "rdp") return new RdpAccountant();
  if (kind === "pld") return new PldAccountant();
  throw new AccountantInputError(`unknown accountant '${String(kind)}' (rdp or pld)`);
}

export function deviceEpsilon(events: readonly DpEvent[], delta: number, accountant: "rdp" | "pld" = "rdp"): number {
  if (events.length === 0) return 0;
  const acc = makeAccountant(accountant);
  for (const e of events) acc.compose(e);
  return acc.getEpsilon(delta);
}

/**
 * Population ε: every round amplified by the Poisson sampling rate the coordinator claims.
 * `perRound` is one event repeated `rounds` times (a projection), or the list of the events the
 * completed rounds actually ran (a ledger), whose mechanisms may differ from round to round.
 */
export function populationEpsilon(o: { perRound: DpEvent | readonly DpEvent[]; samplingProbability: number; rounds: number; delta: number }): number {
  const sampled = (event: DpEvent): DpEvent => ({ kind: "poissonSampled", samplingProbability: o.samplingProbability, event });
  const composed: DpEvent = Array.isArray(o.perRound)
    ? { kind: "composed", events: (o.perRound as readonly DpEvent[]).map(sampled) }
    : { kind: "selfComposed", count: o.rounds, event: sampled(o.perRound as DpEvent) };
  if ((Array.isArray(o.perRound) ? o.perRound.length : o.rounds) === 0) return 0;
  return new RdpAccountant().compose(composed).getEpsilon(o.delta);
}

/** ε of `rounds` Poisson-sampled Gaussian rounds with noise multiplier z (q = 1: no sampling). */
export function gaussianRoundsEpsilon(z: number, rounds: number, delta: number, q = 1): number {
  const g: DpEvent = { kind: "gaussian", noiseMultiplier: z };
  return new RdpAccountant().compose({ kind: "selfComposed", count: rounds, event: q < 1 ? { kind: "poissonSampled", samplingProbability: q, event: g } : g }).getEpsilon(delta);
}

/**
 * The smallest noise multiplier whose device ε after `rounds` rounds is ≤ targetEpsilon (binary
 * search in the manner of dp_accounting's `calibrate_dp_mechanism`). With `eventFor`, searches
 * over the real per-round event (e.g. the distributed discrete Gaussian with its rounding
 * inflation); otherwise over the Gaussian with the same z.
 */
export function calibrateNoiseMultiplier(o: { targetEpsilon: number; delta: number; rounds: number; samplingProbability?: number; eventFor?: (z: number) => DpEvent }): number {
  if (!(o.targetEpsilon > 0)) throw new AccountantInputError(`target ε must be positive, got ${o.targetEpsilon}`);
  const eps = (z: number): number =>
    o.eventFor
      ? z === 0
        ? Infinity
        : deviceEpsilon(Array.from({ length: o.rounds }, () => o.eventFor!(z)), o.delta)
      : gaussianRoundsEpsilon(z, o.rounds, o.delta, o.samplingProbability ?? 1);
  let lo = 0;
  let hi = 1;
  while (eps(hi) > o.targetEpsilon) {
    hi *= 2;
    if (hi > 1e6) throw new AccountantInputError(`no noise multiplier up to 1e6 reaches ε = ${o.targetEpsilon}`);
  }
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (eps(mid) > o.targetEpsilon) lo = mid;
    else hi = mid;
  }
  return hi;
}
