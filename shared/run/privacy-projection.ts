/**
 * The privacy a run's spec implies before it starts: the per-round event of one participating
 * device, device ε if a device joined every round, and population ε under the claimed
 * fixed-size sampling without replacement of cohortSize out of populationSize (the best case:
 * the ledger later records how many devices were actually eligible each round). Used by the launch policy check and the CLI.
 */
import { calibrateDistributedDp, deviceEpsilon, projectedPopulationEpsilon, roundEvent, type DpEvent } from "../dp/index.ts";
import { parameterCount } from "../model/spec.ts";
import type { RunSpec } from "./run-spec.ts";
import { corruptCount } from "../secagg/params.ts";

export interface RunProjection {
  perRound: DpEvent;
  deviceEpsilon: number;
  populationEpsilon: number;
  samplingProbability: number;
  delta: number;
}

export function perRoundEvent(spec: RunSpec): DpEvent {
  const cfg = calibrateDistributedDp({
    mechanism: spec.mechanism,
    clip: spec.clip,
    noiseMultiplier: spec.noiseMultiplier,
    minSurvivors: spec.minSurvivors,
    expectedSurvivors: spec.cohortSize,
    colluders: corruptCount(spec.cohortSize, spec.corruptTolerance),
    bits: spec.bits,
    dimension: parameterCount(spec.model),
    rotationSeed: new Uint8Array(32),
    // With adaptive clipping the round also releases the clip count: its cost is in the event.
    ...(spec.adaptiveClip ? { adaptiveClip: { countStddev: spec.adaptiveClip.countStddev } } : {}),
  });
  return roundEvent(cfg);
}

export function projectRun(spec: RunSpec, delta = spec.delta): RunProjection {
  const perRound = perRoundEvent(spec);
  const q = spec.cohortSize / spec.populationSize;
  const noNoise = spec.noiseMultiplier === 0;
  return {
    perRound,
    deviceEpsilon: noNoise ? Infinity : deviceEpsilon(Array.from({ length: spec.rounds }, () => perRound), delta),
    // Cohorts are drawn at fixed size without replacement; at best from populationSize devices.
    populationEpsilon: noNoise ? Infinity : projectedPopulationEpsilon({ event: perRound, eligible: spec.populationSize, cohort: spec.cohortSize }, spec.rounds, delta),
    samplingProbability: q,
    delta,
  };
}
