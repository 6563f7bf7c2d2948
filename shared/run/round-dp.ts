/**
 * What both sides derive from a signed RoundConfig for the DP encoding: the calibration inputs
 * (identical on every device and on the coordinator, so all agree on γ, σ² and the rotation)
 * and the length of the vector that secure aggregation sums (the rotation pads to a power of 2).
 */
import { paddedDimension, type CalibrateInput } from "../dp/index.ts";
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
  };
}

export function aggregationLength(cfg: Pick<RoundConfig, "parameterCount">): number {
  return paddedDimension(cfg.parameterCount);
}
