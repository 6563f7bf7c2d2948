/**
 * In-process pins of the PLD accountant's code (shared/dp/pld/*.ts) on TINY inputs (issue #16).
 *
 * Why a separate file: StrykerJS instruments every expression of a mutated file, which makes the
 * FFT and PMF loops 30–100× slower, so test/dp-pld.test.ts and test/dp-accountant-contract.test.ts
 * (grids at h = 1e-4, 10⁴-fold compositions, σ = 0.1) take minutes per mutant. This file pins the
 * same code — every exported function and every internal branch reachable through them — with
 * arrays of a few to a few thousand entries, discretization intervals of 0.1–0.5 and few
 * compositions, against the DFT definition, hand convolutions, hand-solved PMFs, mpmath
 * (40-digit) reference values and the analytic Gaussian (Balle & Wang 2018). The whole file runs
 * in well under two seconds uninstrumented, so a mutant costs seconds, not minutes.
 */
import { describe, expect, it } from "vitest";
import { AccountantInputError } from "../shared/dp/accountant.ts";
import { UnsupportedEventError, type DistributedDiscreteGaussianEvent, type DpEvent } from "../shared/dp/events.ts";
import { connectDotsFixedGap } from "../shared/dp/pld/connect-dots.ts";
import { convolve, convolveFft, convolveNaive, fft, forwardToBitReversed, inverseFromBitReversed, isPowerOfTwo, nextPowerOfTwo } from "../shared/dp/pld/fft.ts";
import { connectDotsDeltaForEpsilon, connectDotsEpsilonForDelta, GaussianPrivacyLoss, LOG_MASS_TRUNCATION_BOUND, logATimesExpBPlusC } from "../shared/dp/pld/gaussian.ts";
import { erfc, logErfc, normalCdf, normalLogCdf, normalPpf } from "../shared/dp/pld/normal.ts";
import {
  DEFAULT_VALUE_DISCRETIZATION_INTERVAL,
  equivalentNoiseMultiplier,
  flattenEvent,
  materialisationInterval,
  MAX_PMF_POINTS,
  mergeLeaves,
  numericalDeltaMargin,
  PldAccountant,
  pldOfLeaves,
  type PldLeaf,
} from "../shared/dp/pld/pld-accountant.ts";
import {
  composePmfs,
  DEFAULT_TAIL_MASS_TRUNCATION,
  identityPmf,
  makePmf,
  MAX_SPARSE_SIZE,
  pmfDeltaForEpsilon,
  pmfEpsilonForDelta,
  selfComposePmf,
  selfConvolve,
  selfConvolveBounds,
  truncateTails,
  type Pmf,
} from "../shared/dp/pld/pmf.ts";

// ---------------------------------------------------------------------------------------------
// helpers

/** A deterministic pseudo-random sequence in [−0.5, 0.5) (Park–Miller). */
function lcg(seed: number): () => number {
  let x = seed;
  return () => (x = (x * 48271) % 2147483647) / 2147483647 - 0.5;
}

/** The DFT by its definition, X_k = Σ_j x_j e^{∓2πijk/N} (inverse: + and 1/N), at the given k. */
const unitRoots = new Map<number, { cos: Float64Array; sin: Float64Array }>();
function dft(re: ArrayLike<number>, im: ArrayLike<number>, k: number, inverse = false): [number, number] {
  const n = re.length;
  let t = unitRoots.get(n);
  if (!t) {
    t = { cos: new Float64Array(n), sin: new Float64Array(n) };
    for (let j = 0; j < n; j++) {
      t.cos[j] = Math.cos((2 * Math.PI * j) / n);
      t.sin[j] = Math.sin((2 * Math.PI * j) / n);
    }
    unitRoots.set(n, t);
  }
  const sign = inverse ? 1 : -1;
  let sr = 0;
  let si = 0;
  for (let j = 0; j < n; j++) {
    const m = (j * k) % n;
    const c = t.cos[m]!;
    const s = sign * t.sin[m]!;
    sr += re[j]! * c - im[j]! * s;
    si += re[j]! * s + im[j]! * c;
  }
  return inverse ? [sr / n, si / n] : [sr, si];
}

function norm(...xs: ArrayLike<number>[]): number {
  let s = 0;
  for (const x of xs) for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s);
}

function bitReverse(i: number, bits: number): number {
  let r = 0;
  for (let b = 0; b < bits; b++) if (i & (1 << b)) r |= 1 << (bits - 1 - b);
  return r;
}

/** Frequencies to check at size n: all of them when small, else a spread that touches every stage. */
function freqs(n: number): number[] {
  if (n <= 64) return Array.from({ length: n }, (_, k) => k);
  return [0, 1, 2, 3, 5, 7, n / 4 - 1, n / 4, n / 2 - 1, n / 2, n / 2 + 1, (3 * n) / 4 + 3, n - 2, n - 1, 1234 % n, 777 % n];
}

function sameBits(a: Float64Array, b: Float64Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i]! - b[i]!));
  return e;
}

function relClose(got: number, want: number, tol: number): void {
  expect(Math.abs(got - want), `${got} vs ${want}`).toBeLessThanOrEqual(tol * Math.abs(want));
}

const sum = (x: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]!;
  return s;
};

// ---------------------------------------------------------------------------------------------
// fft.ts

describe("fft.ts: powers of two", () => {
  it("isPowerOfTwo at the edges", () => {
    for (const n of [1, 2, 4, 8, 1024, 2 ** 20, 2 ** 30]) expect(isPowerOfTwo(n), String(n)).toBe(true);
    for (const n of [0, -1, -2, -4, 3, 5, 6, 7, 12, 1023, 1025, 2 ** 20 + 1, 2 ** 20 - 1, 1.5, 2.5, NaN, Infinity]) expect(isPowerOfTwo(n), String(n)).toBe(false);
  });

  it("nextPowerOfTwo at the edges", () => {
    const cases: [number, number][] = [[0, 1], [1, 1], [2, 2], [3, 4], [4, 4], [5, 8], [7, 8], [8, 8], [9, 16], [1023, 1024], [1024, 1024], [1025, 2048], [2.5, 4]];
    for (const [n, p] of cases) expect(nextPowerOfTwo(n), String(n)).toBe(p);
  });
});

describe("fft.ts: transforms vs the DFT definition", () => {
  it("refuses unequal lengths and non-powers of two, with their messages", () => {
    expect(() => fft(new Float64Array(4), new Float64Array(2))).toThrow(new RangeError("fft: re and im must have the same length"));
    expect(() => fft(new Float64Array(3), new Float64Array(3))).toThrow(new RangeError("fft: length must be a power of two, got 3"));
    expect(() => fft(new Float64Array(0), new Float64Array(0))).toThrow("got 0");
    expect(() => forwardToBitReversed(new Float64Array(6), new Float64Array(6))).toThrow(new RangeError("fft: length must be a power of two, got 6"));
    expect(() => forwardToBitReversed(new Float64Array(4), new Float64Array(8))).toThrow(new RangeError("fft: length must be a power of two, got 4"));
    expect(() => inverseFromBitReversed(new Float64Array(12), new Float64Array(12))).toThrow(new RangeError("fft: length must be a power of two, got 12"));
    expect(() => inverseFromBitReversed(new Float64Array(8), new Float64Array(4))).toThrow(new RangeError("fft: length must be a power of two, got 8"));
  });

  it("size 1 is the identity for every transform", () => {
    for (const f of [(r: Float64Array, i: Float64Array) => fft(r, i), (r: Float64Array, i: Float64Array) => fft(r, i, true), forwardToBitReversed, inverseFromBitReversed]) {
      const re = Float64Array.of(0.75);
      const im = Float64Array.of(-0.25);
      f(re, im);
      expect([re[0], im[0]]).toEqual([0.75, -0.25]);
    }
  });

  it("size 2 and 4 by hand", () => {
    const re = Float64Array.of(1, 2);
    const im = Float64Array.of(3, 5);
    fft(re, im);
    expect([...re, ...im]).toEqual([3, -1, 8, -2]);
    fft(re, im, true);
    expect([...re, ...im]).toEqual([1, 2, 3, 5]);
    // x = (1, 2, 3, 4): X = (10, −2 + 2i, −2, −2 − 2i)
    const r4 = Float64Array.of(1, 2, 3, 4);
    const i4 = new Float64Array(4);
    fft(r4, i4);
    expect(maxAbsDiff(r4, [10, -2, -2, -2])).toBeLessThan(1e-15);
    expect(maxAbsDiff(i4, [0, 2, 0, -2])).toBeLessThan(1e-15);
  });

  // 2..64: short butterflies (half < 32) and the long path (len 64); 4096: two cache blocks then
  // one whole-array stage; 8192: two blocks then the fused two-stage sweep.
  for (const n of [2, 4, 8, 16, 32, 64, 128, 4096, 8192]) {
    it(`n = ${n}: forward, inverse, forwardToBitReversed and inverseFromBitReversed`, () => {
      const rnd = lcg(n + 11);
      const r0 = Float64Array.from({ length: n }, rnd);
      const i0 = Float64Array.from({ length: n }, rnd);
      const scale = norm(r0, i0) * Math.sqrt(n);
      const tol = 1e-13 * scale;
      const bits = Math.log2(n);
      // forward, natural order
      const re = r0.slice();
      const im = i0.slice();
      fft(re, im);
      for (const k of freqs(n)) {
        const [sr, si] = dft(r0, i0, k);
        expect(Math.abs(re[k]! - sr), `fft k=${k}`).toBeLessThan(tol);
        expect(Math.abs(im[k]! - si), `fft k=${k}`).toBeLessThan(tol);
      }
      // inverse flag: the inverse DFT with 1/N
      const re2 = r0.slice();
      const im2 = i0.slice();
      fft(re2, im2, true);
      for (const k of freqs(n)) {
        const [sr, si] = dft(r0, i0, k, true);
        expect(Math.abs(re2[k]! - sr), `ifft k=${k}`).toBeLessThan(tol / n);
        expect(Math.abs(im2[k]! - si), `ifft k=${k}`).toBeLessThan(tol / n);
      }
      // round trip
      fft(re, im, true);
      expect(maxAbsDiff(re, r0)).toBeLessThan(1e-14 * norm(r0, i0));
      expect(maxAbsDiff(im, i0)).toBeLessThan(1e-14 * norm(r0, i0));
      // decimation in frequency: the spectrum in bit-reversed order
      const re3 = r0.slice();
      const im3 = i0.slice();
      forwardToBitReversed(re3, im3);
      for (const k of freqs(n)) {
        const [sr, si] = dft(r0, i0, k);
        const p = bitReverse(k, bits);
        expect(Math.abs(re3[p]! - sr), `dif k=${k}`).toBeLessThan(tol);
        expect(Math.abs(im3[p]! - si), `dif k=${k}`).toBeLessThan(tol);
      }
      // inverse of a bit-reversed spectrum, into natural order (with 1/N)
      const re4 = new Float64Array(n);
      const im4 = new Float64Array(n);
      for (let k = 0; k < n; k++) {
        re4[bitReverse(k, bits)] = r0[k]!;
        im4[bitReverse(k, bits)] = i0[k]!;
      }
      inverseFromBitReversed(re4, im4);
      for (const j of freqs(n)) {
        const [sr, si] = dft(r0, i0, j, true);
        expect(Math.abs(re4[j]! - sr), `dit j=${j}`).toBeLessThan(tol / n);
        expect(Math.abs(im4[j]! - si), `dit j=${j}`).toBeLessThan(tol / n);
      }
      // and the pair round-trips
      inverseFromBitReversed(re3, im3);
      expect(maxAbsDiff(re3, r0)).toBeLessThan(1e-14 * norm(r0, i0));
      expect(maxAbsDiff(im3, i0)).toBeLessThan(1e-14 * norm(r0, i0));
    });
  }

  it("a second transform of another size (twiddle cache) and again of the first size stays right", () => {
    for (const n of [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 8, 16]) {
      const re = new Float64Array(n);
      const im = new Float64Array(n);
      re[1] = 1; // X_k = e^{−2πik/N}
      fft(re, im);
      for (const k of [0, 1, n / 2 - 1, n - 1]) {
        expect(re[k]).toBeCloseTo(Math.cos((-2 * Math.PI * k) / n), 14);
        expect(im[k]).toBeCloseTo(Math.sin((-2 * Math.PI * k) / n), 14);
      }
    }
  });
});

