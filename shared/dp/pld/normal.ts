/**
 * The standard normal CDF Φ, log Φ and Φ⁻¹ with relative accuracy in the far lower tail (what
 * the Gaussian privacy-loss computations need: Φ at −10σ and the difference of two small CDFs).
 *
 * erfc is computed through the incomplete gamma function, erfc(x) = Γ(½, x²)/√π:
 * - x² < 1.5: erf by its positive series erf(x) = 2/√π · e^{−x²} · Σ 2ⁿx^{2n+1}/(2n+1)!!
 *   (Abramowitz & Stegun 7.1.6; no cancellation), erfc = 1 − erf ≥ 0.08;
 * - x² ≥ 1.5: Legendre's continued fraction for Γ(a, y) (A&S 6.5.31), evaluated by the modified
 *   Lentz method, which converges quickly for y > a + 1.
 */

const LOG_SQRT_PI = 0.5 * Math.log(Math.PI);
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const FPMIN = 1e-300;

/** erf(x) for 0 ≤ x, x² < 1.5 (A&S 7.1.6). */
function erfSmall(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (term < 1e-17 * sum) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

/** log of the Legendre continued fraction h with Γ(½, x²) = e^{−x²}·x·h, for x² ≥ 1.5. */
function logErfcContinuedFraction(x: number): number {
  const y = x * x;
  const a = 0.5;
  let b = y + 1 - a;
  let c = 1 / FPMIN;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 10_000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < FPMIN) d = FPMIN;
    c = b + an / c;
    if (Math.abs(c) < FPMIN) c = FPMIN;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 2e-16) break;
  }
  // erfc(x) = Γ(½, x²)/Γ(½) = e^{−x²} · x · h / √π
  return -y + Math.log(x * h) - LOG_SQRT_PI;
}

/** erfc(x) for any real x (relative accuracy ~1e-15 for x ≥ 0). */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x * x < 1.5) return 1 - erfSmall(x);
  if (x > 27.3) return 0; // below the smallest double
  return Math.exp(logErfcContinuedFraction(x));
}

/** log erfc(x), finite far beyond where erfc underflows. */
export function logErfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return Math.log(2 - erfc(-x));
  if (x * x < 1.5) return Math.log1p(-erfSmall(x));
  return logErfcContinuedFraction(x);
}

/** Φ(x) = P[N(0,1) ≤ x]. */
export function normalCdf(x: number): number {
  if (x === -Infinity) return 0;
  if (x === Infinity) return 1;
  return x < 0 ? 0.5 * erfc(-x / Math.SQRT2) : 1 - 0.5 * erfc(x / Math.SQRT2);
}

/** log Φ(x), accurate for very negative x. */
export function normalLogCdf(x: number): number {
  if (x === -Infinity) return -Infinity;
  if (x === Infinity) return 0;
  return x < 0 ? logErfc(-x / Math.SQRT2) - Math.LN2 : Math.log1p(-0.5 * erfc(x / Math.SQRT2));
}

/** Φ⁻¹(p) for 0 < p < 1, by Newton's method on log Φ (converges to ~1 ulp). */
export function normalPpf(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`normalPpf needs 0 < p < 1, got ${p}`);
  if (p > 0.5) return -normalPpf(1 - p);
  if (p === 0.5) return 0;
  const logP = Math.log(p);
  // Start from the tail asymptote Φ(x) ≈ φ(x)/|x|.
  let x = -Math.sqrt(Math.max(0.5, -2 * logP - Math.log(-2 * logP * 2 * Math.PI)));
  for (let i = 0; i < 100; i++) {
    const lc = normalLogCdf(x);
    // d/dx log Φ(x) = φ(x)/Φ(x) = exp(log φ(x) − log Φ(x))
    const slope = Math.exp(-0.5 * x * x - 0.5 * Math.log(2 * Math.PI) - lc);
    const step = (lc - logP) / slope;
    x -= step;
    if (Math.abs(step) <= 1e-15 * Math.max(1, Math.abs(x))) break;
  }
  return x;
}
