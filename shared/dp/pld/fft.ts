/**
 * Iterative radix-2 complex FFT in float64 (Cooley & Tukey 1965; bit-reversal permutation, then
 * log₂N butterfly passes with a twiddle table computed once per size from Math.cos/Math.sin so
 * that twiddle errors do not accumulate), and the convolutions the PLD accountant needs.
 */

const twiddleCache = new Map<number, { cos: Float64Array; sin: Float64Array }>();

function twiddles(n: number): { cos: Float64Array; sin: Float64Array } {
  let t = twiddleCache.get(n);
  if (!t) {
    const half = n >> 1;
    t = { cos: new Float64Array(half), sin: new Float64Array(half) };
    for (let k = 0; k < half; k++) {
      const a = (-2 * Math.PI * k) / n;
      t.cos[k] = Math.cos(a);
      t.sin[k] = Math.sin(a);
    }
    if (twiddleCache.size > 8) twiddleCache.clear();
    twiddleCache.set(n, t);
  }
  return t;
}

/** True if n is a positive power of two. */
export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** The smallest power of two ≥ n (n ≥ 1). */
export function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * In-place DFT of (re, im): X_k = Σ_j x_j e^{∓2πijk/N} (forward: −, inverse: + and a 1/N
 * factor). N must be a power of two.
 */
export function fft(re: Float64Array, im: Float64Array, inverse = false): void {
  const n = re.length;
  if (im.length !== n) throw new RangeError("fft: re and im must have the same length");
  if (!isPowerOfTwo(n)) throw new RangeError(`fft: length must be a power of two, got ${n}`);
  if (n === 1) return;
  // Bit-reversal permutation.
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      let t = re[i]!;
      re[i] = re[j]!;
      re[j] = t;
      t = im[i]!;
      im[i] = im[j]!;
      im[j] = t;
    }
  }
  const { cos, sin } = twiddles(n);
  const sign = inverse ? -1 : 1;
  // Stages with butterflies shorter than BLOCK run block by block (each block stays in cache
  // through all of them); the longer stages then sweep the whole array.
  const block = Math.min(n, BLOCK);
  for (let base = 0; base < n; base += block) {
    for (let len = 2; len <= block; len <<= 1) butterflies(re, im, cos, sin, sign, n, len, base, base + block);
  }
  let len = block << 1;
  for (; len <= n / 2; len <<= 2) ditTwoStages(re, im, cos, sin, sign, n, len);
  for (; len <= n; len <<= 1) butterflies(re, im, cos, sin, sign, n, len, 0, n);
  if (inverse) {
    const s = 1 / n;
    for (let i = 0; i < n; i++) {
      re[i]! *= s;
      im[i]! *= s;
    }
  }
}

/** Butterflies of size len over [from, to): the Cooley–Tukey step X = A ± w·B. */
function butterflies(re: Float64Array, im: Float64Array, cos: Float64Array, sin: Float64Array, sign: number, n: number, len: number, from: number, to: number): void {
  const half = len >> 1;
  const stride = n / len;
  if (half < 32) {
    // Short butterflies: one twiddle per k, swept across all groups (less loop overhead).
    for (let k = 0; k < half; k++) {
      const wr = cos[k * stride]!;
      const wi = sign * sin[k * stride]!;
      for (let a = from + k; a < to; a += len) {
        const b = a + half;
        const br = re[b]!;
        const bi = im[b]!;
        const tr = br * wr - bi * wi;
        const ti = br * wi + bi * wr;
        const ar = re[a]!;
        const ai = im[a]!;
        re[b] = ar - tr;
        im[b] = ai - ti;
        re[a] = ar + tr;
        im[a] = ai + ti;
      }
    }
    return;
  }
  for (let start = from; start < to; start += len) {
    for (let k = 0; k < half; k++) {
      const wr = cos[k * stride]!;
      const wi = sign * sin[k * stride]!;
      const a = start + k;
      const b = a + half;
      const br = re[b]!;
      const bi = im[b]!;
      const tr = br * wr - bi * wi;
      const ti = br * wi + bi * wr;
      const ar = re[a]!;
      const ai = im[a]!;
      re[b] = ar - tr;
      im[b] = ai - ti;
      re[a] = ar + tr;
      im[a] = ai + ti;
    }
  }
}

