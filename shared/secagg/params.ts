/**
 * Choosing the Shamir threshold t and the neighbour degree k from the cohort size n, the
 * tolerated fraction δ of dropouts and γ of devices colluding with the coordinator, under the
 * *malicious-coordinator* analysis of Bell et al. (CCS 2020, §4–5; the "semi-malicious" case of
 * Google federated-compute's HararyGraphParameterFinder, re-derived here).
 *
 * Why t must exceed (k + c)/2, not k/2: a coordinator that equivocates (tells some of u's
 * neighbours "u survived" and others "u dropped") collects b_u-shares from the first group and
 * s_u-shares from the second. With c colluding neighbours of u handing over both kinds, it needs
 * t − c honest neighbours in each disjoint group, i.e. 2(t − c) ≤ k − c, i.e. c ≥ 2t − k. So
 * every device must have fewer than 2t − k corrupt neighbours (except with probability 2^-41
 * per device, union-bounded over n). The signed consistency round (consistency.ts) makes every
 * honest device commit to one survivor set, which is what makes the groups disjoint.
 *
 * The neighbours of a device are a uniformly random k-subset of the other n − 1 (the ring order
 * comes from the round seed), so counts of corrupt and surviving neighbours are hypergeometric:
 *   security:    n · P[#corrupt neighbours > t1] ≤ 2^-41, and t ≥ ⌊(k + t1)/2⌋ + 1
 *   correctness: n · P[#surviving neighbours < t] ≤ 2^-20
 *   connectivity: the Harary graph minus corrupt and dropped devices stays connected
 *                 (P[disconnected] ≤ 2^-41; Bell et al.'s third condition)
 * The smallest even k with a feasible t wins. Small cohorts use the full graph (k = n − 1) with
 * c = ⌈γn⌉ colluders. Devices recompute the same floors (`checkSecAggFloors`) and decline a
 * round below them, so an honest coordinator (which calls `chooseParams`) is never refused.
 */
export interface SecAggParams {
  threshold: number;
  degree: number;
  mode: "full" | "secagg+";
  guarantee: string;
  /** Devices colluding with the coordinator that this round is designed to tolerate (⌈γn⌉). */
  colluders: number;
}

export interface ThreatRates {
  /** Fraction of the cohort that may drop out. */
  dropoutFraction: number;
  /** Fraction of the cohort that may collude with a malicious coordinator. */
  corruptFraction: number;
}

/** Cohorts up to this size use the full graph. */
export const FULL_GRAPH_MAX = 40;
const SECURITY_BITS_PER_EVENT = 41;
const CORRECTNESS_BITS = 20;
const LN2 = Math.log(2);
/** Guards floating-point products like 0.1 · 30 against rounding the insecure way. */
const EPS = 1e-12;

