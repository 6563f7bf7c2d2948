/**
 * Federated evaluation's pure parts (shared/eval): the count vector a device sends and its
 * guards, the noise calibration and its stated error, the modulus check, the held-out split and
 * the run-spec fields. Each guard has a case that fails when the guard is deleted.
 */
import { describe, expect, it } from "vitest";
import { addInPlace, fromSigned, zeros } from "../shared/modular/index.ts";
import { deviceEpsilon, RandomSource } from "../shared/dp/index.ts";
import {
  calibrateEvalDp, checkedEvalSum, encodeEvalCounts, evalDpEvent, evalErrorBound, EvalCountsError, EvalTally, EVAL_VECTOR_LENGTH, lastExamples, localSplit,
  LOSS_CAP_NATS, metricsFromSums, noiseEvalVector, sumsFromVector, type EvalCounts,
} from "../shared/eval/index.ts";
import { splitHoldout } from "../shared/data/index.ts";
import { buildExamples } from "../shared/model/index.ts";
import { aggregationLength, evaluatesAfter, evalRoundNumber, parseRunSpec, roundConfigSchema, RunSpecError } from "../shared/run/index.ts";
import { tinyRunSpec, TINY_MODEL } from "./support/cluster.ts";

const dp0 = calibrateEvalDp({ maxExamples: 100, noiseMultiplier: 0, minSurvivors: 3, colluders: 0, maxSummands: 5, bits: 32 });

function tally(pairs: [number, number][]): EvalCounts {
  const t = new EvalTally();
  for (const [rank, loss] of pairs) t.add(rank, loss);
  return t.counts();
}