describe("fft.ts: convolutions", () => {
  it("convolveNaive by hand, zeros skipped correctly, empty inputs", () => {
    expect([...convolveNaive([1, 2, 3], [4, 5])]).toEqual([4, 13, 22, 15]);
    expect([...convolveNaive([0, 1, 0, 2], [3, 0.5])]).toEqual([0, 3, 0.5, 6, 1]);
    expect([...convolveNaive([2], [7])]).toEqual([14]);
    expect(convolveNaive([], [1, 2, 3]).length).toBe(0);
    expect(convolveNaive([1, 2, 3], []).length).toBe(0);
    expect(convolveNaive([], []).length).toBe(0);
  });

  it("convolveFft by hand and vs the definition at many small shapes", () => {
    expect(maxAbsDiff(convolveFft([1, 2, 3], [4, 5]), [4, 13, 22, 15])).toBeLessThan(1e-14);
    expect(maxAbsDiff(convolveFft(Float64Array.of(1, -2), Float64Array.of(0.5, 3, -1)), [0.5, 2, -7, 2])).toBeLessThan(1e-14);
    expect(maxAbsDiff(convolveFft([3], [-2]), [-6])).toBeLessThan(1e-15);
    expect(convolveFft([], [1, 2]).length).toBe(0);
    expect(convolveFft([1, 2, 3], []).length).toBe(0);
    const rnd = lcg(5);
    for (const [la, lb] of [[1, 2], [2, 2], [2, 3], [3, 3], [4, 5], [5, 4], [1, 16], [17, 1], [8, 9], [33, 31], [100, 29], [70, 70]] as const) {
      const a = Array.from({ length: la }, rnd);
      const b = Float64Array.from({ length: lb }, rnd);
      const want = convolveNaive(a, b);
      const got = convolveFft(a, b);
      expect(got.length).toBe(la + lb - 1);
      expect(maxAbsDiff(got, want), `${la}×${lb}`).toBeLessThan(1e-14 * (norm(a) + norm(b)) ** 2);
    }
  });

  it("convolve picks the direct sum up to min length 32 or product 2¹⁶, else the FFT", () => {
    const rnd = lcg(99);
    const check = (la: number, lb: number, viaFft: boolean): void => {
      const a = Float64Array.from({ length: la }, rnd);
      const b = Float64Array.from({ length: lb }, rnd);
      const naive = convolveNaive(a, b);
      const fast = convolveFft(a, b);
      expect(sameBits(naive, fast), "the two paths differ in the last bits").toBe(false);
      expect(sameBits(convolve(a, b), viaFft ? fast : naive), `${la}×${lb}`).toBe(true);
    };
    check(32, 2049, false); // min = 32 (product 65,568)
    check(2049, 32, false);
    check(33, 2049, true); // min = 33, product 67,617
    check(256, 256, false); // product = 2¹⁶
    check(256, 257, true); // product 65,792
    check(33, 33, false);
  });
});

// ---------------------------------------------------------------------------------------------
// normal.ts (references: mpmath at 40 digits)

describe("normal.ts", () => {
  it("erfc on both sides of x² = 1.5, of 0, and the underflow cut at 27.3", () => {
    const cases: [number, number, number][] = [
      [0, 1, 0],
      [0.1, 0.88753708398171511, 1e-15],
      [0.5, 0.4795001221869535, 1e-15],
      [1.2, 0.08968602177036462, 1e-14],
      [1.23, 0.081949895873238632, 1e-14],
      [-0.5, 1.5204998778130465, 1e-15],
      [2, 0.0046777349810472658, 1e-14],
      [3, 2.2090496998585441e-5, 1e-14],
      [5, 1.5374597944280349e-12, 1e-14],
      [10, 2.0884875837625448e-45, 1e-14],
      [20, 5.3958656116079009e-176, 1e-13],
      [26.5, 2.2109076642637343e-307, 1e-13],
    ];
    for (const [x, want, tol] of cases) relClose(erfc(x), want, tol);
    expect(erfc(0)).toBe(1);
    // 27 underflows to a subnormal (relative accuracy is gone, the order of magnitude is not)
    expect(erfc(27)).toBeGreaterThan(4e-319);
    expect(erfc(27)).toBeLessThan(6e-319);
    expect(erfc(27.31)).toBe(0);
    expect(erfc(40)).toBe(0);
    expect(erfc(-40)).toBe(2);
    expect(erfc(NaN)).toBeNaN();
  });

  it("logErfc below 0, in the series, in the continued fraction and far beyond underflow", () => {
    const cases: [number, number][] = [
      [-1, 0.61123231767807049],
      [0.5, -0.7350111298370844],
      [1.25, -2.5626536619221257],
      [30, -903.97411711064388],
      [100, -10005.177585122664],
    ];
    for (const [x, want] of cases) relClose(logErfc(x), want, 2e-15);
    expect(logErfc(0) === 0).toBe(true); // log1p(−0)
    expect(logErfc(NaN)).toBeNaN();
  });

  it("Φ and log Φ at ±∞, in both tails and at 0", () => {
    expect(normalCdf(-Infinity)).toBe(0);
    expect(normalCdf(Infinity)).toBe(1);
    expect(normalLogCdf(-Infinity)).toBe(-Infinity);
    expect(normalLogCdf(Infinity)).toBe(0);
    expect(normalCdf(0)).toBe(0.5);
    expect(normalLogCdf(0)).toBe(-Math.LN2);
    const cases: [number, number, number][] = [
      [-40, 3.6558935409150297e-350, -804.60844201375379],
      [-10, 7.6198530241605261e-24, -53.231285150512471],
      [-1, 0.15865525393145705, -1.8410216450092635],
      [0.3, 0.61791142218895264, -0.4814101615884812],
      [1, 0.84134474606854295, -0.17275377902344989],
      [8, 0.99999999999999938, -6.2209605742717861e-16],
    ];
    for (const [x, cdf, logCdf] of cases) {
      if (cdf > 1e-300) relClose(normalCdf(x), cdf, 1e-14);
      else expect(normalCdf(x)).toBe(0);
      relClose(normalLogCdf(x), logCdf, x === 8 ? 1e-9 : 1e-14);
    }
    // Φ(x) + Φ(−x) = 1
    for (const x of [0.2, 1.7, 3.3]) expect(normalCdf(x) + normalCdf(-x)).toBeCloseTo(1, 15);
  });

  it("Φ⁻¹: refusals, the midpoint, both halves and the far tail", () => {
    for (const p of [0, 1, -0.1, 1.1, NaN]) expect(() => normalPpf(p)).toThrow(new RangeError(`normalPpf needs 0 < p < 1, got ${p}`));
    expect(normalPpf(0.5)).toBe(0);
    const cases: [number, number][] = [
      [0.975, 1.9599639845400542],
      [0.3, -0.52440051270804078],
      [1e-10, -6.3613409024040562],
      [1e-300, -37.047096299361199],
      [0.15865525393145705, -1],
    ];
    for (const [p, x] of cases) relClose(normalPpf(p), x, 1e-14);
    expect(normalPpf(0.5 * Math.exp(LOG_MASS_TRUNCATION_BOUND))).toBeCloseTo(-9.745474864965933, 13);
    expect(normalPpf(0.7)).toBeCloseTo(-normalPpf(0.3), 15);
  });
});

