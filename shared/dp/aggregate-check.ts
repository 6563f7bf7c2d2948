/**
 * What a decoded aggregate can possibly be. Each honest device's rounded, rotated contribution
 * has L2 norm ≤ Δ₂ (conditional rounding guarantees it), so the survivors' signal sums to at
 * most m·Δ₂; their noise is a sum of m discrete Gaussians per coordinate, whose norm exceeds
 * √(mσ²)·(√d' + √(2·ln 2^40)) only with negligible probability (Laurent–Massart for the
 * sub-Gaussian sum; 10 % margin). A larger aggregate cannot come from the protocol run
 * honestly — a corrupt share or mask, a device that did not clip, an encoding bug — and must
 * never be applied to the model. (A modular wrap-around is not always visible in the norm; the
 * scale γ is chosen so that wraps have negligible probability, see distributed-dp.ts.)
 */
import { toSigned, type ModularVector } from "../modular/index.ts";
import type { DistributedDpConfig } from "./distributed-dp.ts";

export function aggregateNormBound(cfg: DistributedDpConfig, survivors: number): number {
  const sigma2 = Number(cfg.perDeviceVariance.num) / Number(cfg.perDeviceVariance.den);
  const noise = Math.sqrt(survivors * sigma2) * (Math.sqrt(cfg.vectorLength) + Math.sqrt(2 * 40 * Math.LN2)) * 1.1;
  // With adaptive clipping each input also carries its ±k clip-count coordinate.
  const perInput = cfg.countScale > 0 ? Math.hypot(cfg.l2Bound, cfg.countScale) : cfg.l2Bound;
  return survivors * perInput + noise + 1;
}

/** A reason when the summed encoding is impossible for `survivors` honest inputs, else undefined. */
export function impossibleAggregate(sum: ModularVector, cfg: DistributedDpConfig, survivors: number): string | undefined {
  const signed = toSigned(sum);
  let sq = 0;
  for (let i = 0; i < signed.length; i++) sq += signed[i]! * signed[i]!;
  const norm = Math.sqrt(sq);
  const bound = aggregateNormBound(cfg, survivors);
  if (!(norm <= bound)) return `the aggregate's norm ${norm.toExponential(3)} exceeds what ${survivors} clipped, noised inputs can reach (${bound.toExponential(3)})`;
  return undefined;
}
