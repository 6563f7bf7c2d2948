/**
 * Privacy-loss-distribution accountant (Koskela, Jälkö, Honkela 2020; Doroshenko, Ghazi, Kamath,
 * Kumar, Manurangsi 2022) with the conventions of Google's dp_accounting 0.6
 * (`pld_privacy_accountant.py`): add/remove neighbours, value discretization interval 1e-4,
 * pessimistic connect-the-dots PLDs, tail mass truncation 1e-15 per composition, and for a
 * Poisson-subsampled mechanism both the REMOVE and the ADD PLD, ε = max of the two.
 *
 * Supported events: noOp, nonPrivate, gaussian (k-fold = one Gaussian with σ/√k, as
 * dp_accounting does), poissonSampled(gaussian), selfComposed, composed, and
 * distributedDiscreteGaussian (accounted as its equivalent Gaussian, see
 * `equivalentNoiseMultiplier`), also Poisson-subsampled. Sampling without replacement is refused
 * (UnsupportedEventError): dp_accounting's PLD accountant does not support it either.
 */
import { AccountantInputError, checkDelta, type PrivacyAccountant } from "../accountant.ts";
import { UnsupportedEventError, type DistributedDiscreteGaussianEvent, type DpEvent } from "../events.ts";
import { connectDotsDeltaForEpsilon, connectDotsEpsilonForDelta, GaussianPrivacyLoss } from "./gaussian.ts";
import { composePmfs, DEFAULT_TAIL_MASS_TRUNCATION, identityPmf, pmfDeltaForEpsilon, pmfEpsilonForDelta, selfComposePmf, type Pmf } from "./pmf.ts";

/** dp_accounting's default `value_discretization_interval`. */
export const DEFAULT_VALUE_DISCRETIZATION_INTERVAL = 1e-4;
/**
 * Allowance for floating-point error in δ(ε), taken off the target δ before solving for ε (and
 * added to reported δ). FFT convolution powers over ~10⁷ bins and the second differences of the
 * connect-the-dots construction leave absolute errors of order 1e-13 on δ(ε) — in this code and
 * in dp_accounting alike (the two differ by at most 2e-13 in δ over the reference grid). Asking
 * for (ε, δ − η) is always a valid, slightly pessimistic answer for (ε, δ); unlike a factor on
 * ε it is tied to the quantity that actually carries the error. η = min(1e-12, δ/1000).
 */
export function numericalDeltaMargin(delta: number): number {
  return Math.min(1e-12, delta / 1000);
}

/** Largest PMF (points) materialised per mechanism; beyond it the grid is coarsened (still pessimistic). */
export const MAX_PMF_POINTS = 1 << 22;

/** One mechanism of the ledger, after flattening self-compositions into counts. */
export type PldLeaf =
  | { kind: "gaussian"; sigma: number }
  | { kind: "poissonGaussian"; sigma: number; q: number; count: number };

/**
 * The noise multiplier of the Gaussian the PLD accountant uses for a distributed discrete
 * Gaussian round. Kairouz, Liu, Steinke (ICML 2021), Proposition 14: with sensitivities in units
 * of the central standard deviation √n·σ (ℓ₂ = Δ₂/(√n·σ), ℓ₁ = Δ₁/(√n·σ)) and
 * τ = 10·Σ_{k=1}^{n−1} e^{−2π²σ²k/(k+1)}, the sum of the n devices' noise is ρ-zCDP with
 * ρ = min(ρ₂, ρ₃), ρ₂ = ½(ℓ₂² + 2ℓ₁τ + τ²d), ρ₃ = ½(ℓ₂ + √d·τ)². The Gaussian with the same RDP
 * curve (α/(2z²) = αρ) has z = 1/√(2ρ). Its RDP is ≥ the RDP accountant's min(t₁, t₂, t₃) at
 * every order (t₁'s additive slack τd is not used), so it is at least as conservative as the RDP
 * accountant's treatment, and it tends to the central √n·σ/Δ₂ as τ → 0 (τ is 0 in float64 for
 * σ² ≳ 4; a real round has σ² ≈ 10¹⁵ in the integer domain).
 * Using that Gaussian's PLD rests on the summed discrete Gaussians being (close to) a Gaussian
 * mechanism — a zCDP bound alone does not imply the Gaussian's privacy profile; this is the
 * "equivalent Gaussian" convention, stated here so a reviewer can weigh it.
 */
export function equivalentNoiseMultiplier(e: DistributedDiscreteGaussianEvent): number {
  if (e.perDeviceVariance === 0) return 0;
  let tau = 0;
  for (let k = 1; k < e.devices; k++) tau += Math.exp(-2 * Math.PI * Math.PI * e.perDeviceVariance * (k / (k + 1)));
  tau *= 10;
  const central = Math.sqrt(e.devices * e.perDeviceVariance);
  const l2 = e.l2Sensitivity / central;
  const l1 = e.l1Sensitivity / central;
  const d = e.dimension;
  const rho2 = 0.5 * (l2 * l2 + 2 * l1 * tau + tau * tau * d);
  const rho3 = 0.5 * (l2 + Math.sqrt(d) * tau) ** 2;
  return 1 / Math.sqrt(2 * Math.min(rho2, rho3));
}