// ---------------------------------------------------------------------------------------------
// pmf.ts

describe("pmf.ts: construction and tails", () => {
  it("makePmf / identityPmf and the sparse threshold", () => {
    expect(MAX_SPARSE_SIZE).toBe(1000);
    expect(DEFAULT_TAIL_MASS_TRUNCATION).toBe(1e-15);
    const probs = Float64Array.of(0.5, 0.5);
    expect(makePmf(0.25, -3, probs, 0.125)).toEqual({ h: 0.25, lower: -3, probs, infinityMass: 0.125, sparse: true });
    expect(makePmf(1, 0, new Float64Array(1000), 0).sparse).toBe(true);
    expect(makePmf(1, 0, new Float64Array(1001), 0).sparse).toBe(false);
    const id = identityPmf(0.5);
    expect(id).toEqual({ h: 0.5, lower: 0, probs: Float64Array.of(1), infinityMass: 0, sparse: true });
  });

  it("truncateTails: τ = 0 keeps the array, exact offsets and masses at the τ/2 boundaries", () => {
    const p = Float64Array.of(0.1, 0.2);
    const t0 = truncateTails(p, 0);
    expect(t0.probs).toBe(p);
    expect(t0.offset).toBe(0);
    expect(t0.toInfinity).toBe(0);
    // τ/2 = 0.2: prefix 0.1 then 0.3 > 0.2 → left 1; suffix 0.1, 0.3 → one dropped
    const t1 = truncateTails(Float64Array.of(0.1, 0.2, 0.4, 0.2, 0.1), 0.4);
    expect(t1.offset).toBe(1);
    expect([...t1.probs]).toEqual([0.2 + 0.1, 0.4, 0.2]);
    expect(t1.toInfinity).toBe(0.1);
    // a prefix of exactly τ/2 is dropped (strict >), likewise a suffix of exactly τ/2
    const t2 = truncateTails(Float64Array.of(0.25, 0.25, 0.25, 0.125, 0.125), 0.5);
    expect(t2.offset).toBe(1);
    expect([...t2.probs]).toEqual([0.5, 0.25]);
    expect(t2.toInfinity).toBe(0.25);
    // nothing to drop
    const t3 = truncateTails(Float64Array.of(0.5, 0.5), 0.5);
    expect(t3.offset).toBe(0);
    expect([...t3.probs]).toEqual([0.5, 0.5]);
    expect(t3.toInfinity).toBe(0);
    // overlapping windows: right is raised to left + 1
    const t4 = truncateTails(Float64Array.of(0.125, 0.125, 0.125), 0.5);
    expect(t4.offset).toBe(2);
    expect([...t4.probs]).toEqual([0.375]);
    expect(t4.toInfinity).toBe(0);
    // everything within τ/2: nothing kept, offset n, and the whole mass goes to +∞ (it used to
    // vanish, which under-counts δ)
    const t5 = truncateTails(Float64Array.of(0.125, 0.125), 1);
    expect(t5.offset).toBe(2);
    expect(t5.probs.length).toBe(0);
    expect(t5.toInfinity).toBe(0.25);
    // the default τ of composition: 1e-17 + 2e-17 < 5e-16 goes up, 1e-16 + 2e-16 to ∞
    const t6 = truncateTails(Float64Array.of(1e-17, 2e-17, 0.3, 0.4, 0.3, 1e-16, 2e-16), 1e-15);
    expect(t6.offset).toBe(2);
    expect([...t6.probs]).toEqual([0.3 + (1e-17 + 2e-17), 0.4, 0.3]);
    expect(t6.toInfinity).toBe(1e-16 + 2e-16);
  });
});

describe("pmf.ts: composition", () => {
  it("refuses different intervals", () => {
    expect(() => composePmfs(identityPmf(0.1), identityPmf(0.2))).toThrow(new AccountantInputError("cannot compose PLDs with discretization intervals 0.1 and 0.2"));
  });

  it("is the hand convolution, with ∞-masses 1 − (1−a)(1−b) and lowers added", () => {
    const a = makePmf(0.5, -1, Float64Array.of(0.25, 0.5), 0.25);
    const b = makePmf(0.5, 3, Float64Array.of(0.125, 0.375), 0.5);
    const c = composePmfs(a, b, 0);
    expect(c.h).toBe(0.5);
    expect(c.lower).toBe(2);
    expect([...c.probs]).toEqual([0.03125, 0.09375 + 0.0625, 0.1875]);
    expect(c.infinityMass).toBe(0.625);
    expect(c.sparse).toBe(true);
    // with the default τ nothing this large is truncated
    expect(composePmfs(a, b)).toEqual(c);
  });

  it("the identity on either side returns a copy of the other", () => {
    const b = makePmf(0.5, 3, Float64Array.of(0.125, 0.375, 0.5), 0);
    for (const c of [composePmfs(identityPmf(0.5), b, 0), composePmfs(b, identityPmf(0.5), 0)]) {
      expect(c.probs).not.toBe(b.probs);
      expect([...c.probs]).toEqual([0.125, 0.375, 0.5]);
      expect(c.lower).toBe(3);
    }
    // almost-identities are convolved: mass 0.5 at 0, [1, 0] (length 2), at lower 1 with mass 1
    expect([...composePmfs(makePmf(0.5, 0, Float64Array.of(0.5), 0), b, 0).probs]).toEqual([0.0625, 0.1875, 0.25]);
    const twoPoint = composePmfs(makePmf(0.5, 0, Float64Array.of(1, 0), 0), b, 0);
    expect([...twoPoint.probs]).toEqual([0.125, 0.375, 0.5, 0]);
    const shifted = composePmfs(makePmf(0.5, 2, Float64Array.of(1), 0), b, 0);
    expect(shifted.lower).toBe(5);
    expect([...shifted.probs]).toEqual([0.125, 0.375, 0.5]);
    const withInf = composePmfs(makePmf(0.5, 0, Float64Array.of(1), 0.25), b, 0);
    expect(withInf.infinityMass).toBe(0.25);
  });

  it("truncates with the default τ = 1e-15 after convolving", () => {
    const a = makePmf(1, 0, Float64Array.of(2e-16, 0.5, 0.5 - 4e-16, 2e-16), 0);
    const id2 = makePmf(1, 0, Float64Array.of(0.5, 0.5), 0);
    const c = composePmfs(a, id2);
    // convolution: [1e-16, 0.25 + 1e-16, 0.5 − 2e-16, 0.25 − 1e-16, 1e-16]
    expect(c.lower).toBe(1);
    expect(c.probs.length).toBe(3);
    expect(c.infinityMass).toBe(1e-16);
    const c0 = composePmfs(a, id2, 0);
    expect(c0.lower).toBe(0);
    expect(c0.probs.length).toBe(5);
    expect(c0.infinityMass).toBe(0);
  });
});

describe("pmf.ts: self-convolution", () => {
  it("selfConvolveBounds: τ = 0 is the full support; otherwise a Chernoff window that holds all but τ", () => {
    expect(selfConvolveBounds(Float64Array.of(0.25, 0.5, 0.25), 7, 0)).toEqual({ lower: 0, upper: 14 });
    expect(selfConvolveBounds(new Float64Array(4), 3, 1e-3)).toEqual({ lower: 0, upper: 9 });
    const p = Float64Array.of(0.25, 0.5, 0.25);
    let full: Float64Array = p;
    for (let i = 1; i < 20; i++) full = convolveNaive(full, p);
    const { lower, upper } = selfConvolveBounds(p, 20, 1e-3);
    expect(lower).toBeGreaterThan(0);
    expect(upper).toBeLessThan(40);
    expect(lower + upper).toBe(40); // symmetric
    let outside = 0;
    for (let i = 0; i < full.length; i++) if (i < lower || i > upper) outside += full[i]!;
    expect(outside).toBeLessThanOrEqual(1e-3);
    expect({ lower, upper }).toEqual({ lower: 8, upper: 32 });
    // skewed: the upper window is tighter than the lower
    const s = Float64Array.of(0.7, 0.2, 0.1);
    expect(selfConvolveBounds(s, 10, 1e-6)).toEqual({ lower: 0, upper: 18 });
  });

  it("selfConvolve equals repeated convolution (k = 1, 2, 3, 5; lengths 1 … 300)", () => {
    const rnd = lcg(3);
    for (const len of [1, 2, 3, 4, 5, 8, 17, 64, 300]) {
      const p = Float64Array.from({ length: len }, () => rnd() + 0.5);
      for (const k of [1, 2, 3, 5]) {
        let want: Float64Array = p;
        for (let i = 1; i < k; i++) want = convolveNaive(want, p);
        const got = selfConvolve(p, k, 0);
        expect(got.offset).toBe(0);
        expect(got.probs.length, `len ${len} k ${k}`).toBe(want.length);
        let mx = 0;
        for (const v of want) mx = Math.max(mx, v);
        expect(maxAbsDiff(got.probs, want) / mx, `len ${len} k ${k}`).toBeLessThan(1e-13);
      }
    }
  });

  it("selfConvolve reads a Chernoff window (offset > 0) out of the circular result", () => {
    const p = Float64Array.of(0.25, 0.5, 0.25);
    let full: Float64Array = p;
    for (let i = 1; i < 20; i++) full = convolveNaive(full, p);
    const got = selfConvolve(p, 20, 1e-3);
    expect(got.offset).toBe(8);
    expect(got.probs.length).toBe(32 - 8 + 1);
    for (let i = 0; i < got.probs.length; i++) expect(Math.abs(got.probs[i]! - full[i + got.offset]!)).toBeLessThan(1e-3);
    // the centre is not affected by the wrap-around at all
    expect(got.probs[20 - got.offset]).toBeCloseTo(full[20]!, 6);
  });

  it("selfConvolve of a large power: underflowing spectrum coefficients are 0", () => {
    const got = selfConvolve(Float64Array.of(0.5, 0.5), 600, 0);
    expect(got.probs.length).toBe(601);
    // binomial(600, ½): P[S = 300] = C(600,300)/2^600
    let logC = 0;
    for (let i = 1; i <= 300; i++) logC += Math.log((300 + i) / i);
    expect(got.probs[300]).toBeCloseTo(Math.exp(logC - 600 * Math.LN2), 14);
    expect(Math.abs(got.probs[0]!)).toBeLessThan(1e-15);
    expect(sum(got.probs)).toBeCloseTo(1, 13);
  });
});

