/**
 * The released predictor of a run that starts from a public model: a mixture of the public
 * (initial) model's next-action distribution and the federated model's,
 *
 *   p(y | x) = (1 − w) · p_public(y | x) + w · p_federated(y | x),   w = the federated weight.
 *
 * Why: under user-level DP every device's update is clipped to the same norm, so the federated
 * model moves toward the *average* device (the median has 31 events) and away from what the public
 * model learned from long developer histories — which is what the heavy devices, and so most
 * events, look like. The mixture keeps both. On devactions-large at ε 8 the DP model alone scores
 * 51.8 % top-3, the public model 46.0 %, their mixture at w = 0.75 55.1 % (bench/RESULTS.md).
 * Mixing two released models is post-processing: it costs no privacy budget.
 */
export class ReleaseMixError extends Error {
  override name = "ReleaseMixError";
}

/** A federated weight must lie in (0, 1]: 1 is the federated model alone, 0 would drop it. */
export function validateFederatedWeight(w: number): number {
  if (!Number.isFinite(w) || w <= 0 || w > 1) throw new ReleaseMixError(`the federated model's weight in the released mixture must be in (0, 1], got ${w}`);
  return w;
}

/**
 * Mixes `anchor` (the public model's distribution for the same context) into `probs` in place:
 * probs ← (1 − w)·anchor + w·probs. Both must be distributions over the same outputs.
 */
export function mixWithAnchor(probs: Float64Array, anchor: ArrayLike<number>, federatedWeight: number): Float64Array {
  if (anchor.length !== probs.length) throw new ReleaseMixError(`the public model's distribution has ${anchor.length} outputs, the federated model's ${probs.length}`);
  const w = federatedWeight;
  for (let v = 0; v < probs.length; v++) probs[v] = (1 - w) * anchor[v]! + w * probs[v]!;
  return probs;
}
