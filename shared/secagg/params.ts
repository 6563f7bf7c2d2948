/**
 * Choosing the Shamir threshold t and the neighbour degree k from the cohort size n, the
 * tolerated fraction δ of dropouts and γ of devices colluding with the coordinator, in the
 * manner of Bell et al. (CCS 2020, §3–4): each device's k neighbours are a random subset, so
 * the number of surviving (resp. corrupt) neighbours is binomial. We pick the smallest even k
 * for which a threshold t exists with
 *   correctness: n · P[Bin(k, 1 − δ) < t] ≤ 2^−20  (every device keeps ≥ t surviving neighbours)
 *   security:    n · P[Bin(k, γ) ≥ t]     ≤ 2^−40  (no device has t corrupt neighbours)
 * and t > k/2 (no two disjoint neighbour sets can both reach t, so no device is asked for both
 * shares of a peer by two consistent views). Both bounds are union bounds over the n devices,
 * which is where the log n growth of k comes from. Small cohorts use the full graph.
 */
export interface SecAggParams {
  threshold: number;
  degree: number;
  mode: "full" | "secagg+";
  guarantee: string;
}

function logBinomPmf(k: number, i: number, p: number): number {
  if (p <= 0) return i === 0 ? 0 : -Infinity;
  if (p >= 1) return i === k ? 0 : -Infinity;
  return lgamma(k + 1) - lgamma(i + 1) - lgamma(k - i + 1) + i * Math.log(p) + (k - i) * Math.log1p(-p);
}

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

/** log P[Bin(k, p) ≥ t]. */
function logUpperTail(k: number, t: number, p: number): number {
  let m = -Infinity;
  const terms: number[] = [];
  for (let i = Math.max(0, t); i <= k; i++) {
    const l = logBinomPmf(k, i, p);
    terms.push(l);
    if (l > m) m = l;
  }
  if (m === -Infinity) return -Infinity;
  return m + Math.log(terms.reduce((a, l) => a + Math.exp(l - m), 0));
}

const LN2 = Math.log(2);

export function chooseParams(o: { cohortSize: number; dropoutFraction: number; corruptFraction: number; minSurvivors: number; fullGraphBelow?: number }): SecAggParams {
  const n = o.cohortSize;
  const delta = o.dropoutFraction;
  const gamma = o.corruptFraction;
  if (n < 2) throw new Error(`cohort of ${n} is too small for secure aggregation`);
  const full = (): SecAggParams => {
    const k = n - 1;
    const t = Math.min(k, Math.max(Math.floor(k / 2) + 1, Math.floor(gamma * n) + 1, 1));
    return {
      threshold: t,
      degree: k,
      mode: "full",
      guarantee: `full graph (k=${k}): the exact sum is recovered while every survivor keeps at least t=${t} of its ${k} peers through unmasking; an honest-but-curious coordinator colluding with up to ${t - 1} devices learns nothing beyond the sum of at least ${Math.max(t, o.minSurvivors)} inputs`,
    };
  };
  if (n <= (o.fullGraphBelow ?? 40)) return full();
  const logN = Math.log(n);
  for (let k = 8; k < n - 1; k += 2) {
    let tMin = Math.floor(k / 2) + 1;
    while (tMin <= k && logN + logUpperTail(k, tMin, gamma) > -40 * LN2) tMin++;
    // correctness: P[Bin(k, 1-δ) < t] = P[Bin(k, δ) > k - t] = P[Bin(k, δ) ≥ k - t + 1]
    let tMax = k;
    while (tMax >= tMin && logN + logUpperTail(k, k - tMax + 1, delta) > -20 * LN2) tMax--;
    if (tMin <= tMax) {
      return {
        threshold: tMin,
        degree: k,
        mode: "secagg+",
        guarantee: `SecAgg+ (k=${k} neighbours, t=${tMin}): with up to ${(100 * delta).toFixed(0)}% dropouts the sum is recovered except with probability ≤ 2^-20; with up to ${(100 * gamma).toFixed(0)}% of devices colluding with an honest-but-curious coordinator, no input is exposed except with probability ≤ 2^-40`,
      };
    }
  }
  return full();
}