interface Flattened {
  leaves: PldLeaf[];
  nonPrivate: boolean;
}

function gaussianLeaf(z: number, q: number, count: number, out: Flattened): void {
  if (Number.isNaN(z) || z < 0) throw new AccountantInputError(`noise multiplier must be ≥ 0, got ${z}`);
  if (count === 0 || q === 0 || z === Infinity) return; // nothing released (as RDP: α/(2·∞²) = 0)
  if (z === 0) {
    out.nonPrivate = true;
    return;
  }
  if (q === 1) out.leaves.push({ kind: "gaussian", sigma: z / Math.sqrt(count) });
  else out.leaves.push({ kind: "poissonGaussian", sigma: z, q, count });
}

/** Walks an event tree; throws before anything is recorded if any part cannot be accounted. */
export function flattenEvent(event: DpEvent, count: number, out: Flattened): void {
  switch (event.kind) {
    case "noOp":
      return;
    case "nonPrivate":
      if (count > 0) out.nonPrivate = true;
      return;
    case "gaussian":
      return gaussianLeaf(event.noiseMultiplier, 1, count, out);
    case "distributedDiscreteGaussian":
      return gaussianLeaf(equivalentNoiseMultiplier(event), 1, count, out);
    case "poissonSampled": {
      const q = event.samplingProbability;
      if (!(q >= 0 && q <= 1)) throw new AccountantInputError(`sampling probability must be in [0, 1], got ${q}`);
      const inner = event.event;
      if (inner.kind === "noOp") return;
      if (inner.kind === "gaussian") return gaussianLeaf(inner.noiseMultiplier, q, count, out);
      if (inner.kind === "distributedDiscreteGaussian") return gaussianLeaf(equivalentNoiseMultiplier(inner), q, count, out);
      throw new UnsupportedEventError(`PLD cannot account Poisson sampling of a ${inner.kind} event`);
    }
    case "sampledWithoutReplacement": {
      if (event.sampleSize > event.sourceDatasetSize) throw new AccountantInputError("sample size exceeds the dataset size");
      if (event.event.kind === "noOp") return;
      throw new UnsupportedEventError(
        "the PLD accountant does not support sampling without replacement (dp_accounting 0.6's PLD accountant does not either); use the RDP accountant or Poisson sampling",
      );
    }
    case "selfComposed":
      if (!Number.isInteger(event.count) || event.count < 0) throw new AccountantInputError(`self-composition count must be a non-negative integer, got ${event.count}`);
      return flattenEvent(event.event, count * event.count, out);
    case "composed":
      for (const e of event.events) flattenEvent(e, count, out);
      return;
    default: {
      const k = (event as { kind?: unknown }).kind;
      throw new UnsupportedEventError(`unknown mechanism '${String(k)}'`);
    }
  }
}

/**
 * Merges leaves whose composition is known exactly: all plain Gaussians into one, with
 * 1/σ² = Σ 1/σᵢ² — the PLD of a sensitivity-1 Gaussian is N(η, 2η) with η = 1/(2σ²), and
 * composition adds independent losses, giving N(Ση, 2Ση) (Sommer, Meiser, Mohammadi 2019;
 * equivalently μ-GDP composition, Dong, Roth, Su 2019) — and Poisson-subsampled Gaussians with
 * the same (σ, q) into one with the summed count. A ledger of R rounds then costs one PLD per
 * distinct mechanism, not R convolutions, and each is discretized once instead of R times.
 */
export function mergeLeaves(leaves: readonly PldLeaf[]): PldLeaf[] {
  let inverseVariance = 0;
  const sampled = new Map<string, { sigma: number; q: number; count: number }>();
  for (const leaf of leaves) {
    if (leaf.kind === "gaussian") inverseVariance += 1 / (leaf.sigma * leaf.sigma);
    else {
      const key = `${leaf.sigma}|${leaf.q}`;
      const prev = sampled.get(key);
      if (prev) prev.count += leaf.count;
      else sampled.set(key, { sigma: leaf.sigma, q: leaf.q, count: leaf.count });
    }
  }
  const out: PldLeaf[] = [];
  if (inverseVariance > 0) out.push({ kind: "gaussian", sigma: 1 / Math.sqrt(inverseVariance) });
  for (const v of sampled.values()) out.push({ kind: "poissonGaussian", ...v });
  return out;
}

/** The PLD of a ledger as its REMOVE and ADD PMFs (identical when nothing is subsampled). */
export interface PldPair {
  remove: Pmf;
  add: Pmf;
}

/** Estimated number of grid points of a leaf's PMF at interval h (the larger adjacency). */
function leafPoints(leaf: PldLeaf, h: number): number {
  const q = leaf.kind === "gaussian" ? 1 : leaf.q;
  const m = new GaussianPrivacyLoss(leaf.sigma, q, "remove");
  const { lo, hi } = m.gridBounds(h);
  return hi - lo + 1;
}

