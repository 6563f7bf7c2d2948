/**
 * The two figures Tacit shows wherever ε appears:
 * - device ε: composition of the round events of the rounds a device actually joined, no
 *   amplification — what the device and a reviewer can compute alone;
 * - population ε: the same per-round events amplified by the sampling the coordinator claims.
 *   The coordinator draws a fixed-size cohort without replacement from the devices eligible at
 *   that moment, and the ledger records that count per round; `populationEpsilonFixedSize`
 *   accounts exactly that scheme (dp_accounting's SampledWithoutReplacementDpEvent). It rests on
 *   the coordinator sampling honestly, and protects against no one who knows the cohort (the
 *   coordinator itself, readers of the ledger).
 */
import { equivalentNoiseMultiplier } from "./pld/pld-accountant.ts";
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

/**
 * One device-level round event under *replace-one* adjacency, as a Gaussian: the analysis of
 * sampling without replacement (Wang, Balle, Kasiviswanathan 2019; dp_accounting) is for
 * replace-one, where one device's update changes by up to 2Δ₂. For the distributed discrete
 * Gaussian the Gaussian with z = 1/√(2ρ), ρ from Prop. 14's bounds at doubled sensitivities,
 * has pointwise larger RDP at every order α ≥ 1 (ε(α) ≤ α·ρ), so it is a valid stand-in.
 */
export function replaceOneGaussian(e: DpEvent): DpEvent {
  if (e.kind === "gaussian") return { kind: "gaussian", noiseMultiplier: e.noiseMultiplier / 2 };
  if (e.kind === "distributedDiscreteGaussian") {
    return { kind: "gaussian", noiseMultiplier: equivalentNoiseMultiplier({ ...e, l2Sensitivity: 2 * e.l2Sensitivity, l1Sensitivity: 2 * e.l1Sensitivity }) };
  }
  throw new AccountantInputError(`no replace-one Gaussian for a ${e.kind} event`);
}

/**
 * Population ε for cohorts of `cohort` devices drawn without replacement from `eligible`, per
 * round. Replace-one ε also bounds zero-out ε (zeroing an update is one replacement), and
 * amplification can only lower ε, so the result is the smaller of the amplified replace-one
 * figure and the unamplified zero-out composition: a zero-out guarantee either way.
 */
export function populationEpsilonFixedSize(rounds: readonly { event: DpEvent; eligible: number; cohort: number }[], delta: number): number {
  if (rounds.length === 0) return 0;
  const unamplified = deviceEpsilon(rounds.map((r) => r.event), delta);
  const amplified = new RdpAccountant().compose({ kind: "composed", events: rounds.map(fixedSizeSampled) }).getEpsilon(delta);
  return Math.min(amplified, unamplified);
}

/** `populationEpsilonFixedSize` for `rounds` identical rounds (a launch projection). */
export function projectedPopulationEpsilon(r: { event: DpEvent; eligible: number; cohort: number }, rounds: number, delta: number): number {
  if (rounds === 0) return 0;
  const unamplified = new RdpAccountant().compose({ kind: "selfComposed", count: rounds, event: r.event }).getEpsilon(delta);
  const amplified = new RdpAccountant().compose({ kind: "selfComposed", count: rounds, event: fixedSizeSampled(r) }).getEpsilon(delta);
  return Math.min(amplified, unamplified);
}

/** One round as dp_accounting's SampledWithoutReplacementDpEvent over its replace-one Gaussian. */
function fixedSizeSampled(r: { event: DpEvent; eligible: number; cohort: number }): DpEvent {
  if (!(Number.isInteger(r.eligible) && Number.isInteger(r.cohort) && r.cohort >= 1 && r.cohort <= r.eligible)) throw new AccountantInputError(`a cohort of ${r.cohort} cannot be drawn from ${r.eligible} eligible devices`);
  return { kind: "sampledWithoutReplacement", sourceDatasetSize: r.eligible, sampleSize: r.cohort, event: replaceOneGaussian(r.event) };
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