/** Gentleman–Sande butterflies of size len over [from, to): A' = A + B, B' = (A − B)·w. */
function difButterflies(re: Float64Array, im: Float64Array, cos: Float64Array, sin: Float64Array, n: number, len: number, from: number, to: number): void {
  const half = len >> 1;
  const stride = n / len;
  if (half < 32) {
    for (let k = 0; k < half; k++) {
      const wr = cos[k * stride]!;
      const wi = sin[k * stride]!;
      for (let a = from + k; a < to; a += len) {
        const b = a + half;
        const ar = re[a]!;
        const ai = im[a]!;
        const br = re[b]!;
        const bi = im[b]!;
        re[a] = ar + br;
        im[a] = ai + bi;
        const dr = ar - br;
        const di = ai - bi;
        re[b] = dr * wr - di * wi;
        im[b] = dr * wi + di * wr;
      }
    }
    return;
  }
  for (let start = from; start < to; start += len) {
    for (let k = 0; k < half; k++) {
      const wr = cos[k * stride]!;
      const wi = sin[k * stride]!;
      const a = start + k;
      const b = a + half;
      const ar = re[a]!;
      const ai = im[a]!;
      const br = re[b]!;
      const bi = im[b]!;
      re[a] = ar + br;
      im[a] = ai + bi;
      const dr = ar - br;
      const di = ai - bi;
      re[b] = dr * wr - di * wi;
      im[b] = dr * wi + di * wr;
    }
  }
}

/**
 * Forward DFT by decimation in frequency, leaving the spectrum in bit-reversed order (no
 * permutation pass). Pointwise products and powers do not care about the order, and
 * `inverseFromBitReversed` takes it back to natural order; together they make a convolution
 * without either bit-reversal pass.
 */
export function forwardToBitReversed(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  if (im.length !== n || !isPowerOfTwo(n)) throw new RangeError(`fft: length must be a power of two, got ${n}`);
  if (n === 1) return;
  const { cos, sin } = twiddles(n);
  const block = Math.min(n, BLOCK);
  let len = n;
  for (; len > block && len / 2 > block; len >>= 2) difTwoStages(re, im, cos, sin, n, len);
  for (; len > block; len >>= 1) difButterflies(re, im, cos, sin, n, len, 0, n);
  for (let base = 0; base < n; base += block) {
    for (let l = block; l >= 2; l >>= 1) difButterflies(re, im, cos, sin, n, l, base, base + block);
  }
}

/** Inverse DFT (with 1/N) of a bit-reversed spectrum, by decimation in time, into natural order. */
export function inverseFromBitReversed(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  if (im.length !== n || !isPowerOfTwo(n)) throw new RangeError(`fft: length must be a power of two, got ${n}`);
  if (n === 1) return;
  const { cos, sin } = twiddles(n);
  const block = Math.min(n, BLOCK);
  for (let base = 0; base < n; base += block) {
    for (let len = 2; len <= block; len <<= 1) butterflies(re, im, cos, sin, -1, n, len, base, base + block);
  }
  let len = block << 1;
  for (; len <= n / 2; len <<= 2) ditTwoStages(re, im, cos, sin, -1, n, len);
  for (; len <= n; len <<= 1) butterflies(re, im, cos, sin, -1, n, len, 0, n);
  const s = 1 / n;
  for (let i = 0; i < n; i++) {
    re[i]! *= s;
    im[i]! *= s;
  }
}

/**
 * Two decimation-in-time stages (butterfly lengths len and 2·len) fused into one sweep over the
 * array: each group of four values a, a+h, a+2h, a+3h (h = len/2) is loaded once. Halves the
 * memory traffic of the stages that do not fit in cache.
 */
function ditTwoStages(re: Float64Array, im: Float64Array, cos: Float64Array, sin: Float64Array, sign: number, n: number, len: number): void {
  const h = len >> 1;
  const s1 = n / len;
  const s2 = s1 >> 1;
  for (let start = 0; start < n; start += 2 * len) {
    for (let k = 0; k < h; k++) {
      const w1r = cos[k * s1]!;
      const w1i = sign * sin[k * s1]!;
      const w2r = cos[k * s2]!;
      const w2i = sign * sin[k * s2]!;
      const w3r = cos[(k + h) * s2]!;
      const w3i = sign * sin[(k + h) * s2]!;
      const i0 = start + k;
      const i1 = i0 + h;
      const i2 = i1 + h;
      const i3 = i2 + h;
      // stage len: (i0, i1) and (i2, i3) with w1
      let tr = re[i1]! * w1r - im[i1]! * w1i;
      let ti = re[i1]! * w1i + im[i1]! * w1r;
      const a0r = re[i0]! + tr;
      const a0i = im[i0]! + ti;
      const a1r = re[i0]! - tr;
      const a1i = im[i0]! - ti;
      tr = re[i3]! * w1r - im[i3]! * w1i;
      ti = re[i3]! * w1i + im[i3]! * w1r;
      const a2r = re[i2]! + tr;
      const a2i = im[i2]! + ti;
      const a3r = re[i2]! - tr;
      const a3i = im[i2]! - ti;
      // stage 2·len: (i0, i2) with w2, (i1, i3) with w3
      tr = a2r * w2r - a2i * w2i;
      ti = a2r * w2i + a2i * w2r;
      re[i0] = a0r + tr;
      im[i0] = a0i + ti;
      re[i2] = a0r - tr;
      im[i2] = a0i - ti;
      tr = a3r * w3r - a3i * w3i;
      ti = a3r * w3i + a3i * w3r;
      re[i1] = a1r + tr;
      im[i1] = a1i + ti;
      re[i3] = a1r - tr;
      im[i3] = a1i - ti;
    }
  }
}

