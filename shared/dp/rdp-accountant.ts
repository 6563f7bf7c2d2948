/**
 * Rényi-DP accountant (Mironov 2017) with the dp_accounting 0.6 conventions:
 * - Gaussian: ε(α) = α / (2z²).
 * - Poisson-subsampled Gaussian at integer and fractional orders: Mironov, Talwar, Zhang,
 *   "Rényi Differential Privacy of the Sampled Gaussian Mechanism" (2019), §3.3 (the A_α
 *   series; fractional orders via the erfc-weighted two-sided series).
 * - Sampling without replacement (replace-one neighbours): Wang, Balle, Kasiviswanathan (AISTATS
 *   2019, arXiv:1808.00087 Thm 27) at integer orders; fractional orders interpolate the convex
 *   log-moment (α−1)ε(α) linearly (their Corollary 10).
 * - The distributed discrete Gaussian: Kairouz, Liu, Steinke (ICML 2021), Proposition 14, and
 *   Poisson subsampling of it by Zhu & Wang (ICML 2019), Theorem 6 upper bound, integer orders.
 * - RDP → (ε, δ): Canonne, Kamath, Steinke (2020) Prop. 12 / Asoodeh et al., as dp_accounting's
 *   `compute_epsilon` and `compute_delta` do it.
 */
import { AccountantInputError, checkDelta, type PrivacyAccountant } from "./accountant.ts";
import { UnsupportedEventError, type DistributedDiscreteGaussianEvent, type DpEvent } from "./events.ts";
import { logAdd, logComb, logErfc } from "./numerics.ts";

export const DEFAULT_RDP_ORDERS: readonly number[] = [
  ...Array.from({ length: 99 }, (_, x) => 1 + (x + 1) / 10),
  ...Array.from({ length: 53 }, (_, i) => 11 + i),
  128,
  256,
  512,
  1024,
];

function logAInt(q: number, sigma: number, alpha: number): number {
  let logA = -Infinity;
  const log1mq = Math.log1p(-q);
  for (let i = 0; i <= alpha; i++) {
    const s = logComb(alpha, i) + i * Math.log(q) + (alpha - i) * log1mq + (i * i - i) / (2 * sigma * sigma);
    logA = logAdd(logA, s);
  }
  return logA;
}

const MAX_STEPS_LOG_A_FRAC = 1000;

/**
 * log A_α at fractional α (Mironov, Talwar, Zhang 2019, §3.3), summing the magnitudes of the
 * series terms — an upper bound on A_α, as dp_accounting 0.6 computes it — and giving up (∞,
 * i.e. the order is excluded) when the series has not converged after 1000 terms.
 */
function logAFrac(q: number, sigma: number, alpha: number): number {
  let logA0 = -Infinity;
  let logA1 = -Infinity;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const log1mq = Math.log1p(-q);
  let lastS0 = -Infinity;
  let lastS1 = -Infinity;
  for (let i = 0; i < MAX_STEPS_LOG_A_FRAC; i++) {
    const logCoef = logComb(alpha, i);
    const j = alpha - i;
    const logT0 = logCoef + i * Math.log(q) + j * log1mq;
    const logT1 = logCoef + j * Math.log(q) + i * log1mq;
    const logE0 = Math.log(0.5) + logErfc((i - z0) / (Math.SQRT2 * sigma));
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / (Math.SQRT2 * sigma));
    const logS0 = logT0 + (i * i - i) / (2 * sigma * sigma) + logE0;
    const logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1;
    logA0 = logAdd(logA0, logS0);
    logA1 = logAdd(logA1, logS1);
    const total = logAdd(logA0, logA1);
    if (logS0 < lastS0 && logS1 < lastS1 && Math.max(logS0, logS1) < total - 30) return total;
    lastS0 = logS0;
    lastS1 = logS1;
  }
  return Infinity;
}