/** Lanczos approximation of ln Γ(x) (accurate to ~1e-13 for x ≥ 1, ample for tail bounds). */
function lgamma(x: number): number {
  const g = 7;
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lgamma(1 - x);
  x -= 1;
  let a = c[0]!;
  const t = x + g + 0.5;
  for (let i = 1; i < g + 2; i++) a += c[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

const logChoose = (n: number, r: number): number => (r < 0 || r > n ? -Infinity : lgamma(n + 1) - lgamma(r + 1) - lgamma(n - r + 1));

/** log P[X = i] for X ~ Hypergeometric(population N, marked A, draws k). */
function logHyperPmf(N: number, A: number, k: number, i: number): number {
  return logChoose(A, i) + logChoose(N - A, k - i) - logChoose(N, k);
}

/**
 * log P[X ≥ i] for i = 0..k+1 (upper tails), X hypergeometric as above: one pass over the pmf,
 * accumulated from the top so that each tail is a stable log-sum.
 */
function logUpperTails(N: number, A: number, k: number): number[] {
  const tails = new Array<number>(k + 2).fill(-Infinity);
  let acc = -Infinity;
  for (let i = k; i >= 0; i--) {
    const l = logHyperPmf(N, A, k, i);
    if (l !== -Infinity) acc = acc === -Infinity ? l : Math.max(acc, l) + Math.log1p(Math.exp(-Math.abs(acc - l)));
    tails[i] = acc;
  }
  return tails;
}

/** log P[X ≤ i] for i = 0..k (lower tails). */
function logLowerTails(N: number, A: number, k: number): number[] {
  const tails = new Array<number>(k + 1).fill(-Infinity);
  let acc = -Infinity;
  for (let i = 0; i <= k; i++) {
    const l = logHyperPmf(N, A, k, i);
    if (l !== -Infinity) acc = acc === -Infinity ? l : Math.max(acc, l) + Math.log1p(Math.exp(-Math.abs(acc - l)));
    tails[i] = acc;
  }
  return tails;
}

export const corruptCount = (n: number, gamma: number): number => Math.ceil(gamma * n - EPS);
const dropoutCount = (n: number, delta: number): number => Math.ceil(delta * n - EPS);

function validate(n: number, r: ThreatRates): void {
  if (!Number.isInteger(n) || n < 2) throw new Error(`cohort of ${n} is too small for secure aggregation`);
  if (!(r.dropoutFraction >= 0 && r.dropoutFraction < 1)) throw new Error(`dropout fraction must be in [0, 1), got ${r.dropoutFraction}`);
  if (!(r.corruptFraction >= 0 && r.corruptFraction <= 0.5)) throw new Error(`corrupt fraction must be in [0, 0.5], got ${r.corruptFraction}`);
}

/**
 * Pure functions of (n, k, rates) whose hypergeometric tails cost ~10 ms at n = 3,000, and
 * which a device recomputes for every invitation (its guard checks the round's floors):
 * remembered per argument list, a bounded number of them.
 */
const memo = new Map<string, unknown>();
function remembered<T>(key: string, compute: () => T): T {
  if (memo.has(key)) return memo.get(key) as T;
  const v = compute();
  if (memo.size >= 256) memo.clear();
  memo.set(key, v);
  return v;
}

/** Smallest t that is safe against an equivocating coordinator for this (n, k). */
export function minimumThreshold(n: number, k: number, r: ThreatRates): number {
  return remembered(`tmin|${n}|${k}|${r.dropoutFraction}|${r.corruptFraction}`, () => computeMinimumThreshold(n, k, r));
}

function computeMinimumThreshold(n: number, k: number, r: ThreatRates): number {
  if (k >= n - 1) {
    const c = corruptCount(n, r.corruptFraction);
    return Math.min(n - 1, Math.max(2, Math.floor((n - 1 + c) / 2) + 1, c + 1));
  }
  // t1: the number of corrupt neighbours exceeded with probability ≤ 2^-41 / n.
  const N = n - 1;
  const A = Math.min(N, corruptCount(n, r.corruptFraction));
  const budget = -SECURITY_BITS_PER_EVENT * LN2 - Math.log(n);
  const upper = logUpperTails(N, A, k);
  let t1 = 0;
  while (t1 < k && upper[t1 + 1]! > budget) t1++;
  return Math.max(2, Math.floor((k + t1) / 2) + 1);
}

/** Largest t for which every device keeps ≥ t surviving neighbours except w.p. ≤ 2^-20 / n. */
export function maximumThreshold(n: number, k: number, r: ThreatRates): number {
  const N = n - 1;
  const S = Math.max(0, n - dropoutCount(n, r.dropoutFraction) - 1);
  const budget = -CORRECTNESS_BITS * LN2 - Math.log(n);
  const lower = logLowerTails(N, S, k);
  let t = Math.min(k, S);
  while (t > 0 && lower[t - 1]! > budget) t--;
  return t;
}

/**
 * log P[the random Harary graph of degree k is disconnected once corrupt and dropped devices are
 * removed]: a cut needs k/2 consecutive bad devices on the ring in two places; union bound over
 * the pairs of places.
 */
function logProbDisconnected(n: number, k: number, r: ThreatRates): number {
  // Counted as the thresholds and the advertised colluders count them (rounded up): a fractional
  // γn still means that many colluders may be present.
  const bad = corruptCount(n, r.corruptFraction) + dropoutCount(n, r.dropoutFraction);
  if (k > bad) return -Infinity;
  const pairs = Math.log(n) + Math.log(Math.max(1, n - k - 1)) - LN2;
  return pairs + lgamma(bad + 1) + lgamma(n - k + 1) - lgamma(n + 1) - lgamma(bad - k + 1);
}

const connected = (n: number, k: number, r: ThreatRates): boolean => logProbDisconnected(n, k, r) < -SECURITY_BITS_PER_EVENT * LN2;

/** The smallest safe degree and the threshold it needs, or the full graph. */
function sparseParams(n: number, r: ThreatRates, fullGraphMax: number): { degree: number; threshold: number } | undefined {
  if (n <= fullGraphMax) return undefined;
  for (let k = 2; k < n - 1; k += 2) {
    if (!connected(n, k, r)) continue;
    const tMin = minimumThreshold(n, k, r);
    if (tMin <= maximumThreshold(n, k, r)) return { degree: k, threshold: tMin };
  }
  return undefined;
}

/** The floors a device enforces: minimum degree for n, and the minimum threshold at that degree. */
export function secaggFloors(n: number, r: ThreatRates, fullGraphMax = FULL_GRAPH_MAX): { minDegree: number; minThreshold: number } {
  validate(n, r);
  const floors = remembered(`floors|${n}|${r.dropoutFraction}|${r.corruptFraction}|${fullGraphMax}`, () => {
    const sparse = sparseParams(n, r, fullGraphMax);
    return sparse ? { minDegree: sparse.degree, minThreshold: sparse.threshold } : { minDegree: n - 1, minThreshold: minimumThreshold(n, n - 1, r) };
  });
  return { ...floors };
}

/**
 * The device's check of a round's signed SecAgg parameters against the floors for the rates it
 * accepts. Returns a reason when the round is below them, undefined when it is safe.
 */
export function checkSecAggFloors(p: { cohortSize: number; threshold: number; degree: number }, r: ThreatRates): string | undefined {
  const n = p.cohortSize;
  validate(n, r);
  const k = Math.min(p.degree, n - 1);
  const floors = secaggFloors(n, r);
  if (k < floors.minDegree) return `degree ${p.degree} is below the minimum ${floors.minDegree} for ${n} devices at ${r.dropoutFraction} dropouts and ${r.corruptFraction} colluders`;
  if (k < n - 1 && !connected(n, k, r)) return `degree ${k} may leave the honest survivors disconnected`;
  const tMin = minimumThreshold(n, k, r);
  if (p.threshold < tMin) return `threshold ${p.threshold} is below the minimum ${tMin} for degree ${k} (a coordinator with ${corruptCount(n, r.corruptFraction)} colluders could unmask one input)`;
  if (p.threshold > k) return `threshold ${p.threshold} exceeds the degree ${k}`;
  return undefined;
}

export function chooseParams(o: { cohortSize: number; dropoutFraction: number; corruptFraction: number; minSurvivors: number; fullGraphBelow?: number }): SecAggParams {
  const n = o.cohortSize;
  const r = { dropoutFraction: o.dropoutFraction, corruptFraction: o.corruptFraction };
  validate(n, r);
  const c = corruptCount(n, o.corruptFraction);
  const sparse = sparseParams(n, r, o.fullGraphBelow ?? FULL_GRAPH_MAX);
  if (!sparse) {
    const k = n - 1;
    const t = minimumThreshold(n, k, r);
    return {
      threshold: t,
      degree: k,
      mode: "full",
      colluders: c,
      guarantee: `full graph (k=${k}, t=${t}): a malicious coordinator colluding with up to ${c} devices learns nothing beyond the sum of at least ${Math.max(t, o.minSurvivors)} inputs; the sum is recovered while at least t of each device's peers survive`,
    };
  }
  return {
    threshold: sparse.threshold,
    degree: sparse.degree,
    mode: "secagg+",
    colluders: c,
    guarantee: `SecAgg+ (k=${sparse.degree} neighbours, t=${sparse.threshold}): with up to ${(100 * o.dropoutFraction).toFixed(0)}% dropouts the sum is recovered except with probability ≤ 2^-20; against a malicious coordinator colluding with up to ${(100 * o.corruptFraction).toFixed(0)}% of devices (${c}), no input is exposed except with probability ≤ 2^-40`,
  };
}