/** Two decimation-in-frequency stages (lengths len and len/2) fused into one sweep, like ditTwoStages. */
function difTwoStages(re: Float64Array, im: Float64Array, cos: Float64Array, sin: Float64Array, n: number, len: number): void {
  const q = len >> 2;
  const s1 = n / len;
  const s2 = s1 * 2;
  for (let start = 0; start < n; start += len) {
    for (let k = 0; k < q; k++) {
      const w1r = cos[k * s1]!;
      const w1i = sin[k * s1]!;
      const w3r = cos[(k + q) * s1]!;
      const w3i = sin[(k + q) * s1]!;
      const w2r = cos[k * s2]!;
      const w2i = sin[k * s2]!;
      const i0 = start + k;
      const i1 = i0 + q;
      const i2 = i1 + q;
      const i3 = i2 + q;
      // stage len: (i0, i2) with w1, (i1, i3) with w3
      const b0r = re[i0]! + re[i2]!;
      const b0i = im[i0]! + im[i2]!;
      let dr = re[i0]! - re[i2]!;
      let di = im[i0]! - im[i2]!;
      const b2r = dr * w1r - di * w1i;
      const b2i = dr * w1i + di * w1r;
      const b1r = re[i1]! + re[i3]!;
      const b1i = im[i1]! + im[i3]!;
      dr = re[i1]! - re[i3]!;
      di = im[i1]! - im[i3]!;
      const b3r = dr * w3r - di * w3i;
      const b3i = dr * w3i + di * w3r;
      // stage len/2: (i0, i1) and (i2, i3) with w2
      re[i0] = b0r + b1r;
      im[i0] = b0i + b1i;
      dr = b0r - b1r;
      di = b0i - b1i;
      re[i1] = dr * w2r - di * w2i;
      im[i1] = dr * w2i + di * w2r;
      re[i2] = b2r + b3r;
      im[i2] = b2i + b3i;
      dr = b2r - b3r;
      di = b2i - b3i;
      re[i3] = dr * w2r - di * w2i;
      im[i3] = dr * w2i + di * w2r;
    }
  }
}

/** Butterfly span handled in cache-sized blocks (2¹¹ complex values = 32 KiB, fits L1). */
const BLOCK = 1 << 11;

/** Linear convolution by the definition, O(n·m). */
export function convolveNaive(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  if (a.length === 0 || b.length === 0) return new Float64Array(0);
  const out = new Float64Array(a.length + b.length - 1);
  for (let i = 0; i < a.length; i++) {
    const ai = a[i]!;
    if (ai === 0) continue;
    for (let j = 0; j < b.length; j++) out[i + j]! += ai * b[j]!;
  }
  return out;
}

/** Linear convolution of two real sequences through the FFT (zero-padded to a power of two). */
export function convolveFft(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  if (a.length === 0 || b.length === 0) return new Float64Array(0);
  const outLen = a.length + b.length - 1;
  const n = nextPowerOfTwo(outLen);
  // Both real inputs in one complex transform: z = a + i·b, then A_k = (Z_k + conj Z_{−k})/2,
  // B_k = (Z_k − conj Z_{−k})/(2i).
  const re = new Float64Array(n);
  const im = new Float64Array(n);
  re.set(Array.isArray(a) ? a : Array.from(a));
  for (let j = 0; j < b.length; j++) im[j] = b[j]!;
  fft(re, im);
  const pr = new Float64Array(n);
  const pi = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const m = (n - k) & (n - 1);
    const zr = re[k]!;
    const zi = im[k]!;
    const cr = re[m]!;
    const ci = -im[m]!;
    const ar = 0.5 * (zr + cr);
    const ai = 0.5 * (zi + ci);
    // (Z − conj Z_{−k}) / (2i) = (dr + i di)/(2i) = di/2 − i dr/2
    const br = 0.5 * (zi - ci);
    const bi = -0.5 * (zr - cr);
    pr[k] = ar * br - ai * bi;
    pi[k] = ar * bi + ai * br;
  }
  fft(pr, pi, true);
  return pr.slice(0, outLen);
}

/** Linear convolution, choosing the direct sum for small inputs and the FFT otherwise. */
export function convolve(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  if (Math.min(a.length, b.length) <= 32 || a.length * b.length <= 1 << 16) return convolveNaive(a, b);
  return convolveFft(a, b);
}
