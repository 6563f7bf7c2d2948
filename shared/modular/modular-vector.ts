/**
 * Vectors over Z_(2^bits), the ring in which secure aggregation sums and in which the
 * distributed-DP encoder writes its integers. Shared by the DP encoder (device side), the
 * SecAgg masking code and the decoder, so that all three agree on one representation.
 *
 * Representation: `limbs = 1` (bits ≤ 32) stores one uint32 per coordinate; `limbs = 2`
 * (32 < bits ≤ 64) stores coordinate i as data[2i] = low 32 bits, data[2i+1] = high bits.
 * Arithmetic wraps modulo 2^bits (the high limb is masked to bits − 32 bits).
 */
export const MIN_BITS = 32;
export const MAX_BITS = 64;

export interface ModularVector {
  readonly bits: number;
  readonly length: number;
  readonly data: Uint32Array;
}

export class ModularError extends Error {
  override name = "ModularError";
}

export function limbsFor(bits: number): 1 | 2 {
  if (!Number.isInteger(bits) || bits < MIN_BITS || bits > MAX_BITS) {
    throw new ModularError(`modulus bits must be an integer in [${MIN_BITS}, ${MAX_BITS}], got ${bits}`);
  }
  return bits <= 32 ? 1 : 2;
}

/** Mask applied to the high limb so that values stay below 2^bits. */
function highMask(bits: number): number {
  return bits >= 64 ? 0xffffffff : (2 ** (bits - 32) - 1) >>> 0;
}

export function zeros(bits: number, length: number): ModularVector {
  return { bits, length, data: new Uint32Array(length * limbsFor(bits)) };
}

export function fromData(bits: number, length: number, data: Uint32Array): ModularVector {
  const need = length * limbsFor(bits);
  if (data.length !== need) {
    throw new ModularError(`vector data has ${data.length} words, expected ${need} for length ${length} at ${bits} bits`);
  }
  if (bits > 32) {
    const hm = highMask(bits);
    for (let i = 1; i < data.length; i += 2) {
      if ((data[i]! & ~hm) >>> 0 !== 0) throw new ModularError(`coordinate ${(i - 1) / 2} is not below 2^${bits}`);
    }
  }
  return { bits, length, data };
}

function assertSameShape(a: ModularVector, b: ModularVector): void {
  if (a.bits !== b.bits || a.length !== b.length) {
    throw new ModularError(`shape mismatch: (${a.length} @ ${a.bits} bits) vs (${b.length} @ ${b.bits} bits)`);
  }
}

/** a += b (mod 2^bits), in place. */
export function addInPlace(a: ModularVector, b: ModularVector): void {
  assertSameShape(a, b);
  addWordsInPlace(a.bits, a.data, b.data, 1);
}

/** a -= b (mod 2^bits), in place. */
export function subInPlace(a: ModularVector, b: ModularVector): void {
  assertSameShape(a, b);
  addWordsInPlace(a.bits, a.data, b.data, -1);
}

/**
 * acc += sign * words (mod 2^bits) where `words` is raw limb data of the same layout, e.g. a PRG
 * output. Raw words are reduced mod 2^bits as they are added, so any uniform 32-bit stream gives
 * a uniform mask.
 */
export function addWordsInPlace(bits: number, acc: Uint32Array, words: Uint32Array, sign: 1 | -1): void {
  if (acc.length !== words.length) throw new ModularError(`word count mismatch: ${acc.length} vs ${words.length}`);
  if (bits <= 32) {
    // bits is exactly 32 here (MIN_BITS), so 32-bit wrap-around is the modulus. Through Int32
    // views the loop stays in int32 registers (uint32 values ≥ 2^31 would be doubles in V8);
    // two's complement makes the bits identical.
    const a = new Int32Array(acc.buffer, acc.byteOffset, acc.length);
    const w = new Int32Array(words.buffer, words.byteOffset, words.length);
    if (sign === 1) for (let i = 0; i < a.length; i++) a[i] = (a[i]! + w[i]!) | 0;
    else for (let i = 0; i < a.length; i++) a[i] = (a[i]! - w[i]!) | 0;
    return;
  }
  const hm = highMask(bits);
  for (let i = 0; i < acc.length; i += 2) {
    const alo = acc[i]!;
    const blo = words[i]!;
    const bhi = words[i + 1]! & hm;
    if (sign === 1) {
      const lo = alo + blo;
      const carry = lo > 0xffffffff ? 1 : 0;
      acc[i] = lo >>> 0;
      acc[i + 1] = (acc[i + 1]! + bhi + carry) & hm;
    } else {
      const lo = alo - blo;
      const borrow = lo < 0 ? 1 : 0;
      acc[i] = lo >>> 0;
      acc[i + 1] = (acc[i + 1]! - bhi - borrow) & hm;
    }
  }
}

/** Encode signed integers (|v| < 2^(bits-1), safe integers) into Z_(2^bits). */
export function fromSigned(bits: number, values: ArrayLike<number>): ModularVector {
  const v = zeros(bits, values.length);
  const hm = highMask(bits);
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    if (!Number.isSafeInteger(x)) throw new ModularError(`coordinate ${i} is not a safe integer: ${x}`);
    if (bits <= 32) {
      v.data[i] = x >>> 0;
    } else {
      const lo = x >>> 0; // low 32 bits of two's complement (ToUint32 is exact for safe integers)
      const hi = Math.floor((x - lo) / 2 ** 32); // exact for safe integers
      v.data[2 * i] = lo;
      v.data[2 * i + 1] = (hi >>> 0) & hm;
    }
  }
  return v;
}

/**
 * Decode to signed integers in the centred range [-2^(bits-1), 2^(bits-1)). For bits > 53 the
 * result is rounded to the nearest double (callers decode sums far below that range).
 */
export function toSigned(v: ModularVector): Float64Array {
  const out = new Float64Array(v.length);
  if (v.bits <= 32) {
    for (let i = 0; i < v.length; i++) out[i] = v.data[i]! | 0;
    return out;
  }
  // Sign-extend the high limb first so that the result is exact whenever it is a safe integer.
  const highBits = v.bits - 32;
  const highHalf = 2 ** (highBits - 1);
  const highMod = 2 ** highBits;
  for (let i = 0; i < v.length; i++) {
    const hi = v.data[2 * i + 1]!;
    const signedHi = hi >= highHalf ? hi - highMod : hi;
    out[i] = signedHi * 2 ** 32 + v.data[2 * i]!;
  }
  return out;
}

export function equals(a: ModularVector, b: ModularVector): boolean {
  if (a.bits !== b.bits || a.length !== b.length) return false;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) return false;
  return true;
}
