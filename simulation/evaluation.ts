/**
 * Held-out evaluation of a global model: next-action top-1/top-3 accuracy micro-averaged over
 * events and macro-averaged over users (each eval file counts once), plus mean loss — for the
 * global model alone and personalized on each device (the global distribution combined with the
 * device's own context counts and its recent actions, shared/model/personalize.ts). One forward
 * pass serves both.
 */
import { applyMixture, DEFAULT_PERSONALIZATION, mixWithAnchor, PersonalizationError, personalMixture, ReleaseMixError, validateFederatedWeight, validatePersonalization, type Examples, type LocalCounts, type PersonalizationConfig, type Trainer } from "../shared/model/index.ts";

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

/**
 * The public (initial) model's distributions on every eval set, recorded once while it is
 * evaluated as the public-only baseline: the released mixture needs them in every round, and the
 * public model never changes, so one forward pass serves the whole run (Float32, V per event).
 */
export class AnchorDistributions {
  private readonly byUser = new Map<string, { events: number; rows: Float32Array }>();

  constructor(private readonly outputs: number) {}

  /** A recorder for `s`'s rows, in the order forEachDistribution visits them. */
  recorder(s: EvalSet): (row: number, probs: Float64Array) => void {
    const rows = new Float32Array(s.examples.count * this.outputs);
    this.byUser.set(s.userId, { events: s.examples.count, rows });
    return (row, probs) => rows.set(probs, row * this.outputs);
  }

  /**
   * `s`'s recorded distributions, one row of `outputs` per event, checked once per set so that the
   * per-event mixing only slices.
   */
  rowsFor(s: EvalSet): (row: number) => Float32Array {
    const recorded = this.byUser.get(s.userId);
    if (!recorded) throw new ReleaseMixError(`eval set ${s.userId}: the public model's distributions were not recorded`);
    // Another eval set under the same user would be mixed with the wrong rows.
    if (recorded.events !== s.examples.count) throw new ReleaseMixError(`eval set ${s.userId}: ${s.examples.count} events, the public model's distributions were recorded for ${recorded.events}`);
    const { rows } = recorded;
    const V = this.outputs;
    return (row) => rows.subarray(row * V, (row + 1) * V);
  }
}

/** How a run releases its model: mixed with the public model (shared/model/release-mix.ts). */
export interface ReleaseMix {
  anchor: AnchorDistributions;
  /** w in p = (1 − w)·p_public + w·p_federated. */
  federatedWeight: number;
}

export interface EvaluationOptions {
  /** Evaluate the released mixture; the federated model alone is reported as `evalFederatedOnly`. */
  mix?: ReleaseMix;
  /** Record these weights' distributions as the anchor of later mixtures (the public-only pass). */
  record?: AnchorDistributions;
}

export interface Evaluation {
  eval: EvalMetrics;
  evalPersonalized: EvalMetrics;
  /** The federated model alone, when the released predictor is a mixture. */
  evalFederatedOnly?: EvalMetrics;
}

/** Global and personalized metrics of `weights` on every eval set, personalized as `personalization` says. */
export function evaluateModel(trainer: Trainer, weights: Float32Array, sets: readonly EvalSet[], personalization: PersonalizationConfig = DEFAULT_PERSONALIZATION, options: EvaluationOptions = {}): Evaluation {
  const e = new ModelEvaluation(trainer, weights, personalization, options);
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
export async function evaluateModelYielding(trainer: Trainer, weights: Float32Array, sets: readonly EvalSet[], personalization: PersonalizationConfig = DEFAULT_PERSONALIZATION, options: EvaluationOptions = {}): Promise<Evaluation> {
  const e = new ModelEvaluation(trainer, weights, personalization, options);
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
  private readonly federatedOnly = new Tally();

  constructor(
    private readonly trainer: Trainer,
    weights: Float32Array,
    private readonly personalization: PersonalizationConfig,
    private readonly options: EvaluationOptions,
  ) {
    validatePersonalization(personalization);
    if (options.mix) validateFederatedWeight(options.mix.federatedWeight);
    trainer.setWeights(weights);
  }

  visitor(s: EvalSet): (row: number, probs: Float64Array) => void {
    const T = this.trainer.spec.window;
    if (s.local && s.local.window !== T) throw new PersonalizationError(`eval set ${s.userId}: local counts use window ${s.local.window}, the model ${T}`);
    const ex = s.examples;
    const record = this.options.record?.recorder(s);
    const mix = this.options.mix;
    const anchorRow = mix?.anchor.rowsFor(s);
    return (row, probs) => {
      const y = ex.y[row]!;
      record?.(row, probs);
      if (mix) {
        this.federatedOnly.add(probs, y);
        mixWithAnchor(probs, anchorRow!(row), mix.federatedWeight);
      }
      this.global.add(probs, y);
      if (s.local) applyMixture(probs, personalMixture(s.local, ex.x, row, this.personalization));
      this.personal.add(probs, y);
    };
  }

  /** Closes the current eval set (its user counts once in the macro averages). */
  endSet(): void {
    this.global.endUser();
    this.personal.endUser();
    this.federatedOnly.endUser();
  }

  metrics(): Evaluation {
    return { eval: this.global.metrics(), evalPersonalized: this.personal.metrics(), ...(this.options.mix ? { evalFederatedOnly: this.federatedOnly.metrics() } : {}) };
  }
}

/** Global metrics only (kept for callers that do not personalize). */
export async function evaluateSets(trainer: Trainer, weights: Float32Array, sets: readonly EvalSet[]): Promise<EvalMetrics> {
  return evaluateModel(trainer, weights, sets.map((s) => ({ userId: s.userId, examples: s.examples }))).eval;
}
