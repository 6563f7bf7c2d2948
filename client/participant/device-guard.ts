/**
 * The device guard: before a device spends any budget on a round it checks the coordinator's
 * signed round parameters against the limits its person consented to. A refusal is a normal,
 * typed decline (the round goes on without this device), never an exception.
 */
import type { DpEvent } from "../../shared/dp/index.ts";
import { deviceEpsilon } from "../../shared/dp/index.ts";
import type { RoundConfig } from "../../shared/run/index.ts";
import { checkSecAggFloors, corruptCount, type ThreatRates } from "../../shared/secagg/index.ts";

/**
 * The dropout and collusion rates a device accepts unless its person set others: secure
 * aggregation must hold against a malicious coordinator colluding with this fraction of the
 * cohort (the coordinator issues enrollment tokens, so colluders can be its own sybils).
 */
export const DEFAULT_SECAGG_RATES: ThreatRates = { dropoutFraction: 0.1, corruptFraction: 0.1 };

export interface DeviceLimits {
  maxDeviceEpsilon: number;
  delta: number;
  minNoiseMultiplier: number;
  minSurvivors: number;
  /** Signal kinds the person allowed; a round that trains on other kinds is declined. */
  signals?: readonly string[];
  /** Rates the SecAgg floors are computed for (DEFAULT_SECAGG_RATES when absent). */
  secagg?: ThreatRates;
}

export type GuardDecision =
  | { ok: true; projectedEpsilon: number }
  | { ok: false; code: "NOISE_TOO_LOW" | "TOO_FEW_SURVIVORS" | "BUDGET_EXHAUSTED" | "SIGNAL_NOT_CONSENTED" | "DELTA_TOO_LARGE" | "SECAGG_BELOW_FLOOR" | "NOISE_IGNORES_COLLUDERS"; reason: string; projectedEpsilon?: number };

export function checkRound(cfg: RoundConfig, roundEvent: DpEvent, spent: readonly DpEvent[], limits: DeviceLimits): GuardDecision {
  if (cfg.dp.noiseMultiplier < limits.minNoiseMultiplier) {
    return { ok: false, code: "NOISE_TOO_LOW", reason: `noise multiplier ${cfg.dp.noiseMultiplier} is below this device's minimum ${limits.minNoiseMultiplier}` };
  }
  if (cfg.dp.minSurvivors < limits.minSurvivors) {
    return { ok: false, code: "TOO_FEW_SURVIVORS", reason: `minSurvivors ${cfg.dp.minSurvivors} is below this device's minimum ${limits.minSurvivors}` };
  }
  // Bell et al.'s malicious-coordinator floors, recomputed here from the round's n: a threshold
  // or degree below them would let an equivocating coordinator unmask one device's input.
  const floor = checkSecAggFloors({ cohortSize: cfg.cohort.size, threshold: cfg.secagg.threshold, degree: cfg.secagg.degree }, limits.secagg ?? DEFAULT_SECAGG_RATES);
  if (floor) return { ok: false, code: "SECAGG_BELOW_FLOOR", reason: floor };
  // Colluders can leave their noise out: the round's σ² must be sized for the honest survivors.
  const rates = limits.secagg ?? DEFAULT_SECAGG_RATES;
  const colluders = corruptCount(cfg.cohort.size, rates.corruptFraction);
  if (!((cfg.dp.colluders ?? 0) >= colluders)) {
    return { ok: false, code: "NOISE_IGNORES_COLLUDERS", reason: `the round's noise counts on all but ${cfg.dp.colluders ?? 0} survivors; this device assumes up to ${colluders} of ${cfg.cohort.size} collude` };
  }
  if (cfg.dp.delta > limits.delta) {
    return { ok: false, code: "DELTA_TOO_LARGE", reason: `run delta ${cfg.dp.delta} exceeds this device's delta ${limits.delta}` };
  }
  if (limits.signals) {
    const missing = cfg.signals.filter((s) => !limits.signals!.includes(s));
    if (missing.length > 0) return { ok: false, code: "SIGNAL_NOT_CONSENTED", reason: `round uses signals not consented to: ${missing.join(", ")}` };
  }
  // Device ε is computed without amplification over every round this device joined, plus this one.
  const projected = deviceEpsilon([...spent, roundEvent], limits.delta);
  if (!(projected <= limits.maxDeviceEpsilon)) {
    return { ok: false, code: "BUDGET_EXHAUSTED", reason: `joining would bring device ε to ${projected.toFixed(3)} > limit ${limits.maxDeviceEpsilon} at δ=${limits.delta}`, projectedEpsilon: projected };
  }
  return { ok: true, projectedEpsilon: projected };
}
