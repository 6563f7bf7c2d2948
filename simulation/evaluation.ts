/**
 * Held-out evaluation of a global model: next-action top-1/top-3 accuracy micro-averaged over
 * events and macro-averaged over users (each eval file counts once), plus mean loss — for the
 * global model alone and personalized on each device (the global distribution combined with the
 * device's own context counts and its recent actions, shared/model/personalize.ts). One forward
 * pass serves both.
 */
import { applyMixture, DEFAULT_PERSONALIZATION, PersonalizationError, personalMixture, validatePersonalization, type Examples, type LocalCounts, type PersonalizationConfig, type Trainer } from "../shared/model/index.ts";

export interface EvalSet {
  userId: string;
  examples: Examples;
  /** The device's own statistics from its training data (never sent anywhere); absent: no personalization. */
  local?: LocalCounts;
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

import { rankOf } from "../shared/eval/evaluate-local.ts";

/** One ranking for the central and the federated evaluation (shared/eval). */
export { rankOf };

class Tally {
  private n = 0;
  private loss = 0;
  private hit1 = 0;
  private hit3 = 0;
  private macro1 = 0;
  private macro3 = 0;
  private users = 0;
  private u = { n: 0, loss: 0, hit1: 0, hit3: 0 };

  add(p: ArrayLike<number>, y: number): void {
    const r = rankOf(p, y);
    this.u.n += 1;
    this.u.loss += -Math.log(Math.max(p[y]!, 1e-30));
    if (r === 0) this.u.hit1 += 1;
    if (r < 3) this.u.hit3 += 1;
  }

  endUser(): void {
    const u = this.u;
    if (u.n > 0) {
      this.n += u.n;
      this.loss += u.loss;
      this.hit1 += u.hit1;
      this.hit3 += u.hit3;
      this.macro1 += u.hit1 / u.n;
      this.macro3 += u.hit3 / u.n;
      this.users += 1;
    }
    this.u = { n: 0, loss: 0, hit1: 0, hit3: 0 };
  }

  metrics(): EvalMetrics {
    const { n, users } = this;
    return {
      loss: n ? this.loss / n : NaN,
      top1Micro: n ? this.hit1 / n : 0,
      top3Micro: n ? this.hit3 / n : 0,
      top1Macro: users ? this.macro1 / users : 0,
      top3Macro: users ? this.macro3 / users : 0,
      events: n,
      users,
    };
  }
}

/** Global and personalized metrics of `weights` on every eval set, personalized as `personalization` says. */
export function evaluateModel(trainer: Trainer, weights: Float32Array, sets: readonly EvalSet[], personalization: PersonalizationConfig = DEFAULT_PERSONALIZATION): { eval: EvalMetrics; evalPersonalized: EvalMetrics } {
  const e = new ModelEvaluation(trainer, weights, personalization);
  for (const s of sets) {
    if (s.examples.count === 0) continue;
    trainer.forEachDistribution(s.examples, e.visitor(s));
    e.endSet();
  }
  return e.metrics();
}

/**
 * evaluateModel for a thread that must stay responsive meanwhile (the simulation's coordinator):
 * the same figures, with a macrotask turn after every forward pass.
 */
export async function evaluateModelYielding(trainer: Trainer, weights: Float32Array, sets: readonly EvalSet[], personalization: PersonalizationConfig = DEFAULT_PERSONALIZATION): Promise<{ eval: EvalMetrics; evalPersonalized: EvalMetrics }> {
  const e = new ModelEvaluation(trainer, weights, personalization);
  for (const s of sets) {
    if (s.examples.count === 0) continue;
    await trainer.forEachDistributionYielding(s.examples, e.visitor(s));
    e.endSet();
  }
  return e.metrics();
}

/** One evaluation's tallies: a visitor per eval set for the model's distributions, global and personalized. */
class ModelEvaluation {
  private readonly global = new Tally();
  private readonly personal = new Tally();

  constructor(
    private readonly trainer: Trainer,
    weights: Float32Array,
    private readonly personalization: PersonalizationConfig,
  ) {
    validatePersonalization(personalization);
    trainer.setWeights(weights);
  }

  visitor(s: EvalSet): (row: number, probs: Float64Array) => void {
    const T = this.trainer.spec.window;
    if (s.local && s.local.window !== T) throw new PersonalizationError(`eval set ${s.userId}: local counts use window ${s.local.window}, the model ${T}`);
    const ex = s.examples;
    return (row, probs) => {
      const y = ex.y[row]!;
      this.global.add(probs, y);
      if (s.local) applyMixture(probs, personalMixture(s.local, ex.x, row, this.personalization));
      this.personal.add(probs, y);
    };
  }

  /** Closes the current eval set (its user counts once in the macro averages). */
  endSet(): void {
    this.global.endUser();
    this.personal.endUser();
  }

  metrics(): { eval: EvalMetrics; evalPersonalized: EvalMetrics } {
    return { eval: this.global.metrics(), evalPersonalized: this.personal.metrics() };
  }
}

/** Global metrics only (kept for callers that do not personalize). */
export async function evaluateSets(trainer: Trainer, weights: Float32Array, sets: readonly EvalSet[]): Promise<EvalMetrics> {
  return evaluateModel(trainer, weights, sets.map((s) => ({ userId: s.userId, examples: s.examples }))).eval;
}