describe("pmf.ts: self-composition", () => {
  const h = 0.5;
  it("refuses counts that are not positive integers", () => {
    for (const k of [0, -1, 1.5, NaN]) expect(() => selfComposePmf(identityPmf(h), k)).toThrow(new AccountantInputError(`self-composition count must be a positive integer, got ${k}`));
  });

  it("k = 1 of a sparse PMF is the PMF itself", () => {
    const p = makePmf(h, -1, Float64Array.of(0.25, 0.75), 0);
    expect(selfComposePmf(p, 1)).toBe(p);
  });

  it("sparse with len^k ≤ 1000: repeated composition, τ only at the last step", () => {
    const p = makePmf(h, -1, Float64Array.of(4e-16, 0.5, 0.5 - 4e-16), 0.01);
    for (const k of [2, 3, 5]) {
      let want = p;
      for (let i = 2; i <= k; i++) want = composePmfs(want, p, i === k ? DEFAULT_TAIL_MASS_TRUNCATION : 0);
      const got = selfComposePmf(p, k);
      expect(got.lower).toBe(want.lower);
      expect(sameBits(got.probs, want.probs), `k = ${k}`).toBe(true);
      expect(got.infinityMass).toBe(want.infinityMass);
    }
    // len^k = 10³ = 1000 is still by composition: no τ is added to ∞ when nothing is truncated
    const u = makePmf(h, 0, new Float64Array(10).fill(0.1), 0);
    const c3 = selfComposePmf(u, 3);
    expect(c3.infinityMass).toBe(0);
    expect(c3.probs.length).toBe(28);
    // 10⁴ > 1000: the FFT power, whose ∞-mass carries the τ of the Chernoff window
    const c4 = selfComposePmf(u, 4);
    expect(c4.infinityMass).toBe(1e-15);
    let want: Float64Array = u.probs;
    for (let i = 1; i < 4; i++) want = convolveNaive(want, u.probs);
    expect(maxAbsDiff(c4.probs, want.slice(c4.lower, c4.lower + c4.probs.length))).toBeLessThan(1e-15);
  });

  it("the FFT power: lower k·lower + offset, ∞-mass τ + 1 − (1 − m)^k", () => {
    const probs = Float64Array.of(0.2, 0.3, 0.29, 0.2);
    const p = makePmf(h, -2, probs, 0.01);
    const got = selfComposePmf(p, 6, 0); // 4⁶ > 1000
    expect(got.lower).toBe(-12);
    expect(got.infinityMass).toBeCloseTo(1 - 0.99 ** 6, 15);
    let want: Float64Array = probs;
    for (let i = 1; i < 6; i++) want = convolveNaive(want, probs);
    expect(maxAbsDiff(got.probs, want)).toBeLessThan(1e-15);
    // a Chernoff window [1, 17] of the 19 indices: lower −11, τ added to ∞
    const withTau = selfComposePmf(p, 6, 1e-2);
    expect(selfConvolveBounds(probs, 6, 1e-2)).toEqual({ lower: 1, upper: 17 });
    expect(withTau.infinityMass).toBeCloseTo(1e-2 + 1 - 0.99 ** 6, 15);
    expect(withTau.lower).toBe(-11);
    expect(withTau.probs.length).toBe(17);
    for (let i = 0; i < 17; i++) expect(Math.abs(withTau.probs[i]! - want[i + 1]!)).toBeLessThan(1e-2);
    expect(withTau.probs[8]).toBeCloseTo(want[9]!, 5);
  });

  it("a dense PMF (> 1000 points) goes through the FFT even for k = 1", () => {
    const probs = new Float64Array(1001).fill(0.98 / 1001);
    const p = makePmf(h, 5, probs, 0.02);
    expect(p.sparse).toBe(false);
    const got = selfComposePmf(p, 1);
    expect(got).not.toBe(p);
    expect(got.lower).toBe(5);
    expect(got.infinityMass).toBeCloseTo(0.02 + 1e-15, 17);
    expect(got.infinityMass).not.toBe(0.02);
    expect(maxAbsDiff(got.probs, probs)).toBeLessThan(1e-16);
  });
});

describe("pmf.ts: δ(ε) and ε(δ) on hand-solved PMFs", () => {
  // losses −0.5, 0, 0.5 with masses 0.2, 0.3, 0.4, and 0.1 at +∞
  const p = makePmf(0.5, -1, Float64Array.of(0.2, 0.3, 0.4), 0.1);

  it("pmfDeltaForEpsilon", () => {
    expect(pmfDeltaForEpsilon(p, Infinity)).toBe(0.1);
    expect(pmfDeltaForEpsilon(p, 0.5)).toBe(0.1);
    expect(pmfDeltaForEpsilon(p, 2)).toBe(0.1);
    expect(pmfDeltaForEpsilon(p, 0)).toBeCloseTo(0.1 + 0.4 * (1 - Math.exp(-0.5)), 16);
    expect(pmfDeltaForEpsilon(p, 0.25)).toBeCloseTo(0.1 + 0.4 * (1 - Math.exp(-0.25)), 16);
    expect(pmfDeltaForEpsilon(p, -0.25)).toBeCloseTo(0.1 + 0.4 * (1 - Math.exp(-0.75)) + 0.3 * (1 - Math.exp(-0.25)), 16);
    expect(pmfDeltaForEpsilon(p, -1)).toBeCloseTo(0.1 + 0.4 * (1 - Math.exp(-1.5)) + 0.3 * (1 - Math.exp(-1)) + 0.2 * (1 - Math.exp(-0.5)), 16);
  });

  it("pmfEpsilonForDelta", () => {
    // losses 0, 1, 2 with 0.5, 0.25, 0.25
    const q = makePmf(1, 0, Float64Array.of(0.5, 0.25, 0.25), 0);
    expect(pmfEpsilonForDelta(q, 0.1)).toBeCloseTo(2 + Math.log(0.6), 15); // on [1, 2): 0.25(1 − e^{ε−2}) = 0.1
    expect(pmfEpsilonForDelta(q, 0.2)).toBeCloseTo(Math.log(1.2) - Math.log(Math.exp(-1) + Math.exp(-2)), 15); // on [0, 1)
    expect(pmfEpsilonForDelta(q, 0.45)).toBe(0); // δ(0) ≈ 0.374
    expect(pmfEpsilonForDelta(q, 0.25)).toBeCloseTo(Math.log(1) - Math.log(Math.exp(-1) + Math.exp(-2)) + Math.log(0.25 / 0.25), 15);
    // ∞-mass: above δ → ∞; equal → where the finite part vanishes (the top loss)
    const r = makePmf(1, 0, Float64Array.of(0.5, 0.25, 0.2), 0.05);
    expect(pmfEpsilonForDelta(r, 0.04)).toBe(Infinity);
    expect(pmfEpsilonForDelta(r, 0.05)).toBeCloseTo(2, 14);
    // negative losses: the hand PMF above
    expect(pmfEpsilonForDelta(p, 0.2)).toBeCloseTo(0.5 + Math.log(0.3 / 0.4), 15);
    expect(pmfEpsilonForDelta(p, 0.5)).toBe(0);
    // consistency δ(ε(δ)) = δ inside the support
    for (const d of [0.11, 0.15, 0.2, 0.25]) expect(pmfDeltaForEpsilon(p, pmfEpsilonForDelta(p, d))).toBeCloseTo(d, 14);
  });

  it("pmfEpsilonForDelta where e^{−ℓ} underflows answers the next grid point", () => {
    const far = makePmf(1, 800, Float64Array.of(0.5, 0.5), 0);
    expect(pmfEpsilonForDelta(far, 0.5)).toBe(802);
    expect(pmfEpsilonForDelta(far, 0.6)).toBe(801);
    expect(pmfEpsilonForDelta(far, 0.4)).toBe(802);
  });
});

// ---------------------------------------------------------------------------------------------
// connect-dots.ts

