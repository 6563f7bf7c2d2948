/**
 * What a device reveals about the global model in a federated evaluation round: counts only,
 * as a small vector of non-negative integers that secure aggregation sums. Nothing per example
 * (no token, no prediction) leaves the device; the coordinator sees only the cohort's sum.
 *
 * Layout (fixed; both sides and the ledger agree on it by this constant):
 *   [examples, top-1 hits, top-3 hits, summed loss, Σ own top-1 accuracy, Σ own top-3 accuracy, devices]
 * Integers so that the sum is exact: loss in units of 1/LOSS_UNITS_PER_NAT nat with every example's
 * loss capped at LOSS_CAP_NATS (a device's contribution must be bounded for the DP sensitivity and
 * the modulus), a device's own accuracy (a fraction, for the per-user macro average) in units of
 * 1/MACRO_SCALE, and `devices` = 1 for a device that had held-out examples (the macro denominator).
 */
export const EVAL_FIELDS = ["examples", "top1", "top3", "loss", "macroTop1", "macroTop3", "devices"] as const;
export const EVAL_VECTOR_LENGTH = EVAL_FIELDS.length;
/** Per-example loss cap (nats): −ln p for p ≥ e^−16 ≈ 1.1e−7, far below a 1,024-bucket uniform guess (6.9). */
export const LOSS_CAP_NATS = 16;
/** Fixed-point units per nat for the device's summed loss (its rounding error is ≤ ½ unit per device). */
export const LOSS_UNITS_PER_NAT = 1;
/** Fixed-point units for one device's own accuracy in [0, 1] (rounding ≤ ½ unit per device). */
export const MACRO_SCALE = 1000;

export class EvalCountsError extends Error {
  override name = "EvalCountsError";
}

/** One number per field of the evaluation vector, named as in EVAL_FIELDS (the layout above). */
export type EvalFieldValues = Record<(typeof EVAL_FIELDS)[number], number>;

/** One device's evaluation, in real units (loss in nats, macro terms as fractions). */
export type EvalCounts = EvalFieldValues;

/**
 * Tallies one device's held-out predictions. `rank` is how many classes rank above the target
 * (0 = top-1 hit; 3 means "3 or more"), `loss` is −ln p(target), capped here at LOSS_CAP_NATS.
 */
export class EvalTally {
  private n = 0;
  private hit1 = 0;
  private hit3 = 0;
  private loss = 0;

  add(rank: number, loss: number): void {
    if (!(rank >= 0) || !Number.isInteger(rank)) throw new EvalCountsError(`rank must be a non-negative integer, got ${rank}`);
    if (!(loss >= 0)) throw new EvalCountsError(`loss must be ≥ 0, got ${loss}`);
    this.n += 1;
    if (rank === 0) this.hit1 += 1;
    if (rank < 3) this.hit3 += 1;
    this.loss += Math.min(loss, LOSS_CAP_NATS);
  }

  counts(): EvalCounts {
    const n = this.n;
    return { examples: n, top1: this.hit1, top3: this.hit3, loss: this.loss, macroTop1: n ? this.hit1 / n : 0, macroTop3: n ? this.hit3 / n : 0, devices: n ? 1 : 0 };
  }
}

/** The largest value one device may put in each coordinate (its DP sensitivity and modulus share). */
export function maxContribution(maxExamples: number): number[] {
  if (!Number.isInteger(maxExamples) || maxExamples < 1) throw new EvalCountsError(`maxExamples must be a positive integer, got ${maxExamples}`);
  return [maxExamples, maxExamples, maxExamples, maxExamples * LOSS_CAP_NATS * LOSS_UNITS_PER_NAT, MACRO_SCALE, MACRO_SCALE, 1];
}

/**
 * A device's counts as the integer vector it contributes, checked against the round's bounds:
 * a device whose evaluation produced something impossible (more hits than examples, more
 * examples than the round allows) refuses to send it rather than corrupt everyone's sum.
 */
export function encodeEvalCounts(c: EvalCounts, maxExamples: number): number[] {
  const max = maxContribution(maxExamples);
  const v = [
    c.examples,
    c.top1,
    c.top3,
    Math.round(Math.min(c.loss, c.examples * LOSS_CAP_NATS) * LOSS_UNITS_PER_NAT),
    Math.round(c.macroTop1 * MACRO_SCALE),
    Math.round(c.macroTop3 * MACRO_SCALE),
    c.devices,
  ];
  v.forEach((x, i) => {
    if (!Number.isSafeInteger(x) || x < 0 || x > max[i]!) throw new EvalCountsError(`${EVAL_FIELDS[i]} = ${x} is outside [0, ${max[i]}]`);
  });
  if (!(c.top1 <= c.top3 && c.top3 <= c.examples)) throw new EvalCountsError(`hits must satisfy top1 ≤ top3 ≤ examples, got ${c.top1}, ${c.top3}, ${c.examples}`);
  if (c.devices !== (c.examples > 0 ? 1 : 0)) throw new EvalCountsError(`devices must be 1 exactly when the device has held-out examples, got ${c.devices} with ${c.examples} examples`);
  return v;
}

/** The summed counts as metrics; `signed` is the aggregate after unmasking (noise included, if any). */
export type FederatedEvalSums = EvalFieldValues;

export function sumsFromVector(signed: ArrayLike<number>): FederatedEvalSums {
  if (signed.length !== EVAL_VECTOR_LENGTH) throw new EvalCountsError(`evaluation aggregate has ${signed.length} values, expected ${EVAL_VECTOR_LENGTH}`);
  return {
    examples: signed[0]!,
    top1: signed[1]!,
    top3: signed[2]!,
    loss: signed[3]! / LOSS_UNITS_PER_NAT,
    macroTop1: signed[4]! / MACRO_SCALE,
    macroTop3: signed[5]! / MACRO_SCALE,
    devices: signed[6]!,
  };
}

/** Accuracy and mean loss from the sums (the same definitions as simulation/evaluation.ts). */
export function metricsFromSums(s: FederatedEvalSums): { top1Micro: number; top3Micro: number; loss: number; top1Macro: number; top3Macro: number; events: number; users: number } {
  // Noise can push a small count to 0 or below: report 0 rather than a division by ≤ 0.
  const n = s.examples > 0 ? s.examples : 0;
  const u = s.devices > 0 ? s.devices : 0;
  return {
    top1Micro: n ? s.top1 / n : 0,
    top3Micro: n ? s.top3 / n : 0,
    loss: n ? s.loss / n : NaN,
    top1Macro: u ? s.macroTop1 / u : 0,
    top3Macro: u ? s.macroTop3 / u : 0,
    events: s.examples,
    users: s.devices,
  };
}
