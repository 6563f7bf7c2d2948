/**
 * Pessimistic connect-the-dots discretization: Doroshenko, Ghazi, Kamath, Kumar, Manurangsi,
 * "Connect the Dots: Tighter Discrete Approximations of Privacy Loss Distributions" (PETS 2022,
 * arXiv:2207.04380), Algorithm 1, in its fixed-gap form.
 *
 * Given the mechanism's hockey-stick divergences δ_1 ≥ … ≥ δ_n at ε_i = (lo + i − 1)·h, the PLD
 * supported on {ε_1, …, ε_n, +∞} whose δ(ε) passes through every (ε_i, δ_i) and is linear in
 * e^ε in between (the chord of the true convex curve, so never below it) has masses
 *   p_1 = 1 − δ_1 + (δ_2 − δ_1)/(e^h − 1)
 *   p_i = ((δ_{i+1} − δ_i) − e^h (δ_i − δ_{i−1}))/(e^h − 1),  1 < i < n
 *   p_n = (δ_n − δ_{n−1})/(e^{−h} − 1),   p_∞ = δ_n.
 */
import { AccountantInputError } from "../accountant.ts";
import { makePmf, type Pmf } from "./pmf.ts";

/** dp_accounting's `_DELTA_DIFF_TOLERANCE`: larger increases of δ are reported as errors. */
const DELTA_DIFF_TOLERANCE = 1e-12;

export function connectDotsFixedGap(h: number, lo: number, hi: number, deltasIn: Float64Array): Pmf {
  if (hi < lo) throw new AccountantInputError(`connect-the-dots: upper index ${hi} below lower ${lo}`);
  const n = hi - lo + 1;
  if (deltasIn.length !== n) throw new AccountantInputError(`connect-the-dots: ${deltasIn.length} deltas for ${n} points`);
  for (const d of deltasIn) if (!(d >= 0 && d <= 1)) throw new AccountantInputError(`connect-the-dots: δ = ${d} outside [0, 1]`);
  if (n === 1) return makePmf(h, lo, Float64Array.of(1 - deltasIn[0]!), deltasIn[0]!);
  const deltas = new Float64Array(n);
  let run = Infinity;
  for (let i = 0; i < n; i++) {
    if (i > 0 && deltasIn[i]! - deltasIn[i - 1]! > DELTA_DIFF_TOLERANCE) throw new AccountantInputError("connect-the-dots: δ(ε) must be non-increasing");
    run = Math.min(run, deltasIn[i]!);
    deltas[i] = run;
  }
  const em1 = Math.expm1(h);
  const eh = Math.exp(h);
  const probs = new Float64Array(n);
  probs[0] = 1 - deltas[0]! + (deltas[1]! - deltas[0]!) / em1;
  for (let i = 1; i < n - 1; i++) probs[i] = (deltas[i + 1]! - deltas[i]! - (deltas[i]! - deltas[i - 1]!) * eh) / em1;
  probs[n - 1] = (deltas[n - 1]! - deltas[n - 2]!) / Math.expm1(-h);
  for (let i = 0; i < n; i++) if (!(probs[i]! > 0)) probs[i] = 0;
  return makePmf(h, lo, probs, deltas[n - 1]!);
}
