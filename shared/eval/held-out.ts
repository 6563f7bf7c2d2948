/**
 * The held-out slice of a device's store for federated evaluation: the most recent part of its
 * action sequence, which local training must never see. The cut is the dataset tooling's own
 * `splitHoldout`, so a simulation whose devices hold whole sequences evaluates on exactly the
 * slice the simulator's central evaluation holds out ("last 10% of each user's sequence").
 * Held-out windows take their context from the training part (the actions just before the cut),
 * as the central evaluation does, but only the held-out actions are ever predicted.
 */
import { splitHoldout, type UserSequence } from "../data/index.ts";
import { buildExamples, type Examples } from "../model/examples.ts";
import type { ModelSpec } from "../model/spec.ts";

/** Training and held-out windows of one device's sequence; `fraction` undefined: no evaluation, all train. */
export function localSplit(seq: UserSequence, spec: ModelSpec, fraction: number | undefined): { train: Examples; heldOut: Examples } {
  if (fraction === undefined || seq.events.length < 2) {
    return { train: buildExamples(seq, spec), heldOut: { x: new Int32Array(0), y: new Int32Array(0), count: 0 } };
  }
  const { train, eval: held } = splitHoldout(seq, fraction);
  return { train: buildExamples(train, spec), heldOut: buildExamples(held, spec, { contextFrom: train }) };
}

/** The most recent `max` windows of `ex` (a round's per-device bound on evaluated examples). */
export function lastExamples(ex: Examples, max: number): Examples {
  if (ex.count <= max) return ex;
  const T = ex.x.length / Math.max(1, ex.count);
  const from = ex.count - max;
  return { x: ex.x.slice(from * T), y: ex.y.slice(from), count: max };
}
