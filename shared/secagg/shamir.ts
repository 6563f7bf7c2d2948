/**
 * Shamir t-of-n secret sharing (Shamir 1979) over the prime field GF(p), p = 2^521 − 1 (a
 * Mersenne prime, so a 32-byte secret is a field element with room to spare). Coefficients are
 * drawn with crypto.randomBytes by rejection sampling, so each is uniform in GF(p); any t−1
 * shares are then independent of the secret.
 */
import { randomBytes } from "node:crypto";
import { SecAggError } from "./errors.ts";

export const FIELD_PRIME = (1n << 521n) - 1n;
export const SHARE_BYTES = 66; // ceil(521 / 8)

export interface Share {
  /** x-coordinate (1-based holder index + 1; never 0). */
  x: number;
  y: bigint;
}

function mod(a: bigint): bigint {
  const r = a % FIELD_PRIME;
  return r < 0n ? r + FIELD_PRIME : r;
}

function randomFieldElement(): bigint {
  for (;;) {
    const b = randomBytes(SHARE_BYTES);
    b[0]! &= 0x01; // keep 521 bits
    const v = BigInt("0x" + b.toString("hex"));
    if (v < FIELD_PRIME) return v;
  }
}

/** a⁻¹ mod p by the extended Euclidean algorithm (far cheaper than Fermat for 521-bit p). */
export function fieldInverse(a: bigint): bigint {
  let r0 = mod(a);
  if (r0 === 0n) throw new SecAggError("BAD_SHARE", "duplicate share x-coordinates");
  let r1 = FIELD_PRIME;
  let s0 = 1n;
  let s1 = 0n;
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return mod(s0);
}

export function bytesToField(b: Uint8Array): bigint {
  if (b.length === 0) return 0n;
  const v = BigInt("0x" + Buffer.from(b).toString("hex"));
  if (v >= FIELD_PRIME) throw new SecAggError("BAD_SHARE", "value is not a field element");
  return v;
}

export function fieldToBytes(v: bigint, length = SHARE_BYTES): Uint8Array {
  const hex = v.toString(16).padStart(length * 2, "0");
  if (hex.length > length * 2) throw new SecAggError("BAD_SHARE", "field element does not fit");
  return new Uint8Array(Buffer.from(hex, "hex"));
}

/** Splits `secret` (< p) into shares at x = xs[i], any `threshold` of which reconstruct it. */
export function createShares(secret: bigint, threshold: number, xs: readonly number[]): Share[] {
  if (threshold < 1 || threshold > xs.length) throw new SecAggError("BAD_SHARE", `threshold ${threshold} not in [1, ${xs.length}]`);
  if (secret < 0n || secret >= FIELD_PRIME) throw new SecAggError("BAD_SHARE", "secret is not a field element");
  const coeffs = [secret];
  for (let i = 1; i < threshold; i++) coeffs.push(randomFieldElement());
  return xs.map((x) => {
    if (!Number.isInteger(x) || x <= 0) throw new SecAggError("BAD_SHARE", `share x-coordinate must be a positive integer, got ${x}`);
    const bx = BigInt(x);
    let y = 0n;
    // Horner, reduced by the Mersenne fold (y·x + c < 2^554: two folds, no BigInt division).
    for (let i = coeffs.length - 1; i >= 0; i--) y = reduceModP(y * bx + coeffs[i]!);
    return { x, y };
  });
}

/**
 * Lagrange coefficients at 0 for the given x-coordinates (reusable for many secrets):
 * λ_i = Π_{j≠i} x_j / (x_j − x_i). The x are small integers, so the products are exact BigInts;
 * all denominators are inverted with one modular inversion (Montgomery's batch trick: invert
 * the product, then peel off each factor with two multiplications), which is what keeps the
 * coordinator's unmasking cheap at hundreds of owners.
 */
export function lagrangeAtZero(xs: readonly number[]): bigint[] {
  const bx = xs.map(BigInt);
  const nums: bigint[] = [];
  const dens: bigint[] = [];
  for (let i = 0; i < bx.length; i++) {
    let num = 1n;
    let den = 1n;
    for (let j = 0; j < bx.length; j++) {
      if (j === i) continue;
      num *= bx[j]!;
      den *= bx[j]! - bx[i]!;
    }
    nums.push(mod(num));
    dens.push(mod(den));
  }
  // prefix[i] = dens[0]·…·dens[i−1] mod p
  const prefix: bigint[] = [1n];
  for (let i = 0; i < dens.length; i++) prefix.push((prefix[i]! * dens[i]!) % FIELD_PRIME);
  let inv = fieldInverse(prefix[dens.length]!); // (dens[0]·…·dens[n−1])⁻¹
  const lambda = new Array<bigint>(dens.length);
  for (let i = dens.length - 1; i >= 0; i--) {
    lambda[i] = (((inv * prefix[i]!) % FIELD_PRIME) * nums[i]!) % FIELD_PRIME; // dens[i]⁻¹ · num_i
    inv = (inv * dens[i]!) % FIELD_PRIME;
  }
  return lambda;
}