describe("connect-dots.ts", () => {
  it("refusals with their messages", () => {
    expect(() => connectDotsFixedGap(0.1, 3, 2, new Float64Array(0))).toThrow(new AccountantInputError("connect-the-dots: upper index 2 below lower 3"));
    expect(() => connectDotsFixedGap(0.1, 0, 2, new Float64Array(2))).toThrow(new AccountantInputError("connect-the-dots: 2 deltas for 3 points"));
    for (const d of [-0.1, 1.5, NaN]) expect(() => connectDotsFixedGap(0.1, 0, 1, Float64Array.of(d, 0))).toThrow(new AccountantInputError(`connect-the-dots: δ = ${d} outside [0, 1]`));
    expect(() => connectDotsFixedGap(0.1, 0, 1, Float64Array.of(0.5, 0.5 + 2e-12))).toThrow(new AccountantInputError("connect-the-dots: δ(ε) must be non-increasing"));
    expect(() => connectDotsFixedGap(0.1, 0, 2, Float64Array.of(0.5, 0.4, 0.6))).toThrow("non-increasing");
    // a rise of exactly 1e-12 is still tolerated (strict >)
    expect(connectDotsFixedGap(0.1, 0, 1, Float64Array.of(0, 1e-12)).infinityMass).toBe(0);
    // exactly 0 and 1 are allowed
    expect(connectDotsFixedGap(0.1, 0, 1, Float64Array.of(1, 0)).infinityMass).toBe(0);
  });

  it("one point: mass 1 − δ there, δ at ∞", () => {
    const p = connectDotsFixedGap(0.2, -4, -4, Float64Array.of(0.25));
    expect(p).toEqual(makePmf(0.2, -4, Float64Array.of(0.75), 0.25));
  });

  it("by hand at h = ln 2 (e^h − 1 = 1)", () => {
    const p = connectDotsFixedGap(Math.LN2, -1, 2, Float64Array.of(0.5, 0.25, 0.125, 0));
    expect(p.h).toBe(Math.LN2);
    expect(p.lower).toBe(-1);
    expect(p.infinityMass).toBe(0);
    expect(maxAbsDiff(p.probs, [0.25, 0.375, 0.125, 0.25])).toBeLessThan(1e-15);
    // the PLD's δ passes through every dot
    for (let i = 0; i < 4; i++) expect(pmfDeltaForEpsilon(p, (i - 1) * Math.LN2)).toBeCloseTo([0.5, 0.25, 0.125, 0][i]!, 15);
  });

  it("at a generic h, with ∞-mass, two points and negative masses clipped", () => {
    const h = 0.3;
    const d = [0.5, 0.4, 0.3, 0.22, 0.15];
    const p = connectDotsFixedGap(h, 2, 6, Float64Array.from(d));
    const em1 = Math.expm1(h);
    const want = [
      1 - 0.5 + (0.4 - 0.5) / em1,
      (0.3 - 0.4 - (0.4 - 0.5) * Math.exp(h)) / em1,
      (0.22 - 0.3 - (0.3 - 0.4) * Math.exp(h)) / em1,
      (0.15 - 0.22 - (0.22 - 0.3) * Math.exp(h)) / em1,
      (0.15 - 0.22) / Math.expm1(-h),
    ];
    expect(maxAbsDiff(p.probs, want)).toBeLessThan(1e-15);
    expect(p.infinityMass).toBe(0.15);
    expect(want.every((x) => x > 0)).toBe(true);
    expect(sum(p.probs) + p.infinityMass).toBeCloseTo(1, 15);
    for (let i = 0; i < 5; i++) expect(pmfDeltaForEpsilon(p, (2 + i) * h)).toBeCloseTo(d[i]!, 15);
    // two points
    const two = connectDotsFixedGap(h, 0, 1, Float64Array.of(0.3, 0.2));
    expect(maxAbsDiff(two.probs, [1 - 0.3 + (0.2 - 0.3) / em1, (0.2 - 0.3) / Math.expm1(-h)])).toBeLessThan(1e-15);
    expect(two.infinityMass).toBe(0.2);
    // a concave kink gives a negative middle mass, set to 0 (p0 = 1 − 0.5 + (−0.1)/em1 > 0)
    const kink = connectDotsFixedGap(h, 0, 2, Float64Array.of(0.5, 0.4, 0.0));
    expect(kink.probs[1]).toBe(0);
    expect(kink.probs[0]).toBeCloseTo(0.5 - 0.1 / em1, 15);
  });

  it("a rise within 1e-12 is tolerated and flattened by the running minimum", () => {
    const p = connectDotsFixedGap(Math.LN2, 0, 1, Float64Array.of(0.5, 0.5 + 1e-13));
    expect([...p.probs]).toEqual([0.5, 0]);
    expect(p.infinityMass).toBe(0.5);
    const q = connectDotsFixedGap(Math.LN2, 0, 2, Float64Array.of(0.5, 0.5 + 5e-13, 0.25));
    expect(q.infinityMass).toBe(0.25);
    expect(q.probs[0]).toBe(0.5);
    expect(q.probs[1]).toBe(0);
    expect(q.probs[2]).toBeCloseTo(0.5, 15);
  });
});

// ---------------------------------------------------------------------------------------------
// gaussian.ts

/** Balle & Wang (2018), Thm. 8, μ = 1/σ: δ(ε) = Φ(μ/2 − ε/μ) − e^ε Φ(−μ/2 − ε/μ). */
function balleWang(sigma: number, eps: number): number {
  const mu = 1 / sigma;
  return normalCdf(mu / 2 - eps / mu) - Math.exp(eps + normalLogCdf(-mu / 2 - eps / mu));
}
function exactEpsilon(sigma: number, delta: number): number {
  let lo = 0;
  let hi = 1;
  while (balleWang(sigma, hi) > delta) hi *= 2;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (balleWang(sigma, mid) > delta) lo = mid;
    else hi = mid;
  }
  return hi;
}

describe("gaussian.ts: logATimesExpBPlusC", () => {
  it("every branch", () => {
    expect(logATimesExpBPlusC(0, 5, 3)).toBe(Math.log(3));
    expect(logATimesExpBPlusC(-1, 0, 0)).toBeNaN();
    expect(logATimesExpBPlusC(-1, 0, -2)).toBeNaN();
    expect(logATimesExpBPlusC(-1, 0, 3)).toBeCloseTo(Math.log(2), 15);
    expect(logATimesExpBPlusC(-2, 1, 10)).toBeCloseTo(Math.log(10 - 2 * Math.E), 15);
    expect(logATimesExpBPlusC(-1, Math.log(3), 3)).toBeNaN(); // −e^b·1 + 3 = 0
    expect(logATimesExpBPlusC(-1, Math.log(4), 3)).toBeNaN();
    expect(logATimesExpBPlusC(2, 0, 3)).toBe(Math.log(5));
    expect(logATimesExpBPlusC(1, 0, -1)).toBe(-Infinity); // b = 0: log(a + c), not the log-difference (NaN)
    expect(logATimesExpBPlusC(2, 1.5, 0)).toBe(1.5 + Math.log(2));
    expect(logATimesExpBPlusC(2, 1, -1)).toBeCloseTo(Math.log(2 * Math.E - 1), 15);
    expect(logATimesExpBPlusC(2, 1, 3)).toBeCloseTo(Math.log(2 * Math.E + 3), 15);
    expect(logATimesExpBPlusC(2, -3, 3)).toBeCloseTo(Math.log(2 * Math.exp(-3) + 3), 15);
    expect(logATimesExpBPlusC(0.5, 1000, 1)).toBeCloseTo(1000 + Math.log(0.5), 12);
    expect(logATimesExpBPlusC(0.5, 1000, -1)).toBeCloseTo(1000 + Math.log(0.5), 12);
    expect(logATimesExpBPlusC(1, -1000, 2)).toBeCloseTo(Math.log(2), 15);
    expect(logATimesExpBPlusC(1, 0.5, -Math.exp(0.5))).toBeNaN();
    expect(logATimesExpBPlusC(1, 0.5, -Math.exp(1))).toBeNaN();
  });
});

