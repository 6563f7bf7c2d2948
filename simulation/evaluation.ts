/**
 * Held-out evaluation of a global model: next-action top-1/top-3 accuracy micro-averaged over
 * events and macro-averaged over users (each eval file counts once), plus mean loss.
 */
import type { Examples, Trainer } from "../shared/model/index.ts";

export interface EvalSet {
  userId: string;
  examples: Examples;
}

export interface EvalMetrics {
  loss: number;
  top1Micro: number;
  top3Micro: number;
  top1Macro: number;
  top3Macro: number;
  events: number;
  users: number;
}

export async function evaluateSets(trainer: Trainer, weights: Float32Array, sets: readonly EvalSet[]): Promise<EvalMetrics> {
  trainer.setWeights(weights);
  let n = 0;
  let loss = 0;
  let hit1 = 0;
  let hit3 = 0;
  let macro1 = 0;
  let macro3 = 0;
  let users = 0;
  for (const s of sets) {
    if (s.examples.count === 0) continue;
    const r = await trainer.evaluate(s.examples);
    n += r.count;
    loss += r.loss * r.count;
    hit1 += r.top1 * r.count;
    hit3 += r.top3 * r.count;
    macro1 += r.top1;
    macro3 += r.top3;
    users += 1;
  }
  return {
    loss: n ? loss / n : NaN,
    top1Micro: n ? hit1 / n : 0,
    top3Micro: n ? hit3 / n : 0,
    top1Macro: users ? macro1 / users : 0,
    top3Macro: users ? macro3 / users : 0,
    events: n,
    users,
  };
}
