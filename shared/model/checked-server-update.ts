/**
 * The server update, refusing to produce a non-finite global model. A NaN/∞ global model was
 * seen once in a DP smoke run (issue #13); once published it is sent to every device, every
 * later update is NaN, and the run is lost. One NaN anywhere — the decoded aggregate, a
 * corrupted optimizer state, an overflowing step — is enough, so the aggregate and the result
 * are both checked, and the caller (coordinator/rounds/round-runner.ts) aborts the attempt
 * without writing a checkpoint: the previous model stays the run's current one.
 */
import { applyServerUpdate, type ServerOptimizerConfig, type ServerOptimizerState } from "./server-optimizer.ts";

export class NonFiniteModelError extends Error {
  override name = "NonFiniteModelError";
}

/** Index of the first NaN or ±∞ value, or −1 when every value is finite. */
export function firstNonFinite(x: ArrayLike<number>): number {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) return i;
  return -1;
}

/** `applyServerUpdate`, throwing NonFiniteModelError (naming where) instead of returning a non-finite model. */
export function applyServerUpdateChecked(
  state: ServerOptimizerState | null,
  weights: Float32Array,
  meanDelta: Float32Array,
  cfg: ServerOptimizerConfig,
): ReturnType<typeof applyServerUpdate> {
  const bad = firstNonFinite(meanDelta);
  if (bad >= 0) throw new NonFiniteModelError(`non-finite aggregate: coordinate ${bad} of the mean update is ${meanDelta[bad]}; the update is not applied and the previous checkpoint is kept`);
  const next = applyServerUpdate(state, weights, meanDelta, cfg);
  const w = firstNonFinite(next.weights);
  if (w >= 0) throw new NonFiniteModelError(`non-finite model: the ${cfg.optimizer} step makes weight ${w} ${next.weights[w]} (from ${weights[w]}); the update is not applied and the previous checkpoint is kept`);
  return next;
}
