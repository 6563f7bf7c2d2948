/**
 * Error-correcting reconstruction of a Shamir secret (finding M2). n shares of a degree < t
 * polynomial are a Reed–Solomon codeword, so with n > t shares the redundancy both detects and
 * locates wrong shares: up to ⌊(n − t)/2⌋ of them are corrected by Berlekamp–Welch, and the
 * holders whose shares lie off the decoded polynomial are the culprits. Pure functions over
 * GF(2^521 − 1); the SecAgg server uses them to name whoever sent a well-formed but wrong share.
 */
import { SecAggError } from "./errors.ts";
import { fieldInverse, FIELD_PRIME, lagrangeAtZero, interpolateAtZeroMany, type Share } from "./shamir.ts";

const P = FIELD_PRIME;

function mod(a: bigint): bigint {
  const r = a % P;
  return r < 0n ? r + P : r;
}

/** The secret from exactly these shares (Lagrange at 0). */
function atZero(shares: readonly Share[]): bigint {
  const lambda = lagrangeAtZero(shares.map((s) => s.x));
  let acc = 0n;
  shares.forEach((s, i) => (acc = (acc + lambda[i]! * s.y) % P));
  return acc;
}

/**
 * Cheap detection: the secret from windows of t consecutive shares that together cover every
 * share. One wrong share changes the secret of each window holding it (its Lagrange coefficient
 * at 0 is never 0), so the windows disagree. O(n/t) reconstructions of O(t) each.
 */
function windowsAgree(shares: readonly Share[], t: number): boolean {
  const first = atZero(shares.slice(0, t));
  for (let start = t; start < shares.length; start += t) {
    const end = Math.min(start + t, shares.length);
    if (atZero(shares.slice(end - t, end)) !== first) return false;
  }
  return true;
}

/**
 * Solves A·z = b mod p by Gaussian elimination; free variables are set to 0. Returns undefined
 * if the system is inconsistent.
 */
function solve(a: bigint[][], b: bigint[]): bigint[] | undefined {
  const rows = a.length;
  const cols = a[0]?.length ?? 0;
  const m = a.map((r, i) => [...r, b[i]!]);
  const pivotCol: number[] = [];
  let row = 0;
  for (let col = 0; col < cols && row < rows; col++) {
    let piv = row;
    while (piv < rows && m[piv]![col] === 0n) piv++;
    if (piv === rows) continue;
    [m[row], m[piv]] = [m[piv]!, m[row]!];
    const inv = fieldInverse(m[row]![col]!);
    for (let c = col; c <= cols; c++) m[row]![c] = (m[row]![c]! * inv) % P;
    for (let r = 0; r < rows; r++) {
      if (r === row || m[r]![col] === 0n) continue;
      const f = m[r]![col]!;
      for (let c = col; c <= cols; c++) m[r]![c] = mod(m[r]![c]! - f * m[row]![c]!);
    }
    pivotCol.push(col);
    row++;
  }
  for (let r = row; r < rows; r++) if (m[r]![cols] !== 0n) return undefined;
  const z = new Array<bigint>(cols).fill(0n);
  pivotCol.forEach((col, r) => (z[col] = m[r]![cols]!));
  return z;
}

/** q / e for monic e; undefined when the division leaves a remainder. Coefficients low → high. */
function divideMonic(q: bigint[], e: bigint[]): bigint[] | undefined {
  const rem = [...q];
  const de = e.length - 1;
  const out = new Array<bigint>(Math.max(0, q.length - de)).fill(0n);
  for (let i = q.length - 1; i >= de; i--) {
    const c = rem[i]!;
    out[i - de] = c;
    if (c === 0n) continue;
    for (let j = 0; j <= de; j++) rem[i - de + j] = mod(rem[i - de + j]! - c * e[j]!);
  }
  return rem.slice(0, de).every((v) => v === 0n) ? out : undefined;
}

function evaluate(poly: readonly bigint[], x: bigint): bigint {
  let y = 0n;
  for (let i = poly.length - 1; i >= 0; i--) y = (y * x + poly[i]!) % P;
  return y;
}

/**
 * Berlekamp–Welch: the polynomial of degree < t that all but at most e = ⌊(n − t)/2⌋ shares
 * lie on, or undefined if there is none (more wrong shares than the code can correct).
 * Unknowns: Q of degree < t + e and E = x^e + (lower terms), with Q(x_i) = y_i·E(x_i) for all i.
 */
