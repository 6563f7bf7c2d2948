/**
 * `verify`'s adaptive-clip chain (shared/ledger/adaptive-clip-check.ts), in process: ClipChain on
 * its own — every refusal with its exact message, the float tolerance at its edge, the chain's
 * reset and advance — and through verifyLedger on a signed ledger (ADAPTIVE_CLIP, and attestations
 * that must name the round's C). The adaptive-clip round tests drive a child-process cluster.
 */
import { describe, expect, it } from "vitest";
import { nextClip } from "../shared/dp/index.ts";
import { ClipChain, verifyLedger } from "../shared/ledger/index.ts";
import { tinyRunSpec } from "./support/cluster.ts";
import { signedLedgerKit } from "./support/ledger-text.ts";

const P = { targetQuantile: 0.5, learningRate: 0.2, countStddev: 1 };
const ADAPTIVE = tinyRunSpec({ noiseMultiplier: 1, rounds: 3, cohortSize: 5, minSurvivors: 4, populationSize: 5, clip: 5, adaptiveClip: P });
const FIXED = tinyRunSpec({ noiseMultiplier: 1, rounds: 3, cohortSize: 5, minSurvivors: 4, populationSize: 5, clip: 5 });

/** The round's record as the coordinator writes it, with the next C computed honestly unless given. */
const rec = (clip: number, unclippedFraction: number, next = nextClip(clip, unclippedFraction, P)) => ({ adaptiveClip: { clip, unclippedFraction, nextClip: next } });

const MISSING = (r: number) => `round ${r}: the run clips adaptively, but the round records no (clip, unclippedFraction, nextClip)`;

describe("ClipChain: which C a round's attestations must name", () => {
  it("none without a spec; the spec's clip for a fixed-clip run, whatever the round records", () => {
    expect(new ClipChain(undefined).clipOf(rec(3, 0.5))).toBeUndefined();
    const fixed = new ClipChain(FIXED);
    expect(fixed.clipOf(rec(3, 0.5))).toBe(5);
    expect(fixed.clipOf(undefined)).toBe(5);
  });

  it("the round's recorded C for an adaptive run, and none when it records no numeric C", () => {
    const c = new ClipChain(ADAPTIVE);
    expect(c.clipOf(rec(3.5, 0.5))).toBe(3.5);
    expect(c.clipOf({ adaptiveClip: { clip: "3.5" } })).toBeUndefined();
    expect(c.clipOf({ adaptiveClip: {} })).toBeUndefined();
    expect(c.clipOf({})).toBeUndefined();
    expect(c.clipOf(undefined)).toBeUndefined();
  });
});

