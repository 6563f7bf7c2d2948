/**
 * Uniform integers from crypto-random bits, buffered (one crypto.randomFillSync call per 64 KiB)
 * so that exact samplers needing millions of draws stay fast. Rejection sampling keeps every
 * draw exactly uniform.
 */
import { randomFillSync } from "node:crypto";

export class RandomSource {
  private readonly words: Uint32Array;
  private pos: number;
  private refills = 0;
  /** Unused bits of the last word taken for single bits, and how many remain. */
  private bits = 0;
  private bitCount = 0;

  constructor(chunk = 65_536) {
    if (!(chunk >= 4) || chunk % 4 !== 0) throw new RangeError(`RandomSource chunk must be a positive multiple of 4 bytes, got ${chunk}`);
    this.words = new Uint32Array(chunk / 4);
    this.pos = this.words.length; // empty: the first draw fills the buffer
  }

  /** One uniform 32-bit word, as a number in [0, 2^32). The samplers' hot paths call this directly. */
  nextWord(): number {
    if (this.pos === this.words.length) {
      // Refilled in place: consumed words are never handed out again.
      randomFillSync(this.words);
      this.pos = 0;
      this.refills++;
    }
    return this.words[this.pos++]!;
  }

  /** Words handed out so far (benchmarks use it to count a sampler's random draws). */
  get wordsDrawn(): number {
    return this.refills === 0 ? 0 : (this.refills - 1) * this.words.length + this.pos;
  }

  /** One uniform bit (32 per word): fair coins such as a sign do not cost a whole word. */
  nextBit(): number {
    if (this.bitCount === 0) {
      this.bits = this.nextWord() | 0;
      this.bitCount = 32;
    }
    this.bitCount--;
    const b = this.bits & 1;
    this.bits >>>= 1;
    return b;
  }

  /** Uniform integer in [0, n) for a safe integer n ≥ 1 (so n < 2^53). */
  uniformInt(n: number): number {
    if (!(n >= 1) || !Number.isSafeInteger(n)) throw new RangeError(`uniformInt bound must be a safe integer ≥ 1, got ${n}`);
    if (n === 1) return 0;
    if (n <= 0x100000000) {
      const limit = Math.floor(0x100000000 / n) * n;
      for (;;) {
        const w = this.nextWord();
        if (w < limit) return w - Math.floor(w / n) * n; // exact, and cheaper than % on doubles
      }
    }
    // 53-bit draws for larger bounds.
    const limit = Math.floor(2 ** 53 / n) * n;
    for (;;) {
      const v = (this.nextWord() & 0x1fffff) * 0x100000000 + this.nextWord();
      if (v < limit) return v % n;
    }
  }

  /** Uniform BigInt in [0, n). */
  uniformBigInt(n: bigint): bigint {
    if (n <= 0n) throw new RangeError("uniformBigInt bound must be positive");
    if (n < 2n ** 53n) return BigInt(this.uniformInt(Number(n))); // 2^53 itself is not a safe integer
    const bits = n.toString(2).length;
    const words = Math.ceil(bits / 32);
    const mask = (1n << BigInt(bits)) - 1n;
    for (;;) {
      let v = 0n;
      for (let i = 0; i < words; i++) v = (v << 32n) | BigInt(this.nextWord());
      v &= mask;
      if (v < n) return v;
    }
  }
}
