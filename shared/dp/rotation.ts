/**
 * The randomized Hadamard rotation of Kairouz, Liu, Steinke (ICML 2021, §4): x ↦ H·D·x / √d'
 * with D a diagonal of random signs from a public per-round seed and H the Walsh–Hadamard
 * matrix (d' = next power of two). It spreads a vector's norm evenly over coordinates so that
 * per-coordinate rounding and modular wrap-around behave like the small, flat case.
 */
import { createCipheriv, hkdfSync } from "node:crypto";

export function paddedDimension(d: number): number {
  let p = 1;
  while (p < d) p *= 2;
  return p;
}

function signs(seed: Uint8Array, n: number): Uint8Array {
  const key = Buffer.from(hkdfSync("sha256", seed, Buffer.alloc(0), Buffer.from("tacit-dp-rotation-signs-v1"), 32));
  const c = createCipheriv("aes-128-ctr", key.subarray(0, 16), key.subarray(16));
  return new Uint8Array(c.update(Buffer.alloc(Math.ceil(n / 8))));
}

/**
 * In-place unnormalised fast Walsh–Hadamard transform (length a power of two). Two butterfly
 * levels per pass over the array (radix 4) halve the memory traffic; each output is the same
 * sum in the same order as the radix-2 transform, so results are bit-identical.
 */
function fwht(a: Float64Array): void {
  const n = a.length;
  let h = 1;
  for (; 4 * h <= n; h *= 4) {
    for (let i = 0; i < n; i += 4 * h) {
      for (let j = i; j < i + h; j++) {
        const a0 = a[j]!;
        const a1 = a[j + h]!;
        const a2 = a[j + 2 * h]!;
        const a3 = a[j + 3 * h]!;
        const s01 = a0 + a1;
        const d01 = a0 - a1;
        const s23 = a2 + a3;
        const d23 = a2 - a3;
        a[j] = s01 + s23;
        a[j + h] = d01 + d23;
        a[j + 2 * h] = s01 - s23;
        a[j + 3 * h] = d01 - d23;
      }
    }
  }
  if (h < n) {
    // One radix-2 level left when log2(n) is odd.
    for (let j = 0; j < h; j++) {
      const x = a[j]!;
      const y = a[j + h]!;
      a[j] = x + y;
      a[j + h] = x - y;
    }
  }
}

/** Rotates `x` (length d) into a vector of length d' = paddedDimension(d). */
export function rotate(x: ArrayLike<number>, seed: Uint8Array): Float64Array {
  const n = paddedDimension(x.length);
  const s = signs(seed, n);
  const a = new Float64Array(n);
  for (let i = 0; i < x.length; i++) a[i] = (s[i >> 3]! >> (i & 7)) & 1 ? -x[i]! : x[i]!;
  fwht(a);
  const norm = 1 / Math.sqrt(n);
  for (let i = 0; i < n; i++) a[i]! *= norm;
  return a;
}

/** Inverse of `rotate`, truncated back to the original length d. */
export function unrotate(y: ArrayLike<number>, seed: Uint8Array, d: number): Float64Array {
  const n = y.length;
  const a = Float64Array.from(y);
  fwht(a); // H is symmetric and H·H = n·I
  const norm = 1 / Math.sqrt(n);
  const s = signs(seed, n);
  const out = new Float64Array(d);
  for (let i = 0; i < d; i++) out[i] = ((s[i >> 3]! >> (i & 7)) & 1 ? -a[i]! : a[i]!) * norm;
  return out;
}