describe("ClipChain.completed", () => {
  it("checks nothing without a spec or for a fixed-clip run", () => {
    expect(new ClipChain(undefined).completed(0, undefined)).toEqual([]);
    expect(new ClipChain(FIXED).completed(0, undefined)).toEqual([]);
    expect(new ClipChain(FIXED).completed(0, rec(99, 7, -1))).toEqual([]);
  });

  it("accepts an honest chain: the spec's C first, then each round's next C, with b̄ at 0 and at 1", () => {
    const c = new ClipChain(ADAPTIVE);
    const r0 = rec(5, 0.75);
    expect(r0.adaptiveClip.nextClip).toBeCloseTo(5 * Math.exp(-0.2 * 0.25), 14);
    expect(c.completed(0, r0)).toEqual([]);
    const r1 = rec(r0.adaptiveClip.nextClip, 0);
    expect(c.completed(1, r1)).toEqual([]);
    expect(c.completed(2, rec(r1.adaptiveClip.nextClip, 1))).toEqual([]);
  });

  it("refuses a round that records no (clip, unclippedFraction, nextClip), or any of them not a number", () => {
    for (const privacy of [undefined, {}, { adaptiveClip: null }, { adaptiveClip: { unclippedFraction: 0.5, nextClip: 5 } }, { adaptiveClip: { clip: "5", unclippedFraction: 0.5, nextClip: 5 } }, { adaptiveClip: { clip: 5, unclippedFraction: "0.5", nextClip: 5 } }, { adaptiveClip: { clip: 5, unclippedFraction: 0.5 } }]) {
      expect(new ClipChain(ADAPTIVE).completed(3, privacy)).toEqual([MISSING(3)]);
    }
  });

  it("after a round without a record the chain restarts from the next recorded C", () => {
    const c = new ClipChain(ADAPTIVE);
    expect(c.completed(0, undefined)).toEqual([MISSING(0)]);
    expect(c.completed(1, rec(7, 0.5))).toEqual([]);
    expect(c.completed(2, rec(8, 0.5))).toEqual([`round 2: clipped at 8, but the chain gives 7`]);
  });

  it("refuses a first round that did not clip at the spec's C, and a later one that did not clip at the previous next C", () => {
    expect(new ClipChain(ADAPTIVE).completed(0, rec(6, 0.5))).toEqual([`round 0: clipped at 6, but the chain gives 5`]);
    const c = new ClipChain(ADAPTIVE);
    expect(c.completed(0, rec(5, 0.5))).toEqual([]);
    expect(c.completed(1, rec(4, 0.5))).toEqual([`round 1: clipped at 4, but the chain gives 5`]);
  });

  it("the chain follows the recorded next C, even a wrong one (reported once, at its round)", () => {
    const c = new ClipChain(ADAPTIVE);
    const want = nextClip(5, 0.5, P);
    expect(c.completed(0, rec(5, 0.5, 9))).toEqual([`round 0: nextClip 9 ≠ 5·exp(−0.2·(0.5 − 0.5)) = ${want}`]);
    expect(c.completed(1, rec(9, 0.5))).toEqual([]);
  });

  it("names a recomputed next C that differs", () => {
    const want = nextClip(5, 0.75, P);
    expect(new ClipChain(ADAPTIVE).completed(0, rec(5, 0.75, 4))).toEqual([`round 0: nextClip 4 ≠ 5·exp(−0.2·(0.75 − 0.5)) = ${want}`]);
  });

  it("refuses b̄ outside [0, 1] (and NaN) without recomputing the next C", () => {
    for (const f of [-0.001, 1.001, Number.NaN]) {
      expect(new ClipChain(ADAPTIVE).completed(0, rec(5, f, 123))).toEqual([`round 0: unclippedFraction ${f} is not in [0, 1]`]);
    }
  });

  it("equal means equal up to 1e-12 relative, at any magnitude", () => {
    const big = tinyRunSpec({ ...ADAPTIVE, clip: 1e5 });
    const want = nextClip(1e5, 0.75, P);
    const atClip = (clip: number) => new ClipChain(big).completed(0, rec(clip, 0.75)).length;
    const atNext = (next: number) => new ClipChain(big).completed(0, rec(1e5, 0.75, next)).length;
    expect(atClip(1e5)).toBe(0);
    expect(atNext(want)).toBe(0);
    // 1e-8 absolute at 1e5 is 1e-13 relative: equal; 1e-6 absolute (1e-11 relative) is not.
    expect(atClip(1e5 + 1e-8)).toBe(0);
    expect(atClip(1e5 - 1e-8)).toBe(0);
    expect(atClip(1e5 + 1e-6)).toBe(1);
    expect(atClip(1e5 - 1e-6)).toBe(1);
    expect(atNext(want + 1e-8)).toBe(0);
    expect(atNext(want - 1e-8)).toBe(0);
    expect(atNext(want + 1e-6)).toBe(1);
    expect(atNext(want - 1e-6)).toBe(1);
    // At C = 5, 1e-8 absolute is 2e-9 relative: not equal.
    expect(new ClipChain(ADAPTIVE).completed(0, rec(5 + 1e-8, 0.5, nextClip(5 + 1e-8, 0.5, P)))).toEqual([`round 0: clipped at ${5 + 1e-8}, but the chain gives 5`]);
  });

  it("reports a C that is not positive instead of throwing (a forged ledger must yield a violation)", () => {
    const c = new ClipChain(ADAPTIVE);
    expect(c.completed(0, undefined)).toEqual([MISSING(0)]);
    expect(c.completed(1, rec(0, 0.5, 1))).toEqual([`round 1: clip must be finite and > 0, got 0`]);
    expect(new ClipChain(ADAPTIVE).completed(0, rec(-1, 0.5, 1))).toEqual([`round 0: clipped at -1, but the chain gives 5`, `round 0: clip must be finite and > 0, got -1`]);
    // A forged next C of 0 is reported at its round; the round that then clips at 0 follows the chain (0 equals 0).
    const zero = new ClipChain(ADAPTIVE);
    expect(zero.completed(0, rec(5, 0.5, 0))).toEqual([`round 0: nextClip 0 ≠ 5·exp(−0.2·(0.5 − 0.5)) = 5`]);
    expect(zero.completed(1, rec(0, 0.5, 1))).toEqual([`round 1: clip must be finite and > 0, got 0`]);
  });
});