/** RDP of the Poisson-subsampled Gaussian at one order (Mironov, Talwar, Zhang 2019). */
export function rdpPoissonGaussian(q: number, sigma: number, alpha: number): number {
  if (q === 0) return 0;
  if (sigma === 0) return Infinity;
  if (q === 1) return alpha / (2 * sigma * sigma);
  if (!Number.isFinite(alpha)) return Infinity;
  const logA = Number.isInteger(alpha) ? logAInt(q, sigma, alpha) : logAFrac(q, sigma, alpha);
  return logA / (alpha - 1);
}

/** Kairouz, Liu, Steinke 2021, Prop. 14: RDP of the sum of `devices` discrete Gaussians. */
export function rdpDistributedDiscreteGaussian(e: DistributedDiscreteGaussianEvent, alpha: number): number {
  if (e.perDeviceVariance === 0) return Infinity;
  const sigma = Math.sqrt(e.perDeviceVariance);
  let tau = 0;
  for (let k = 1; k < e.devices; k++) tau += Math.exp(-2 * Math.PI * Math.PI * e.perDeviceVariance * (k / (k + 1)));
  tau *= 10;
  const central = Math.sqrt(e.devices) * sigma;
  const l2 = e.l2Sensitivity / central;
  const l1 = e.l1Sensitivity / central;
  const d = e.dimension;
  const t1 = (alpha / 2) * l2 * l2 + tau * d;
  const t2 = (alpha / 2) * (l2 * l2 + 2 * l1 * tau + tau * tau * d);
  const t3 = (alpha / 2) * (l2 + Math.sqrt(d) * tau) ** 2;
  return Math.min(t1, t2, t3);
}

/**
 * Zhu & Wang (2019), Theorem 6 (upper bound) for Poisson subsampling of a mechanism with RDP
 * function eps(·), at integer order α ≥ 2.
 */
function rdpPoissonGeneric(q: number, alpha: number, eps: (a: number) => number): number {
  const terms: { log: number; w: number }[] = [
    { log: 0, w: (1 - q) ** (alpha - 1) * (alpha * q - q + 1) },
    { log: eps(2), w: Math.exp(logComb(alpha, 2)) * q * q * (1 - q) ** (alpha - 2) },
  ];
  let logSum = -Infinity;
  for (const t of terms) if (t.w > 0) logSum = logAdd(logSum, t.log + Math.log(t.w));
  for (let l = 3; l <= alpha; l++) {
    logSum = logAdd(logSum, Math.log(3) + (l - 1) * eps(l) + logComb(alpha, l) + (alpha - l) * Math.log1p(-q) + l * Math.log(q));
  }
  return logSum / (alpha - 1);
}

/** log(e^x − e^y) with its sign (true = non-negative). */
function logSubSign(x: number, y: number): [boolean, number] {
  if (x > y) return [true, x + Math.log1p(-Math.exp(y - x))];
  if (x < y) return [false, y + Math.log1p(-Math.exp(x - y))];
  return [true, -Infinity];
}

/**
 * Log-magnitudes of the forward differences Δ^i of exp(f) at 0, i = 0..n+1, computed stably in
 * log space (Wang, Balle, Kasiviswanathan, arXiv:1808.00087, Theorem 27 needs them).
 */
function forwardDiffs(f: (x: number) => number, n: number): Float64Array {
  const vec = new Float64Array(n + 3);
  const signs = new Array<boolean>(n + 3).fill(true);
  const deltas = new Float64Array(n + 2);
  for (let i = 1; i < n + 3; i++) vec[i] = f(i - 1);
  for (let i = 0; i < n + 2; i++) {
    const m = n + 2 - i;
    for (let j = 0; j < m; j++) {
      if (signs[j] === signs[j + 1]) {
        const [sg, mag] = logSubSign(vec[j + 1]!, vec[j]!);
        vec[j] = mag;
        signs[j] = signs[j + 1] ? sg : !sg;
      } else {
        vec[j] = logAdd(vec[j]!, vec[j + 1]!);
        signs[j] = signs[j + 1]!;
      }
    }
    deltas[i] = vec[0]!;
  }
  return deltas;
}