describe("evaluation counts", () => {
  it("tallies hits, capped loss and the device's own accuracy", () => {
    const c = tally([[0, 1], [2, 2], [3, 100], [1, 0.5]]);
    expect(c).toEqual({ examples: 4, top1: 1, top3: 3, loss: 1 + 2 + LOSS_CAP_NATS + 0.5, macroTop1: 0.25, macroTop3: 0.75, devices: 1 });
    expect(encodeEvalCounts(c, 100)).toEqual([4, 1, 3, 20, 250, 750, 1]);
    expect(tally([])).toMatchObject({ examples: 0, devices: 0 });
  });

  it("a device refuses to send impossible counts (each bound)", () => {
    const ok = tally([[0, 1], [1, 1]]);
    expect(() => encodeEvalCounts({ ...ok, examples: 101, top1: 1, top3: 2 }, 100)).toThrow(/examples = 101 is outside \[0, 100\]/);
    expect(() => encodeEvalCounts({ ...ok, top1: 2, top3: 1 }, 100)).toThrow(/top1 ≤ top3 ≤ examples/);
    expect(() => encodeEvalCounts({ ...ok, top3: 3 }, 100)).toThrow(/top1 ≤ top3 ≤ examples/);
    expect(() => encodeEvalCounts({ ...ok, top1: -1 }, 100)).toThrow(/top1 = -1/);
    expect(() => encodeEvalCounts({ ...ok, macroTop1: 1.5 }, 100)).toThrow(/macroTop1 = 1500/);
    expect(() => encodeEvalCounts({ ...ok, devices: 0 }, 100)).toThrow(/devices must be 1 exactly when/);
    expect(() => encodeEvalCounts({ ...ok, examples: 2.5 }, 100)).toThrow(EvalCountsError);
  });

  it("sums decode to the central definitions exactly without noise", () => {
    const devices = [tally([[0, 1], [3, 2]]), tally([[1, 0.25], [0, 0.25], [0, 0.5]]), tally([])];
    const sum = zeros(32, EVAL_VECTOR_LENGTH);
    for (const c of devices) addInPlace(sum, noiseEvalVector(encodeEvalCounts(c, 100), dp0));
    const m = metricsFromSums(sumsFromVector(checkedEvalSum(sum, dp0, 3)));
    expect(m).toEqual({ top1Micro: 3 / 5, top3Micro: 4 / 5, loss: 4 / 5, top1Macro: expect.any(Number), top3Macro: 0.5 * (0.5 + 1), events: 5, users: 2 });
    expect(m.top1Macro).toBeCloseTo((0.5 + 2 / 3) / 2, 3);
    expect(() => sumsFromVector([1, 2, 3])).toThrow(/3 values, expected 7/);
  });

  it("the coordinator refuses an aggregate no honest cohort can send", () => {
    const sum = fromSigned(32, [5, 3, 4, 10, 500, 500, 2]);
    expect(() => checkedEvalSum(sum, dp0, 3)).not.toThrow();
    expect(() => checkedEvalSum(fromSigned(32, [301, 3, 4, 10, 500, 500, 2]), dp0, 3)).toThrow(/coordinate 0 is 301, outside what 3 devices can send \[0, 300\]/);
    expect(() => checkedEvalSum(fromSigned(32, [5, 3, 4, 10, 500, 500, -1]), dp0, 3)).toThrow(/coordinate 6 is -1/);
    expect(() => checkedEvalSum(fromSigned(32, [5, 4, 3, 10, 500, 500, 2]), dp0, 3)).toThrow(/top-1 4 ≤ top-3 3/);
    expect(() => checkedEvalSum(zeros(32, 8), dp0, 3)).toThrow(/8 values, expected 7/);
    expect(() => noiseEvalVector([1, 2], dp0)).toThrow(/2 values, expected 7/);
  });

  it("noise: the event composes like training's, the sum lands within the stated error, and the modulus check names the bits needed", () => {
    const dp = calibrateEvalDp({ maxExamples: 50, noiseMultiplier: 1, minSurvivors: 4, colluders: 1, maxSummands: 6, bits: 32 });
    const ev = evalDpEvent(dp);
    expect(ev).toMatchObject({ kind: "distributedDiscreteGaussian", devices: 3, dimension: 7 });
    // 3 honest shares reach z = 1: total variance ≥ (z·Δ₂)².
    expect(3 * (ev as { perDeviceVariance: number }).perDeviceVariance).toBeGreaterThanOrEqual(dp.l2Sensitivity ** 2);
    expect(Number.isFinite(deviceEpsilon([ev], 1e-5))).toBe(true);
    expect(evalDpEvent(dp0)).toEqual({ kind: "nonPrivate" });
    expect(deviceEpsilon([evalDpEvent(dp0)], 1e-5)).toBe(Infinity);

    const exact = [40, 10, 20, 80, 1000, 2000, 4];
    const rng = new RandomSource();
    const err = evalErrorBound(dp, 6);
    for (let trial = 0; trial < 20; trial++) {
      const sum = zeros(32, EVAL_VECTOR_LENGTH);
      for (let k = 0; k < 6; k++) addInPlace(sum, noiseEvalVector(k < 4 ? [10, 2.5 * 1, 5, 20, 250, 500, 1].map(Math.round) : [0, 0, 0, 0, 0, 0, 0], dp, rng));
      const s = checkedEvalSum(sum, dp, 6);
      for (let i = 0; i < 7; i++) expect(Math.abs(s[i]! - [40, 12, 20, 80, 1000, 2000, 4][i]!)).toBeLessThanOrEqual(err.bound);
    }
    void exact;
    expect(() => calibrateEvalDp({ maxExamples: 100_000, noiseMultiplier: 0, minSurvivors: 10, colluders: 0, maxSummands: 100_000, bits: 32 })).toThrow(/need \d+ bits; the run's modulus has 32/);
    expect(() => calibrateEvalDp({ maxExamples: 100_000, noiseMultiplier: 0, minSurvivors: 10, colluders: 0, maxSummands: 100_000, bits: 48 })).not.toThrow();
  });
});

describe("held-out slice", () => {
  const seq = { userId: "u", source: "t", events: Array.from({ length: 40 }, (_, i) => ({ time: 1000 + i * 10, token: `k${i % 7}` })) };

  it("is the most recent part, exactly the simulator's held-out split, and never in the training windows", () => {
    const { train, heldOut } = localSplit(seq, TINY_MODEL, 0.1);
    const ref = splitHoldout(seq, 0.1);
    expect(train).toEqual(buildExamples(ref.train, TINY_MODEL));
    expect(heldOut).toEqual(buildExamples(ref.eval, TINY_MODEL, { contextFrom: ref.train }));
    expect(train.count + heldOut.count).toBe(40);
    expect(heldOut.count).toBe(4);
    expect(localSplit(seq, TINY_MODEL, undefined).train.count).toBe(40);
    const last2 = lastExamples(heldOut, 2);
    expect(last2.count).toBe(2);
    expect([...last2.y]).toEqual([...heldOut.y.slice(2)]);
  });
});

describe("run spec evaluation fields", () => {
  it("bounded, scheduled every N rounds and after the last, DP runs must noise their counts, the modulus must fit", () => {
    const e = { everyRounds: 2, heldOutFraction: 0.1, maxExamplesPerDevice: 100, noiseMultiplier: 0 };
    const spec = parseRunSpec(tinyRunSpec({ rounds: 5, evaluation: e }));
    expect([0, 1, 2, 3, 4].map((r) => evaluatesAfter(spec, r))).toEqual([false, true, false, true, true]);
    expect(evaluatesAfter(parseRunSpec(tinyRunSpec({ rounds: 5 })), 4)).toBe(false);
    expect(() => parseRunSpec(tinyRunSpec({ evaluation: { ...e, everyRounds: 0 } }))).toThrow(RunSpecError);
    expect(() => parseRunSpec(tinyRunSpec({ evaluation: { ...e, heldOutFraction: 0.9 } }))).toThrow(/heldOutFraction/);
    expect(() => parseRunSpec(tinyRunSpec({ noiseMultiplier: 1, evaluation: e }))).toThrow(/must noise its evaluation counts/);
    expect(() => parseRunSpec(tinyRunSpec({ noiseMultiplier: 1, evaluation: { ...e, noiseMultiplier: 1 } }))).not.toThrow();
    expect(() => parseRunSpec({ ...tinyRunSpec({ bits: 32, cohortSize: 5000, minSurvivors: 1000, populationSize: 10000 }), evaluation: { ...e, maxExamplesPerDevice: 100_000 } })).toThrow(/evaluation: .*the run's modulus has 32/);
  });
});

describe("evaluation round config", () => {
  const base = {
    protocol: "tacit-eval-v1", runId: "r", round: evalRoundNumber(3), attempt: 0, modelHash: "a".repeat(64), parameterCount: 10, model: TINY_MODEL,
    training: { localEpochs: 1, maxLocalSteps: 1, batchSize: 1, learningRate: 0.1, optimizer: "sgd", seed: 0, heldOutFraction: 0.1 },
    dp: { mechanism: "ddgauss", clip: 1, noiseMultiplier: 0, minSurvivors: 2, expectedSurvivors: 3, colluders: 0, delta: 1e-6, rotationSeed: "" },
    secagg: { bits: 32, threshold: 2, degree: 2, mode: "full", roundSeed: "", guarantee: "" },
    signals: ["commit"], cohort: { size: 1, root: "0".repeat(64) }, populationSize: 3,
    deadlines: { advertise: 0, share: 0, maskedInput: 0, unmask: 0 }, issuedAt: 0,
    evaluation: { afterRound: 3, maxExamplesPerDevice: 100, noiseMultiplier: 0 },
  };

  it("an evaluation block exactly in tacit-eval-v1 rounds, with the held-out fraction; the summed vector is the 7 counts", () => {
    const ok = roundConfigSchema.parse(base);
    expect(aggregationLength(ok)).toBe(EVAL_VECTOR_LENGTH);
    expect(roundConfigSchema.safeParse({ ...base, protocol: "tacit-round-v1" }).success).toBe(false);
    const { evaluation: _e, ...training } = base;
    expect(roundConfigSchema.safeParse(training).success).toBe(false);
    expect(roundConfigSchema.safeParse({ ...base, training: { ...base.training, heldOutFraction: undefined } }).success).toBe(false);
  });
});
