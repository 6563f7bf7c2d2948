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
    ...(cfg.dp.adaptiveClip ? { adaptiveClip: { countStddev: cfg.dp.adaptiveClip.countStddev } } : {}),
  };
}

/**
 * The padded update, plus the clip-count coordinate when the round clips adaptively. (A caller
 * without the dp block — the wire-size caps — gets the padded length; their headroom covers
 * the one extra value.)
 */
export function aggregationLength(cfg: Pick<RoundConfig, "parameterCount"> & { dp?: { adaptiveClip?: unknown } }): number {
  return paddedDimension(cfg.parameterCount) + (cfg.dp?.adaptiveClip ? 1 : 0);
}
