/**
 * On-device personalization: the device predicts with the global model combined with its own
 * bigram statistics (which action follows which, counted on its own training windows). Nothing
 * here ever leaves the device; the global model stays the same for everyone.
 *
 * The combination treats the global model's distribution as a Dirichlet prior of strength α
 * over the device's bigram counts for the current last action:
 *   p(next | prev) = (count(prev, next) + α · p_global(next)) / (count(prev) + α)
 * so an action the device has seen often after `prev` is trusted, and a context the device has
 * never seen falls back to the global model. Pure functions.
 */
import type { Examples } from "./examples.ts";

/** The device's own bigram counts: prev id → (next id → count), plus count(prev). */
export interface LocalBigram {
  readonly next: Map<number, Map<number, number>>;
  readonly total: Map<number, number>;
}

/**
 * Default prior strength α, chosen on held-out data carved from devactions-large (last 30 % of
 * each device; bench/RESULTS.md): top-3 with the public model 0.690 at α ≤ 1, 0.691 at 2,
 * 0.694 at 4, 0.694 at 8, 0.690 at 16. Backing off to the device's unigram counts lowered it.
 */
export const DEFAULT_PERSONALIZATION_STRENGTH = 8;

export class PersonalizationError extends Error {
  override name = "PersonalizationError";
}

/** Counts (last context id → target id) over a device's own training windows. */
export function localBigram(ex: Examples, window: number): LocalBigram {
  const next = new Map<number, Map<number, number>>();
  const total = new Map<number, number>();
  for (let r = 0; r < ex.count; r++) {
    const prev = ex.x[r * window + window - 1]!;
    const y = ex.y[r]!;
    let row = next.get(prev);
    if (!row) {
      row = new Map();
      next.set(prev, row);
    }
    row.set(y, (row.get(y) ?? 0) + 1);
    total.set(prev, (total.get(prev) ?? 0) + 1);
  }
  return { next, total };
}

/**
 * Mixes the global distribution with the device's bigram for `prev`, in place. `alpha` is the
 * prior strength (> 0): large α → the global model, small α → the device's own counts.
 */
export function personalizeInPlace(probs: Float64Array, bigram: LocalBigram, prev: number, alpha: number): Float64Array {
  if (!(alpha > 0) || !Number.isFinite(alpha)) throw new PersonalizationError(`personalization strength α must be a positive finite number, got ${alpha}`);
  const n = bigram.total.get(prev) ?? 0;
  if (n === 0) return probs;
  const scale = alpha / (n + alpha);
  for (let v = 0; v < probs.length; v++) probs[v] = probs[v]! * scale;
  for (const [y, c] of bigram.next.get(prev)!) {
    if (y < probs.length) probs[y] = probs[y]! + c / (n + alpha);
  }
  return probs;
}