/** Reconstructs the secret from at least `threshold` shares (uses the first `threshold`). */
export function combineShares(shares: readonly Share[], threshold: number): bigint {
  if (shares.length < threshold) throw new SecAggError("TOO_FEW_SURVIVORS", `need ${threshold} shares, have ${shares.length}`);
  const use = shares.slice(0, threshold);
  if (new Set(use.map((s) => s.x)).size !== use.length) throw new SecAggError("BAD_SHARE", "duplicate share x-coordinates");
  const lambda = lagrangeAtZero(use.map((s) => s.x));
  let acc = 0n;
  for (let i = 0; i < use.length; i++) acc = (acc + lambda[i]! * use[i]!.y) % FIELD_PRIME;
  return acc;
}

/**
 * x mod p for x ≥ 0, by folding: p = 2^521 − 1, so 2^521 ≡ 1 and x ≡ (x mod 2^521) + ⌊x / 2^521⌋.
 * A mask and a shift instead of a BigInt division (about twice as fast for a product of two
 * field elements).
 */
export function reduceModP(x: bigint): bigint {
  while (x > FIELD_PRIME) x = (x & FIELD_PRIME) + (x >> 521n);
  return x === FIELD_PRIME ? 0n : x;
}

/** The exact product Π_{j≠i} (xs[j] − xs[i]), multiplied in doubles while exact and in BigInt in between. */
function exactDenominator(xs: readonly number[], i: number): bigint {
  let den = 1n;
  let acc = 1;
  for (let j = 0; j < xs.length; j++) {
    if (j === i) continue;
    const f = xs[j]! - xs[i]!;
    const next = acc * f;
    if (Math.abs(next) > 2 ** 53) {
      den *= BigInt(acc);
      acc = f;
    } else acc = next;
  }
  return den * BigInt(acc);
}

/**
 * The secret at 0 of each x-set's interpolation, for many sets at once: the same value as
 * Σ lagrangeAtZero(xs)[i]·ys[i], with the denominators of all sets inverted by a single modular
 * inversion (Montgomery's batch trick across the sets) — the coordinator reconstructs one secret
 * per cohort member, and one 521-bit inversion costs as much as ~200 multiplications. With
 * λ_i = X / (x_i·d_i), X = Π x_j and d_i = Π_{j≠i} (x_j − x_i): secret = X · Σ y_i·(x_i·d_i)⁻¹.
 */
export function interpolateAtZeroMany(sets: readonly { xs: readonly number[]; ys: readonly bigint[] }[]): bigint[] {
  const dens: bigint[] = [];
  for (const { xs } of sets) {
    for (let i = 0; i < xs.length; i++) {
      const den = exactDenominator(xs, i) * BigInt(xs[i]!);
      if (den === 0n) throw new SecAggError("BAD_SHARE", "duplicate share x-coordinates");
      dens.push(den < 0n ? FIELD_PRIME - reduceModP(-den) : reduceModP(den));
    }
  }
  const inverses = batchInverse(dens);
  let at = 0;
  return sets.map(({ xs, ys }) => {
    let all = 1n;
    for (const x of xs) all *= BigInt(x);
    let acc = 0n;
    for (let i = 0; i < xs.length; i++) acc += ys[i]! * inverses[at++]!;
    return reduceModP(reduceModP(acc) * reduceModP(all));
  });
}

/** Every value's inverse mod p with one inversion (prefix products, then peeled off). */
function batchInverse(values: readonly bigint[]): bigint[] {
  const m = values.length;
  const prefix = new Array<bigint>(m);
  for (let k = 0; k < m; k++) prefix[k] = k === 0 ? values[0]! : reduceModP(prefix[k - 1]! * values[k]!);
  const out = new Array<bigint>(m);
  let inv = m > 0 ? fieldInverse(prefix[m - 1]!) : 1n;
  for (let k = m - 1; k >= 0; k--) {
    out[k] = k === 0 ? inv : reduceModP(inv * prefix[k - 1]!);
    inv = reduceModP(inv * values[k]!);
  }
  return out;
}

/**
 * Lagrange coefficients at 0 for many x-sets at once (as `lagrangeAtZero` for each), with the
 * denominators of all of them inverted by a single modular inversion (Montgomery's batch trick
 * across the sets): the coordinator reconstructs one secret per cohort member, and one 521-bit
 * inversion costs as much as ~200 multiplications.
 */
export function lagrangeAtZeroMany(sets: readonly (readonly number[])[]): bigint[][] {
  const nums: bigint[] = [];
  const dens: bigint[] = [];
  for (const xs of sets) {
    let all = 1n;
    for (const x of xs) all *= BigInt(x);
    for (let i = 0; i < xs.length; i++) {
      nums.push(reduceModP(all / BigInt(xs[i]!)));
      const den = exactDenominator(xs, i);
      if (den === 0n) throw new SecAggError("BAD_SHARE", "duplicate share x-coordinates");
      dens.push(den < 0n ? FIELD_PRIME - reduceModP(-den) : reduceModP(den));
    }
  }
  const inverses = batchInverse(dens);
  const lambda = inverses.map((inv, k) => reduceModP(inv * nums[k]!));
  const out: bigint[][] = [];
  let at = 0;
  for (const xs of sets) {
    out.push(lambda.slice(at, at + xs.length));
    at += xs.length;
  }
  return out;
}
