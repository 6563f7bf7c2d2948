/**
 * What both sides derive from a signed RoundConfig for the DP encoding: the calibration inputs
 * (identical on every device and on the coordinator, so all agree on γ, σ² and the rotation)
 * and the length of the vector that secure aggregation sums (the rotation pads to a power of 2).
 */
import { calibrateDistributedDp, paddedDimension, roundEvent, type CalibrateInput, type DpEvent } from "../dp/index.ts";
import { calibrateEvalDp, evalDpEvent, EVAL_VECTOR_LENGTH, type EvalDpConfig } from "../eval/index.ts";
import type { RoundConfig } from "./round-config.ts";

export function dpInputsFor(cfg: RoundConfig): CalibrateInput {
  return {
    mechanism: cfg.dp.mechanism,
    clip: cfg.dp.clip,
    noiseMultiplier: cfg.dp.noiseMultiplier,
    minSurvivors: cfg.dp.minSurvivors,
    expectedSurvivors: cfg.dp.expectedSurvivors,
    colluders: cfg.dp.colluders,
    bits: cfg.secagg.bits,
    dimension: cfg.parameterCount,
    rotationSeed: Buffer.from(cfg.dp.rotationSeed, "base64"),
    ...(cfg.dp.adaptiveClip ? { adaptiveClip: { countStddev: cfg.dp.adaptiveClip.countStddev } } : {}),
  };
}

/**
 * The vector secure aggregation sums: an evaluation round's counts, or the padded update plus
 * the clip-count coordinate when the round clips adaptively. (A caller without the dp block —
 * the wire-size caps — gets the padded length; their headroom covers the one extra value.)
 */
export function aggregationLength(cfg: Pick<RoundConfig, "parameterCount" | "evaluation"> & { dp?: { adaptiveClip?: unknown } }): number {
  if (cfg.evaluation) return EVAL_VECTOR_LENGTH;
  return paddedDimension(cfg.parameterCount) + (cfg.dp?.adaptiveClip ? 1 : 0);
}

/** An evaluation round's count bounds and noise, identical on every device and the coordinator. */
export function evalDpFor(cfg: RoundConfig): EvalDpConfig {
  if (!cfg.evaluation) throw new Error(`round ${cfg.round} of run ${cfg.runId} is not an evaluation round`);
  return calibrateEvalDp({
    maxExamples: cfg.evaluation.maxExamplesPerDevice,
    noiseMultiplier: cfg.evaluation.noiseMultiplier,
    minSurvivors: cfg.dp.minSurvivors,
    colluders: cfg.dp.colluders,
    maxSummands: cfg.dp.expectedSurvivors,
    bits: cfg.secagg.bits,
  });
}

/** What one participating device is charged for this round: its training or its evaluation noise. */
export function roundDpEvent(cfg: RoundConfig): DpEvent {
  return cfg.evaluation ? evalDpEvent(evalDpFor(cfg)) : roundEvent(calibrateDistributedDp(dpInputsFor(cfg)));
}
