/**
 * A device's evaluation of the global model on its held-out windows: one forward pass, tallied
 * into counts (eval-counts.ts). Runs on the device (or a simulated one); only the counts leave.
 */
import type { Examples } from "../model/examples.ts";
import { EvalTally, type EvalCounts } from "./eval-counts.ts";

/** How many entries rank strictly above entry y, capped at 3 (ties: lower index first, as tf.topk). */
export function rankOf(p: ArrayLike<number>, y: number): number {
  const py = p[y]!;
  // A diverged model's probabilities are NaN, and no comparison with NaN is true: without this
  // every target would rank first and the model would score 100 % (a centralized baseline did).
  if (Number.isNaN(py)) return 3;
  let above = 0;
  for (let v = 0; v < p.length; v++) {
    const pv = p[v]!;
    if (pv > py || (pv === py && v < y)) {
      above += 1;
      if (above >= 3) return 3;
    }
  }
  return above;
}

/** The part of a Trainer evaluation needs (keeps this module free of tfjs). */
export interface DistributionSource {
  setWeights(w: Float32Array): void;
  forEachDistribution(ex: Examples, fn: (row: number, probs: Float64Array) => void): void;
}

export function evaluateLocally(model: DistributionSource, weights: Float32Array, ex: Examples): EvalCounts {
  const tally = new EvalTally();
  if (ex.count > 0) {
    model.setWeights(weights);
    // −ln p with the central evaluation's floor (simulation/evaluation.ts), then capped by the tally.
    model.forEachDistribution(ex, (row, probs) => tally.add(rankOf(probs, ex.y[row]!), -Math.log(Math.max(probs[ex.y[row]!]!, 1e-30))));
  }
  return tally.counts();
}
