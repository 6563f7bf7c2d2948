/**
 * Uniform integers from crypto-random bits, buffered (one crypto.randomBytes call per 64 KiB)
 * so that exact samplers needing millions of draws stay fast. Rejection sampling keeps every
 * draw exactly uniform.
 */
import { randomBytes } from "node:crypto";

export class RandomSource {
  private buf = Buffer.alloc(0);
  private pos = 0;

  constructor(private readonly chunk = 65_536) {}

  private word(): number {
    if (this.pos + 4 > this.buf.length) {
      this.buf = randomBytes(this.chunk);
      this.pos = 0;
    }
    const w = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return w;
  }

  /** Uniform integer in [0, n) for 1 ≤ n ≤ 2^53. */
  uniformInt(n: number): number {
    if (!(n >= 1) || !Number.isSafeInteger(n)) throw new RangeError(`uniformInt bound must be a safe integer ≥ 1, got ${n}`);
    if (n === 1) return 0;
    if (n <= 0x100000000) {
      const limit = Math.floor(0x100000000 / n) * n;
      for (;;) {
        const w = this.word();
        if (w < limit) return w % n;
      }
    }
    // 53-bit draws for larger bounds.
    const limit = Math.floor(2 ** 53 / n) * n;
    for (;;) {
      const v = (this.word() & 0x1fffff) * 0x100000000 + this.word();
      if (v < limit) return v % n;
    }
  }

  /** Uniform BigInt in [0, n). */
  uniformBigInt(n: bigint): bigint {
    if (n <= 0n) throw new RangeError("uniformBigInt bound must be positive");
    if (n <= 2n ** 53n) return BigInt(this.uniformInt(Number(n)));
    const bits = n.toString(2).length;
    const words = Math.ceil(bits / 32);
    const mask = (1n << BigInt(bits)) - 1n;
    for (;;) {
      let v = 0n;
      for (let i = 0; i < words; i++) v = (v << 32n) | BigInt(this.word());
      v &= mask;
      if (v < n) return v;
    }
  }
}