function berlekampWelch(shares: readonly Share[], t: number): bigint[] | undefined {
  const n = shares.length;
  const e = Math.floor((n - t) / 2);
  const a: bigint[][] = [];
  const b: bigint[] = [];
  for (const { x, y } of shares) {
    const bx = BigInt(x);
    const row: bigint[] = [];
    let pw = 1n;
    for (let j = 0; j < t + e; j++, pw = (pw * bx) % P) row.push(pw); // Q coefficients
    pw = 1n;
    for (let j = 0; j < e; j++, pw = (pw * bx) % P) row.push(mod(-y * pw)); // −y·E' coefficients
    a.push(row);
    b.push((y * pw) % P); // y·x^e (E is monic)
  }
  const z = solve(a, b);
  if (!z) return undefined;
  const q = z.slice(0, t + e);
  const eps = [...z.slice(t + e), 1n];
  const poly = divideMonic(q, eps);
  if (!poly || poly.slice(t).some((c) => c !== 0n)) return undefined;
  const p = poly.slice(0, t);
  // The decoding is trustworthy only if the errors it implies are within the correctable count.
  const wrong = shares.filter((s) => evaluate(p, BigInt(s.x)) !== s.y).length;
  return wrong <= e ? p : undefined;
}

export interface DecodedSecret {
  secret: bigint;
  /** x-coordinates of the shares that lie off the decoded polynomial (sorted). */
  corrupt: number[];
}

/**
 * The secret the honest shares determine, and which shares are wrong. With n = t there is no
 * redundancy: the secret is returned as combined and nothing can be said about the shares.
 * Throws BAD_SHARE when the shares disagree and more than ⌊(n − t)/2⌋ of them are wrong.
 */
export function decodeSecret(shares: readonly Share[], t: number): DecodedSecret {
  if (shares.length < t) throw new SecAggError("TOO_FEW_SURVIVORS", `need ${t} shares, have ${shares.length}`);
  if (new Set(shares.map((s) => s.x)).size !== shares.length) throw new SecAggError("BAD_SHARE", "duplicate share x-coordinates");
  const sorted = [...shares].sort((p, q) => p.x - q.x);
  if (sorted.length === t || windowsAgree(sorted, t)) return { secret: atZero(sorted.slice(0, t)), corrupt: [] };
  return locateErrors(sorted, t);
}

/** The windows `windowsAgree` checks: t consecutive shares each, together covering all of them. */
function windowsOf(sorted: readonly Share[], t: number): Share[][] {
  const windows = [sorted.slice(0, t)];
  for (let start = t; start < sorted.length; start += t) {
    const end = Math.min(start + t, sorted.length);
    windows.push(sorted.slice(end - t, end));
  }
  return windows;
}

/**
 * `decodeSecret`'s common case for many share lists at once (one per cohort member): the secret
 * where every window of the list gives the same secret — then no share is wrong — with the
 * Lagrange denominators of all windows of all lists inverted together. Undefined where the
 * windows disagree, or the list has too few or duplicate x: call `decodeSecret` for those (it
 * locates the wrong shares, or throws).
 */
export function agreedSecrets(lists: readonly (readonly Share[])[], t: number): (bigint | undefined)[] {
  const windows = lists.map((shares) => {
    if (shares.length < t || new Set(shares.map((s) => s.x)).size !== shares.length) return [];
    return windowsOf([...shares].sort((p, q) => p.x - q.x), t);
  });
  const secrets = interpolateAtZeroMany(windows.flat().map((w) => ({ xs: w.map((s) => s.x), ys: w.map((s) => s.y) })));
  let at = 0;
  return windows.map((ws) => {
    const mine = secrets.slice(at, (at += ws.length));
    return mine.length > 0 && mine.every((s) => s === mine[0]) ? mine[0] : undefined;
  });
}


/**
 * Full decoding, also for shares whose windows agree but whose secret failed validation (a
 * device can check a reconstructed key against its public key): names the shares off the
 * decoded polynomial. Throws BAD_SHARE if the shares cannot be decoded.
 */
export function locateErrors(shares: readonly Share[], t: number): DecodedSecret {
  const sorted = [...shares].sort((p, q) => p.x - q.x);
  const poly = sorted.length > t ? berlekampWelch(sorted, t) : undefined;
  if (!poly) throw new SecAggError("BAD_SHARE", `the ${sorted.length} shares disagree and cannot be corrected (at most ${Math.floor((sorted.length - t) / 2)} wrong shares can be located)`);
  const corrupt = sorted.filter((s) => evaluate(poly, BigInt(s.x)) !== s.y).map((s) => s.x);
  return { secret: poly[0]!, corrupt };
}