/**
 * The interval used to materialise: dp_accounting's 1e-4 unless some PMF would exceed
 * MAX_PMF_POINTS, then the smallest multiple-of-two coarsening that fits. A coarser pessimistic
 * connect-the-dots grid is still an upper bound (the pessimistic guarantee of Doroshenko et al.
 * 2022 holds for any interval), just looser.
 */
export function materialisationInterval(leaves: readonly PldLeaf[], h = DEFAULT_VALUE_DISCRETIZATION_INTERVAL): number {
  let out = h;
  for (const leaf of leaves) while (leafPoints(leaf, out) > MAX_PMF_POINTS) out *= 2;
  return out;
}

/** Composes the leaves' PLDs (dp_accounting order: each leaf self-composed, then composed in). */
export function pldOfLeaves(leaves: readonly PldLeaf[], h = DEFAULT_VALUE_DISCRETIZATION_INTERVAL): PldPair {
  let remove = identityPmf(h);
  let add = remove;
  let symmetric = true;
  for (const leaf of leaves) {
    if (leaf.kind === "gaussian") {
      const p = new GaussianPrivacyLoss(leaf.sigma, 1, "remove").toPmf(h);
      remove = composePmfs(remove, p);
      add = symmetric ? remove : composePmfs(add, p);
    } else {
      const r = selfComposePmf(new GaussianPrivacyLoss(leaf.sigma, leaf.q, "remove").toPmf(h), leaf.count);
      const a = selfComposePmf(new GaussianPrivacyLoss(leaf.sigma, leaf.q, "add").toPmf(h), leaf.count);
      const prevAdd = add;
      remove = composePmfs(remove, r);
      add = composePmfs(prevAdd, a);
      symmetric = false;
    }
  }
  return { remove, add };
}

export class PldAccountant implements PrivacyAccountant {
  /** The ledger's mechanisms, merged (mergeLeaves) as they arrive. */
  private leaves: PldLeaf[] = [];
  private nonPrivate = false;
  private cached: { pair: PldPair } | undefined;

  constructor(readonly valueDiscretizationInterval = DEFAULT_VALUE_DISCRETIZATION_INTERVAL) {
    if (!(valueDiscretizationInterval > 0 && valueDiscretizationInterval <= 1)) {
      throw new AccountantInputError(`value discretization interval must be in (0, 1], got ${valueDiscretizationInterval}`);
    }
  }

  supports(event: DpEvent): boolean {
    try {
      flattenEvent(event, 1, { leaves: [], nonPrivate: false });
      return true;
    } catch (err) {
      if (err instanceof UnsupportedEventError) return false;
      throw err;
    }
  }

  compose(event: DpEvent, count = 1): this {
    if (!Number.isInteger(count) || count < 0) throw new AccountantInputError(`count must be a non-negative integer, got ${count}`);
    const f: Flattened = { leaves: [], nonPrivate: false };
    flattenEvent(event, count, f); // throws before anything changes
    if (f.leaves.length > 0) {
      this.leaves = mergeLeaves([...this.leaves, ...f.leaves]);
      this.cached = undefined;
    }
    this.nonPrivate ||= f.nonPrivate;
    return this;
  }

  /** The single plain Gaussian that the whole ledger is, if it is one. */
  private singleGaussian(): GaussianPrivacyLoss | undefined {
    const only = this.leaves.length === 1 ? this.leaves[0] : undefined;
    return only?.kind === "gaussian" ? new GaussianPrivacyLoss(only.sigma, 1, "remove") : undefined;
  }

  private pair(): PldPair {
    if (!this.cached) {
      const h = materialisationInterval(this.leaves, this.valueDiscretizationInterval);
      this.cached = { pair: pldOfLeaves(this.leaves, h) };
    }
    return this.cached.pair;
  }

  getEpsilon(delta: number): number {
    checkDelta(delta);
    if (this.nonPrivate) return Infinity;
    if (this.leaves.length === 0) return 0;
    const target = delta - numericalDeltaMargin(delta);
    const g = this.singleGaussian();
    // Composing with dp_accounting's identity PLD moves ≤ 1e-15 of mass to +∞: take that off δ too.
    if (g) return connectDotsEpsilonForDelta(g, this.valueDiscretizationInterval, target - DEFAULT_TAIL_MASS_TRUNCATION);
    const { remove, add } = this.pair();
    return Math.max(pmfEpsilonForDelta(remove, target), pmfEpsilonForDelta(add, target));
  }

  getDelta(epsilon: number): number {
    if (!(epsilon >= 0)) throw new AccountantInputError(`epsilon must be non-negative, got ${epsilon}`);
    if (this.nonPrivate) return 1;
    if (this.leaves.length === 0) return 0;
    const g = this.singleGaussian();
    const d = g
      ? connectDotsDeltaForEpsilon(g, this.valueDiscretizationInterval, epsilon) + DEFAULT_TAIL_MASS_TRUNCATION
      : Math.max(pmfDeltaForEpsilon(this.pair().remove, epsilon), pmfDeltaForEpsilon(this.pair().add, epsilon));
    return Math.min(1, d + numericalDeltaMargin(d));
  }
}