describe("gaussian.ts: GaussianPrivacyLoss", () => {
  it("refuses σ ≤ 0 and q outside (0, 1]", () => {
    for (const s of [0, -1, NaN]) expect(() => new GaussianPrivacyLoss(s, 1, "remove")).toThrow(new RangeError(`σ must be positive, got ${s}`));
    for (const q of [0, -0.1, 1.5, NaN]) expect(() => new GaussianPrivacyLoss(1, q, "add")).toThrow(new RangeError(`sampling probability must be in (0, 1], got ${q}`));
    expect(new GaussianPrivacyLoss(1, 1, "add").q).toBe(1);
    expect(new GaussianPrivacyLoss(1e-3, 1e-9, "remove").sigma).toBe(1e-3);
  });

  it("privacy loss ℓ(x), REMOVE and ADD, with and without sampling", () => {
    expect(new GaussianPrivacyLoss(2, 1, "remove").loss(0.3)).toBeCloseTo(-0.2, 16);
    expect(new GaussianPrivacyLoss(2, 1, "add").loss(0.3)).toBeCloseTo(0.05, 16);
    expect(new GaussianPrivacyLoss(2, 0.5, "remove").loss(0.3)).toBeCloseTo(Math.log(0.5 * Math.exp(-0.2) + 0.5), 15);
    expect(new GaussianPrivacyLoss(2, 0.5, "add").loss(0.3)).toBeCloseTo(-Math.log(0.5 * Math.exp(-0.05) + 0.5), 15);
    expect(new GaussianPrivacyLoss(1, 0.25, "remove").loss(-3)).toBeCloseTo(Math.log(0.25 * Math.exp(2.5) + 0.75), 15);
  });

  it("δ(ε) without sampling is Balle–Wang (REMOVE = ADD), mpmath values", () => {
    const want: [number, number, number][] = [
      [1, 0, 0.38292492254802621],
      [1, 0.5, 0.23842170813487663],
      [1, 1, 0.12693673750664395],
      [1, 3, 0.0015371853694009548],
      [2, 0.5, 0.052440323287669662],
      [2, 1, 0.0068295949831145754],
      [2, 3, 3.4009117356735288e-10],
    ];
    for (const [s, e, d] of want) {
      relClose(new GaussianPrivacyLoss(s, 1, "remove").deltaForEpsilon(e), d, 1e-12);
      relClose(new GaussianPrivacyLoss(s, 1, "add").deltaForEpsilon(e), d, 1e-12);
    }
  });

  it("δ(ε) with sampling q = ½ (mpmath), both early exits and the clip", () => {
    const r = new GaussianPrivacyLoss(1, 0.5, "remove");
    const a = new GaussianPrivacyLoss(1, 0.5, "add");
    relClose(r.deltaForEpsilon(-0.5), 0.39902340387946184, 1e-12);
    relClose(r.deltaForEpsilon(0), 0.1914624612740131, 1e-12);
    relClose(r.deltaForEpsilon(0.3), 0.11525892357484681, 1e-12);
    relClose(a.deltaForEpsilon(-0.5), 0.44195820618732184, 1e-12);
    relClose(a.deltaForEpsilon(0), 0.1914624612740131, 1e-12);
    relClose(a.deltaForEpsilon(0.3), 0.059166256588419679, 1e-12);
    // REMOVE below log(1 − q): δ = 1 − e^ε
    expect(r.deltaForEpsilon(-1)).toBe(-Math.expm1(-1));
    expect(r.deltaForEpsilon(-0.7)).toBe(-Math.expm1(-0.7));
    // ADD at or above −log(1 − q) = ln 2: δ = 0
    expect(a.deltaForEpsilon(1)).toBe(0);
    expect(a.deltaForEpsilon(Math.LN2)).toBe(0);
    expect(a.deltaForEpsilon(0.69)).toBeGreaterThan(0);
    // just below ln 2 the difference of the two tiny CDFs rounds to −1.5e-239: clipped to 0
    expect(a.deltaForEpsilon(0.6931471805599383)).toBe(0);
    // far out δ is 0 or tiny, never negative, never above 1
    for (const m of [r, a, new GaussianPrivacyLoss(1, 1, "remove")]) {
      for (const e of [-20, -5, 0, 5, 20, 60]) {
        const d = m.deltaForEpsilon(e);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThanOrEqual(1);
      }
    }
    expect(new GaussianPrivacyLoss(1, 1, "remove").deltaForEpsilon(-40)).toBe(1);
  });

  it("xTruncation and gridBounds", () => {
    const z = -9.745474864965933;
    const r = new GaussianPrivacyLoss(2, 1, "remove").xTruncation();
    expect(r.lowerX).toBeCloseTo(2 * z - 1, 12);
    expect(r.upperX).toBeCloseTo(-2 * z, 12);
    const a = new GaussianPrivacyLoss(2, 1, "add").xTruncation();
    expect(a.lowerX).toBeCloseTo(2 * z, 12);
    expect(a.upperX).toBeCloseTo(-2 * z + 1, 12);
    // σ = 1, h = 0.5: ℓ(upperX) = −0.5 − 9.745 → ⌊−20.49⌋; ℓ(lowerX) = 10.245 → ⌈20.49⌉
    expect(new GaussianPrivacyLoss(1, 1, "remove").gridBounds(0.5)).toEqual({ lo: -21, hi: 21 });
    expect(new GaussianPrivacyLoss(1, 1, "add").gridBounds(0.5)).toEqual({ lo: -21, hi: 21 });
    expect(new GaussianPrivacyLoss(2, 1, "remove").gridBounds(0.1)).toEqual({ lo: Math.floor((-0.5 + 2 * z) / 4 / 0.1), hi: Math.ceil((0.5 - 2 * z) / 4 / 0.1) });
    // subsampled: REMOVE losses start at log(1 − q), ADD losses end at −log(1 − q)
    const rs = new GaussianPrivacyLoss(1, 0.5, "remove").gridBounds(0.5);
    expect(rs.lo).toBe(-2);
    expect(rs.hi).toBe(Math.ceil(Math.log(0.5 + 0.5 * Math.exp(-0.5 - (z - 1))) / 0.5));
    const as = new GaussianPrivacyLoss(1, 0.5, "add").gridBounds(0.5);
    expect(as.hi).toBe(2);
    expect(as.lo).toBe(Math.floor(-Math.log(0.5 + 0.5 * Math.exp(-0.5 + (-z + 1))) / 0.5));
  });

  it("toPmf: the connect-the-dots PLD through δ at every grid point", () => {
    for (const [q, adj] of [[1, "remove"], [0.5, "remove"], [0.5, "add"]] as const) {
      const m = new GaussianPrivacyLoss(1, q, adj);
      const h = 0.5;
      const { lo, hi } = m.gridBounds(h);
      const p = m.toPmf(h);
      expect(p.h).toBe(h);
      expect(p.lower).toBe(lo);
      expect(p.probs.length).toBe(hi - lo + 1);
      expect(p.infinityMass).toBe(m.deltaForEpsilon(hi * h));
      expect(sum(p.probs) + p.infinityMass).toBeCloseTo(1, 12);
      for (let i = lo; i <= hi; i++) expect(Math.abs(pmfDeltaForEpsilon(p, i * h) - m.deltaForEpsilon(i * h)), `${adj} q=${q} i=${i}`).toBeLessThan(1e-12);
    }
  });
});

describe("gaussian.ts: connect-the-dots ε(δ) and δ(ε) without materialising", () => {
  const sigma = 1;
  const h = 0.1;
  const m = new GaussianPrivacyLoss(sigma, 1, "remove");
  const pmf = m.toPmf(h);

  it("ε(δ): pessimistic vs Balle–Wang by less than h, equal to the materialised PMF's", () => {
    for (const delta of [1e-2, 1e-3, 1e-5, 1e-8, 0.2]) {
      const exact = exactEpsilon(sigma, delta);
      const eps = connectDotsEpsilonForDelta(m, h, delta);
      expect(eps).toBeGreaterThanOrEqual(exact);
      expect(eps - exact).toBeLessThan(h);
      expect(eps).toBeCloseTo(pmfEpsilonForDelta(pmf, delta), 10);
      // it is on the chord between the grid points around it
      const i = Math.ceil(eps / h - 1e-12);
      expect(m.deltaForEpsilon((i - 1) * h)).toBeGreaterThan(delta);
      expect(m.deltaForEpsilon(i * h)).toBeLessThanOrEqual(delta);
    }
    expect(connectDotsEpsilonForDelta(m, h, 1e-3)).toBeCloseTo(3.1433529191127327, 14);
  });

  it("ε(δ) edge cases: δ ≤ 0, δ below the ∞-mass, δ above δ(ε_lo), a negative chord", () => {
    expect(connectDotsEpsilonForDelta(m, h, 0)).toBe(Infinity);
    expect(connectDotsEpsilonForDelta(m, h, -1)).toBe(Infinity);
    const { lo, hi } = m.gridBounds(h);
    const dHi = m.deltaForEpsilon(hi * h);
    expect(dHi).toBeGreaterThan(0);
    expect(connectDotsEpsilonForDelta(m, h, dHi / 2)).toBe(Infinity);
    expect(connectDotsEpsilonForDelta(m, h, dHi)).toBeCloseTo(hi * h, 8);
    expect(connectDotsEpsilonForDelta(m, h, m.deltaForEpsilon(lo * h))).toBe(0);
    expect(connectDotsEpsilonForDelta(m, h, 0.999999)).toBe(0);
    // δ(0) ≈ 0.383 < 0.5: the chord lands below 0 and is raised to 0
    expect(connectDotsEpsilonForDelta(m, h, 0.5)).toBe(0);
    // exactly on a grid point
    expect(connectDotsEpsilonForDelta(m, h, m.deltaForEpsilon(10 * h))).toBeCloseTo(1, 12);
  });

  it("δ(ε): the chord, ≥ Balle–Wang, equal to the materialised PMF's; beyond hi the ∞-mass", () => {
    for (const eps of [0, 0.05, 0.37, 1, 2.55, 4]) {
      const d = connectDotsDeltaForEpsilon(m, h, eps);
      expect(d).toBeGreaterThanOrEqual(balleWang(sigma, eps) - 1e-16);
      expect(Math.abs(d - pmfDeltaForEpsilon(pmf, eps))).toBeLessThan(1e-13);
      const i = Math.floor(eps / h);
      expect(d).toBeLessThanOrEqual(m.deltaForEpsilon(i * h));
      expect(d).toBeGreaterThanOrEqual(m.deltaForEpsilon((i + 1) * h));
    }
    const t = Math.expm1(0.37 - 3 * h) / Math.expm1(h);
    const d0 = m.deltaForEpsilon(3 * h);
    const d1 = m.deltaForEpsilon(4 * h);
    expect(connectDotsDeltaForEpsilon(m, h, 0.37)).toBeCloseTo(d0 + (d1 - d0) * t, 16);
    const { lo, hi } = m.gridBounds(h);
    expect(connectDotsDeltaForEpsilon(m, h, (hi + 0.5) * h)).toBe(m.deltaForEpsilon(hi * h));
    expect(connectDotsDeltaForEpsilon(m, h, 1000)).toBe(m.deltaForEpsilon(hi * h));
    expect(connectDotsDeltaForEpsilon(m, h, (lo - 0.5) * h)).toBe(1);
    expect(connectDotsDeltaForEpsilon(m, h, (lo + 0.5) * h)).toBeLessThan(1);
    expect(connectDotsDeltaForEpsilon(m, h, (lo + 0.5) * h)).toBeGreaterThan(0.999);
  });
});

// ---------------------------------------------------------------------------------------------
// pld-accountant.ts

const g = (z: number): DpEvent => ({ kind: "gaussian", noiseMultiplier: z });
const ps = (q: number, z: number): DpEvent => ({ kind: "poissonSampled", samplingProbability: q, event: g(z) });
const ddg = (o: Partial<DistributedDiscreteGaussianEvent> = {}): DistributedDiscreteGaussianEvent => ({
  kind: "distributedDiscreteGaussian",
  l2Sensitivity: 1,
  l1Sensitivity: 1,
  perDeviceVariance: 0.05,
  devices: 3,
  dimension: 4,
  ...o,
});
const flat = (e: DpEvent, count = 1): { leaves: PldLeaf[]; nonPrivate: boolean } => {
  const out = { leaves: [] as PldLeaf[], nonPrivate: false };
  flattenEvent(e, count, out);
  return out;
};