/**
 * log A_α for sampling without replacement of the Gaussian at integer α (Wang, Balle,
 * Kasiviswanathan, AISTATS 2019, arXiv:1808.00087 Theorem 27; the exact bound up to α = 256,
 * the simpler bound with cgf(i−1) beyond).
 */
function logMomentWorGaussianInt(q: number, sigma: number, alpha: number): number {
  if (alpha === 1) return 0;
  const cgf = (x: number): number => (x * (x + 1)) / (2 * sigma * sigma);
  const f = (x: number): number => x / (2 * sigma * sigma);
  let logA = 0;
  const logF2m1 = f(2) + Math.log1p(-Math.exp(-f(2)));
  const deltas = alpha <= 256 ? forwardDiffs(cgf, alpha) : undefined;
  for (let i = 2; i <= alpha; i++) {
    let s: number;
    if (i === 2) {
      s = 2 * Math.log(q) + logComb(alpha, 2) + Math.min(Math.log(4) + logF2m1, f(2) + Math.log(2));
    } else if (deltas) {
      const lo = deltas[2 * Math.floor(i / 2) - 1]!;
      const hi = deltas[2 * Math.ceil(i / 2) - 1]!;
      s = Math.min(Math.log(4) + 0.5 * (lo + hi), Math.log(2) + cgf(i - 1)) + i * Math.log(q) + logComb(alpha, i);
    } else {
      s = Math.log(2) + cgf(i - 1) + i * Math.log(q) + logComb(alpha, i);
    }
    logA = logAdd(logA, s);
  }
  return logA;
}

export function rdpSampledWithoutReplacementGaussian(q: number, sigma: number, alpha: number): number {
  if (q === 0) return 0;
  if (sigma === 0) return Infinity;
  if (q === 1) return alpha / (2 * sigma * sigma);
  if (!Number.isFinite(alpha)) return Infinity;
  if (Number.isInteger(alpha)) return alpha === 1 ? 0 : logMomentWorGaussianInt(q, sigma, alpha) / (alpha - 1);
  const lo = Math.floor(alpha);
  const hi = Math.ceil(alpha);
  const x = lo === 1 ? 0 : logMomentWorGaussianInt(q, sigma, lo);
  const y = logMomentWorGaussianInt(q, sigma, hi);
  const t = alpha - lo;
  return ((1 - t) * x + t * y) / (alpha - 1);
}

/** RDP of an event at each order; throws UnsupportedEventError for what RDP cannot account. */
export function rdpOfEvent(event: DpEvent, orders: readonly number[]): Float64Array {
  const out = new Float64Array(orders.length);
  switch (event.kind) {
    case "noOp":
      return out;
    case "nonPrivate":
      return out.fill(Infinity);
    case "gaussian":
      orders.forEach((a, i) => (out[i] = event.noiseMultiplier === 0 ? Infinity : a / (2 * event.noiseMultiplier ** 2)));
      return out;
    case "distributedDiscreteGaussian":
      orders.forEach((a, i) => (out[i] = rdpDistributedDiscreteGaussian(event, a)));
      return out;
    case "poissonSampled": {
      const q = event.samplingProbability;
      const inner = event.event;
      if (inner.kind === "gaussian") {
        orders.forEach((a, i) => (out[i] = rdpPoissonGaussian(q, inner.noiseMultiplier, a)));
        return out;
      }
      if (inner.kind === "distributedDiscreteGaussian") {
        const eps = (a: number): number => rdpDistributedDiscreteGaussian(inner, a);
        orders.forEach((a, i) => {
          const plain = eps(a);
          out[i] = q === 0 ? 0 : q === 1 || !Number.isInteger(a) || a < 2 ? plain : Math.min(plain, rdpPoissonGeneric(q, a, eps));
        });
        return out;
      }
      if (inner.kind === "noOp") return out;
      throw new UnsupportedEventError(`RDP cannot account Poisson sampling of a ${inner.kind} event`);
    }
    case "sampledWithoutReplacement": {
      const inner = event.event;
      if (event.sampleSize > event.sourceDatasetSize) throw new AccountantInputError("sample size exceeds the dataset size");
      if (inner.kind === "noOp") return out;
      if (inner.kind !== "gaussian") throw new UnsupportedEventError(`RDP cannot account sampling without replacement of a ${inner.kind} event`);
      const q = event.sampleSize / event.sourceDatasetSize;
      orders.forEach((a, i) => (out[i] = rdpSampledWithoutReplacementGaussian(q, inner.noiseMultiplier, a)));
      return out;
    }
    case "selfComposed": {
      const inner = rdpOfEvent(event.event, orders);
      for (let i = 0; i < out.length; i++) out[i] = event.count === 0 ? 0 : inner[i]! * event.count;
      return out;
    }
    case "composed": {
      for (const e of event.events) {
        const r = rdpOfEvent(e, orders);
        for (let i = 0; i < out.length; i++) out[i]! += r[i]!;
      }
      return out;
    }
    default: {
      const k = (event as { kind?: unknown }).kind;
      throw new UnsupportedEventError(`unknown mechanism '${String(k)}'`);
    }
  }
}