describe("verifyLedger on an adaptive-clip run", () => {
  const kit = signedLedgerKit({ spec: ADAPTIVE });
  const { DEVICES, launch, round, attestation } = kit;
  const all = DEVICES.map((_, i) => i);
  const r0 = rec(5, 0.75);
  const r1 = rec(r0.adaptiveClip.nextClip, 0.25);
  /** A completed round recording `privacy`, attested by every device naming `clip`. */
  const attested = (r: number, privacy: unknown, clip: unknown) => [round("r1", r, { body: { privacy } }), ...all.map((i) => attestation("r1", r, i, { clip }))];

  it("verifies an honest chain whose attestations name each round's C", () => {
    const f = verifyLedger(kit.ledger([launch("r1"), ...attested(0, r0, 5), ...attested(1, r1, r0.adaptiveClip.nextClip)]), { policy: kit.POLICY });
    expect(f.violations).toEqual([]);
  });

  it("ADAPTIVE_CLIP for a broken chain, naming the run; ATTESTATION_PARAMETERS for an attestation of the spec's C instead of the round's", () => {
    const broken = verifyLedger(kit.ledger([launch("r1"), ...attested(0, r0, 5), ...attested(1, rec(4, 0.25), 4)]), { policy: kit.POLICY });
    expect(broken.violations).toEqual([{ code: "ADAPTIVE_CLIP", line: 10, message: `run r1 round 1: clipped at 4, but the chain gives ${r0.adaptiveClip.nextClip}` }]);
    const stale = verifyLedger(kit.ledger([launch("r1"), ...attested(0, r0, 5), ...attested(1, r1, 5)]), { policy: kit.POLICY });
    expect(stale.violations.map((v) => v.code)).toEqual(Array(5).fill("ATTESTATION_PARAMETERS"));
    expect(stale.violations[0]!.message).toBe(`device dev-0's attestation for run r1 round 1: clip is 5, the round's is ${r0.adaptiveClip.nextClip}`);
  });

  it("a round without its record: ADAPTIVE_CLIP, and its attestations are held to the spec's C", () => {
    const f = verifyLedger(kit.ledger([launch("r1"), ...attested(0, undefined, 5)]), { policy: kit.POLICY });
    expect(f.violations).toEqual([{ code: "ADAPTIVE_CLIP", line: 4, message: `run r1 ${MISSING(0)}` }]);
  });

  it("a non-positive C is a violation, not a crash", () => {
    const f = verifyLedger(kit.ledger([launch("r1"), ...attested(0, undefined, 5), ...attested(1, rec(0, 0.5, 1), 0)]), { policy: kit.POLICY });
    expect(f.violations.map((v) => [v.code, v.message])).toEqual([
      ["ADAPTIVE_CLIP", `run r1 ${MISSING(0)}`],
      ["ADAPTIVE_CLIP", `run r1 round 1: clip must be finite and > 0, got 0`],
    ]);
  });
});