describe("pld-accountant.ts: closed forms", () => {
  it("numericalDeltaMargin = min(1e-12, δ/1000)", () => {
    expect(DEFAULT_VALUE_DISCRETIZATION_INTERVAL).toBe(1e-4);
    expect(numericalDeltaMargin(1e-6)).toBe(1e-12);
    expect(numericalDeltaMargin(1e-9)).toBe(1e-12);
    expect(numericalDeltaMargin(1e-10)).toBe(1e-13);
    expect(numericalDeltaMargin(0)).toBe(0);
  });

  it("equivalentNoiseMultiplier: ρ₂ and ρ₃ branches with τ ≠ 0 (mpmath), τ = 0, zero variance", () => {
    relClose(equivalentNoiseMultiplier(ddg()), 0.04173012609460523, 1e-14); // ℓ₁ < ℓ₂√d: ρ₂
    relClose(equivalentNoiseMultiplier(ddg({ l1Sensitivity: 10 })), 0.039761519939275917, 1e-14); // ρ₃
    relClose(equivalentNoiseMultiplier(ddg({ l2Sensitivity: 2, l1Sensitivity: 3, perDeviceVariance: 100, devices: 5, dimension: 7 })), 11.180339887498948, 1e-14);
    expect(equivalentNoiseMultiplier(ddg({ perDeviceVariance: 0 }))).toBe(0);
    expect(equivalentNoiseMultiplier(ddg({ perDeviceVariance: 0, l2Sensitivity: 0, l1Sensitivity: 0 }))).toBe(0); // not 0/0
    // one device: no τ terms, the central z = σ/Δ₂
    relClose(equivalentNoiseMultiplier(ddg({ devices: 1, perDeviceVariance: 0.04, l2Sensitivity: 0.1 })), 2, 1e-15);
  });
});

describe("pld-accountant.ts: flattenEvent", () => {
  it("noOp and nonPrivate (count 0 releases nothing)", () => {
    expect(flat({ kind: "noOp" })).toEqual({ leaves: [], nonPrivate: false });
    expect(flat({ kind: "nonPrivate" })).toEqual({ leaves: [], nonPrivate: true });
    expect(flat({ kind: "nonPrivate" }, 0)).toEqual({ leaves: [], nonPrivate: false });
  });

  it("gaussian: σ/√count; count 0, z = ∞ release nothing; z = 0 is non-private; bad z refused", () => {
    expect(flat(g(2), 4)).toEqual({ leaves: [{ kind: "gaussian", sigma: 1 }], nonPrivate: false });
    expect(flat(g(0), 0)).toEqual({ leaves: [], nonPrivate: false });
    expect(flat(g(1), 0)).toEqual({ leaves: [], nonPrivate: false });
    expect(flat(g(Infinity), 3)).toEqual({ leaves: [], nonPrivate: false });
    expect(flat(g(0), 2)).toEqual({ leaves: [], nonPrivate: true });
    for (const z of [-1, NaN]) expect(() => flat(g(z))).toThrow(new AccountantInputError(`noise multiplier must be ≥ 0, got ${z}`));
  });

  it("distributed discrete Gaussian: its equivalent Gaussian", () => {
    const z = equivalentNoiseMultiplier(ddg());
    expect(flat(ddg(), 9)).toEqual({ leaves: [{ kind: "gaussian", sigma: z / 3 }], nonPrivate: false });
    expect(flat(ddg({ perDeviceVariance: 0 }))).toEqual({ leaves: [], nonPrivate: true });
  });

  it("poissonSampled: q range, q = 0 and q = 1, inner noOp / gaussian / DDG, other inner kinds refused", () => {
    for (const q of [-0.1, 1.1, NaN]) expect(() => flat(ps(q, 1))).toThrow(new AccountantInputError(`sampling probability must be in [0, 1], got ${q}`));
    expect(flat(ps(0, 1))).toEqual({ leaves: [], nonPrivate: false });
    expect(flat(ps(0, 0))).toEqual({ leaves: [], nonPrivate: false });
    expect(flat(ps(1, 3), 9)).toEqual({ leaves: [{ kind: "gaussian", sigma: 1 }], nonPrivate: false });
    expect(flat(ps(0.25, 3), 9)).toEqual({ leaves: [{ kind: "poissonGaussian", sigma: 3, q: 0.25, count: 9 }], nonPrivate: false });
    expect(flat(ps(0.25, 0), 9)).toEqual({ leaves: [], nonPrivate: true });
    expect(flat({ kind: "poissonSampled", samplingProbability: 0.5, event: { kind: "noOp" } })).toEqual({ leaves: [], nonPrivate: false });
    expect(flat({ kind: "poissonSampled", samplingProbability: 0.5, event: ddg() }, 2)).toEqual({
      leaves: [{ kind: "poissonGaussian", sigma: equivalentNoiseMultiplier(ddg()), q: 0.5, count: 2 }],
      nonPrivate: false,
    });
    expect(() => flat({ kind: "poissonSampled", samplingProbability: 0.5, event: { kind: "nonPrivate" } })).toThrow(new UnsupportedEventError("PLD cannot account Poisson sampling of a nonPrivate event"));
    expect(() => flat({ kind: "poissonSampled", samplingProbability: 0.5, event: { kind: "composed", events: [] } })).toThrow(UnsupportedEventError);
  });

  it("sampledWithoutReplacement: sizes checked, noOp passes, anything else refused", () => {
    expect(() => flat({ kind: "sampledWithoutReplacement", sourceDatasetSize: 10, sampleSize: 11, event: g(1) })).toThrow(new AccountantInputError("sample size exceeds the dataset size"));
    expect(flat({ kind: "sampledWithoutReplacement", sourceDatasetSize: 10, sampleSize: 10, event: { kind: "noOp" } })).toEqual({ leaves: [], nonPrivate: false });
    expect(() => flat({ kind: "sampledWithoutReplacement", sourceDatasetSize: 10, sampleSize: 10, event: g(1) })).toThrow(
      new UnsupportedEventError(
        "the PLD accountant does not support sampling without replacement (dp_accounting 0.6's PLD accountant does not either); use the RDP accountant or Poisson sampling",
      ),
    );
  });

  it("selfComposed multiplies counts (nested), refuses bad counts; composed keeps order; unknown kinds refused", () => {
    expect(flat({ kind: "selfComposed", count: 3, event: { kind: "selfComposed", count: 2, event: g(6) } }, 2)).toEqual({ leaves: [{ kind: "gaussian", sigma: 6 / Math.sqrt(12) }], nonPrivate: false });
    expect(flat({ kind: "selfComposed", count: 0, event: g(0) })).toEqual({ leaves: [], nonPrivate: false });
    expect(flat({ kind: "selfComposed", count: 5, event: ps(0.5, 1) }, 3).leaves).toEqual([{ kind: "poissonGaussian", sigma: 1, q: 0.5, count: 15 }]);
    for (const c of [-1, 1.5]) expect(() => flat({ kind: "selfComposed", count: c, event: g(1) })).toThrow(new AccountantInputError(`self-composition count must be a non-negative integer, got ${c}`));
    expect(flat({ kind: "composed", events: [ps(0.5, 2), g(4), { kind: "nonPrivate" }, g(3)] }, 1)).toEqual({
      leaves: [
        { kind: "poissonGaussian", sigma: 2, q: 0.5, count: 1 },
        { kind: "gaussian", sigma: 4 },
        { kind: "gaussian", sigma: 3 },
      ],
      nonPrivate: true,
    });
    expect(() => flat({ kind: "nonsense" } as unknown as DpEvent)).toThrow(new UnsupportedEventError("unknown mechanism 'nonsense'"));
    expect(() => flat({} as unknown as DpEvent)).toThrow(new UnsupportedEventError("unknown mechanism 'undefined'"));
  });
});