/** dp_accounting's `compute_epsilon`: the best (ε, order) over all orders. */
export function epsilonFromRdp(orders: readonly number[], rdp: ArrayLike<number>, delta: number): number {
  checkDelta(delta);
  let best = Infinity;
  for (let i = 0; i < orders.length; i++) {
    const a = orders[i]!;
    const r = rdp[i]!;
    if (r < 0) throw new AccountantInputError(`negative RDP ${r} at order ${a}`);
    let eps: number;
    if (delta * delta + Math.expm1(-r) > 0) eps = 0;
    else if (a > 1.01) eps = r + Math.log1p(-1 / a) - Math.log(delta * a) / (a - 1);
    else eps = Infinity;
    if (eps < best) best = eps;
  }
  return Math.max(0, best);
}

/** dp_accounting's `compute_delta`. */
export function deltaFromRdp(orders: readonly number[], rdp: ArrayLike<number>, epsilon: number): number {
  if (!(epsilon >= 0)) throw new AccountantInputError(`epsilon must be non-negative, got ${epsilon}`);
  let best = Infinity;
  for (let i = 0; i < orders.length; i++) {
    const a = orders[i]!;
    const r = rdp[i]!;
    let logDelta = 0.5 * Math.log1p(-Math.exp(-r));
    if (a > 1.01) {
      const bound = (a - 1) * (r - epsilon + Math.log1p(-1 / a)) - Math.log(a);
      logDelta = Math.min(logDelta, bound);
    }
    if (logDelta < best) best = logDelta;
  }
  return Math.min(Math.exp(best), 1);
}

export class RdpAccountant implements PrivacyAccountant {
  private readonly rdp: Float64Array;

  constructor(readonly orders: readonly number[] = DEFAULT_RDP_ORDERS) {
    if (orders.some((a) => !(a > 1))) throw new AccountantInputError("RDP orders must be > 1");
    this.rdp = new Float64Array(orders.length);
  }

  supports(event: DpEvent): boolean {
    try {
      rdpOfEvent(event, [2]);
      return true;
    } catch (err) {
      if (err instanceof UnsupportedEventError) return false;
      throw err;
    }
  }

  compose(event: DpEvent, count = 1): this {
    if (!Number.isInteger(count) || count < 0) throw new AccountantInputError(`count must be a non-negative integer, got ${count}`);
    const r = rdpOfEvent(event, this.orders); // computed first: nothing changes if this throws
    for (let i = 0; i < r.length; i++) this.rdp[i]! += count * r[i]!;
    return this;
  }

  getEpsilon(delta: number): number {
    return epsilonFromRdp(this.orders, this.rdp, delta);
  }

  getDelta(epsilon: number): number {
    return deltaFromRdp(this.orders, this.rdp, epsilon);
  }
}