describe("pld-accountant.ts: mergeLeaves, materialisationInterval, pldOfLeaves", () => {
  it("mergeLeaves: 1/σ² add, equal (σ, q) counts add, Gaussian first then first-seen order", () => {
    expect(mergeLeaves([])).toEqual([]);
    const a = { kind: "poissonGaussian" as const, sigma: 1, q: 0.5, count: 2 };
    const b = { kind: "poissonGaussian" as const, sigma: 1, q: 0.25, count: 3 };
    const c = { kind: "poissonGaussian" as const, sigma: 2, q: 0.5, count: 4 };
    const merged = mergeLeaves([a, { kind: "gaussian", sigma: 3 }, b, a, c, { kind: "gaussian", sigma: 4 }, b]);
    expect(merged).toEqual([
      { kind: "gaussian", sigma: 1 / Math.sqrt(1 / 9 + 1 / 16) },
      { kind: "poissonGaussian", sigma: 1, q: 0.5, count: 4 },
      { kind: "poissonGaussian", sigma: 1, q: 0.25, count: 6 },
      { kind: "poissonGaussian", sigma: 2, q: 0.5, count: 4 },
    ]);
    expect(a.count).toBe(2); // inputs untouched
    expect(mergeLeaves([b])).toEqual([b]);
    expect(mergeLeaves([{ kind: "gaussian", sigma: 2 }])).toEqual([{ kind: "gaussian", sigma: 2 }]);
  });

  it("materialisationInterval: unchanged when it fits, doubled until ≤ MAX_PMF_POINTS", () => {
    expect(MAX_PMF_POINTS).toBe(4_194_304);
    expect(materialisationInterval([])).toBe(1e-4);
    expect(materialisationInterval([{ kind: "gaussian", sigma: 1 }])).toBe(1e-4);
    expect(materialisationInterval([{ kind: "gaussian", sigma: 1 }], 0.5)).toBe(0.5);
    // σ = 0.01: losses ±5975 → 1.2e8 points at 1e-4, 3.7e6 at 3.2e-3
    expect(materialisationInterval([{ kind: "gaussian", sigma: 0.01 }])).toBe(1e-4 * 32);
    expect(materialisationInterval([{ kind: "poissonGaussian", sigma: 0.01, q: 0.01, count: 1 }])).toBe(1e-4 * 16);
    expect(materialisationInterval([{ kind: "gaussian", sigma: 1 }, { kind: "gaussian", sigma: 0.01 }], 1e-3)).toBe(4e-3);
    // exactly MAX_PMF_POINTS points is kept
    // (a plain Gaussian's grid is symmetric, so its size is odd; a sampled one's is not)
    const m = new GaussianPrivacyLoss(0.01, 0.01, "remove");
    const exact = 0.00142334822;
    const over = 0.001423348;
    const points = (h: number): number => m.gridBounds(h).hi - m.gridBounds(h).lo + 1;
    expect(points(exact)).toBe(MAX_PMF_POINTS);
    expect(points(over)).toBe(MAX_PMF_POINTS + 1);
    const leaf: PldLeaf = { kind: "poissonGaussian", sigma: 0.01, q: 0.01, count: 1 };
    expect(materialisationInterval([leaf], exact)).toBe(exact);
    expect(materialisationInterval([leaf], over)).toBe(2 * over);
  });

  it("pldOfLeaves: the identity, one Gaussian (ADD is REMOVE), sampled pairs and their order", () => {
    const empty = pldOfLeaves([]);
    expect(empty.remove).toEqual(identityPmf(1e-4));
    expect(empty.add).toBe(empty.remove);
    const h = 0.5;
    const gp = new GaussianPrivacyLoss(1, 1, "remove").toPmf(h);
    const one = pldOfLeaves([{ kind: "gaussian", sigma: 1 }], h);
    expect(one.add).toBe(one.remove);
    expect(one.remove).toEqual(composePmfs(identityPmf(h), gp));
    const leaf: PldLeaf = { kind: "poissonGaussian", sigma: 1, q: 0.5, count: 2 };
    const r = selfComposePmf(new GaussianPrivacyLoss(1, 0.5, "remove").toPmf(h), 2);
    const a = selfComposePmf(new GaussianPrivacyLoss(1, 0.5, "add").toPmf(h), 2);
    const sampled = pldOfLeaves([leaf], h);
    expect(sampled.remove).toEqual(composePmfs(identityPmf(h), r));
    expect(sampled.add).toEqual(composePmfs(identityPmf(h), a));
    expect(sampled.add.probs).not.toEqual(sampled.remove.probs);
    // Gaussian then sampled, and sampled then Gaussian
    const gs = pldOfLeaves([{ kind: "gaussian", sigma: 1 }, leaf], h);
    const g1 = composePmfs(identityPmf(h), gp);
    expect(gs.remove).toEqual(composePmfs(g1, r));
    expect(gs.add).toEqual(composePmfs(g1, a));
    const sg = pldOfLeaves([leaf, { kind: "gaussian", sigma: 1 }], h);
    expect(sg.remove).toEqual(composePmfs(composePmfs(identityPmf(h), r), gp));
    expect(sg.add).toEqual(composePmfs(composePmfs(identityPmf(h), a), gp));
  });
});

describe("pld-accountant.ts: PldAccountant at a coarse interval", () => {
  const h = 0.1;

  it("refuses intervals outside (0, 1], bad counts, bad δ and ε", () => {
    for (const v of [0, -1, 1.5, NaN]) expect(() => new PldAccountant(v)).toThrow(new AccountantInputError(`value discretization interval must be in (0, 1], got ${v}`));
    expect(new PldAccountant(1).valueDiscretizationInterval).toBe(1);
    expect(new PldAccountant().valueDiscretizationInterval).toBe(1e-4);
    const acc = new PldAccountant(h);
    for (const c of [-1, 1.5]) expect(() => acc.compose(g(1), c)).toThrow(new AccountantInputError(`count must be a non-negative integer, got ${c}`));
    for (const d of [0, 1]) expect(() => acc.getEpsilon(d)).toThrow(new AccountantInputError(`delta must be in (0, 1), got ${d}`));
    for (const e of [-1, NaN]) expect(() => acc.getDelta(e)).toThrow(new AccountantInputError(`epsilon must be non-negative, got ${e}`));
    expect(acc.getDelta(0)).toBe(0);
  });

  it("supports: true, false for unsupported, rethrows bad input", () => {
    const acc = new PldAccountant(h);
    expect(acc.supports(g(1))).toBe(true);
    expect(acc.supports({ kind: "sampledWithoutReplacement", sourceDatasetSize: 10, sampleSize: 5, event: g(1) })).toBe(false);
    expect(() => acc.supports(g(-1))).toThrow(AccountantInputError);
  });

  it("empty, noOp, nonPrivate (sticky), count 0", () => {
    const acc = new PldAccountant(h);
    expect(acc.getEpsilon(1e-6)).toBe(0);
    expect(acc.getDelta(1)).toBe(0);
    expect(acc.compose({ kind: "noOp" })).toBe(acc);
    expect(acc.compose(g(1), 0).getEpsilon(1e-6)).toBe(0);
    acc.compose({ kind: "nonPrivate" });
    expect(acc.getEpsilon(1e-6)).toBe(Infinity);
    expect(acc.getDelta(5)).toBe(1);
    acc.compose(g(1));
    expect(acc.getEpsilon(1e-6)).toBe(Infinity);
    expect(acc.getDelta(5)).toBe(1);
  });

  it("one Gaussian: the connect-the-dots closed form with δ − η − 1e-15, and δ + 1e-15 + η", () => {
    const acc = new PldAccountant(h).compose(g(2), 4); // σ = 1
    const m = new GaussianPrivacyLoss(1, 1, "remove");
    expect(acc.getEpsilon(1e-3)).toBe(connectDotsEpsilonForDelta(m, h, 1e-3 - 1e-12 - 1e-15));
    expect(acc.getEpsilon(1e-9)).toBe(connectDotsEpsilonForDelta(m, h, 1e-9 - 1e-12 - 1e-15));
    const d = connectDotsDeltaForEpsilon(m, h, 2) + 1e-15;
    expect(acc.getDelta(2)).toBe(d + 1e-12);
    const d8 = connectDotsDeltaForEpsilon(m, h, 8) + 1e-15;
    expect(d8).toBeLessThan(1e-9);
    expect(acc.getDelta(8)).toBe(d8 + d8 / 1000);
    const e = acc.getEpsilon(1e-3);
    expect(e).toBeGreaterThanOrEqual(exactEpsilon(1, 1e-3));
    expect(e - exactEpsilon(1, 1e-3)).toBeLessThan(h);
    // δ never above 1
    expect(new PldAccountant(1).compose(g(0.01)).getDelta(0)).toBe(1);
    // a second Gaussian merges into one (1/σ² add) and still takes the closed form
    acc.compose(g(Math.sqrt(3)), 1); // 1/σ² = 1 + 1/3
    expect(acc.getEpsilon(1e-3)).toBe(connectDotsEpsilonForDelta(new GaussianPrivacyLoss(1 / Math.sqrt(1 + 1 / (Math.sqrt(3) * Math.sqrt(3))), 1, "remove"), h, 1e-3 - 1e-12 - 1e-15));
  });

  it("sampled and mixed ledgers: max over REMOVE and ADD of the materialised pair, recomputed after compose", () => {
    const hh = 0.5;
    const acc = new PldAccountant(hh).compose(ps(0.5, 1), 2);
    const leaves: PldLeaf[] = [{ kind: "poissonGaussian", sigma: 1, q: 0.5, count: 2 }];
    const pair = pldOfLeaves(leaves, hh);
    const target = 1e-3 - 1e-12;
    const er = pmfEpsilonForDelta(pair.remove, target);
    const ea = pmfEpsilonForDelta(pair.add, target);
    expect(er).not.toBe(ea);
    expect(acc.getEpsilon(1e-3)).toBe(Math.max(er, ea));
    const dr = pmfDeltaForEpsilon(pair.remove, 0.5);
    const da = pmfDeltaForEpsilon(pair.add, 0.5);
    expect(dr).not.toBe(da);
    const dmax = Math.max(dr, da);
    expect(acc.getDelta(0.5)).toBe(dmax + numericalDeltaMargin(dmax));
    // composing more changes the answer (the cache is dropped) …
    const before = acc.getEpsilon(1e-3);
    acc.compose(g(2));
    const mixed = pldOfLeaves(mergeLeaves([...leaves, { kind: "gaussian", sigma: 2 }]), hh);
    const want = Math.max(pmfEpsilonForDelta(mixed.remove, target), pmfEpsilonForDelta(mixed.add, target));
    expect(acc.getEpsilon(1e-3)).toBe(want);
    expect(want).toBeGreaterThan(before);
    // … and a Gaussian with a sampled leaf is not the single-Gaussian closed form
    expect(want).not.toBe(connectDotsEpsilonForDelta(new GaussianPrivacyLoss(2, 1, "remove"), hh, target - 1e-15));
    // noOp keeps the cached pair's answer
    expect(acc.compose({ kind: "noOp" }).getEpsilon(1e-3)).toBe(want);
  });

  it("a sampled leaf alone is not treated as a plain Gaussian", () => {
    const acc = new PldAccountant(0.5).compose(ps(0.5, 1));
    const plain = new PldAccountant(0.5).compose(g(1));
    expect(acc.getEpsilon(1e-3)).toBeLessThan(plain.getEpsilon(1e-3));
    expect(acc.getDelta(0.5)).toBeLessThan(plain.getDelta(0.5));
  });
});
