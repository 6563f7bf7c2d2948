/**
 * The server learning-rate schedule (shared/model/server-optimizer.ts): the pure function, the run
 * spec field, and a real round over gRPC whose server step follows it.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { scheduledLearningRate, parameterCount } from "../shared/model/index.ts";
import { parseRunSpec, RunSpecError } from "../shared/run/index.ts";
import { TINY_MODEL, tinyRunSpec } from "./support/cluster.ts";
import { useSuiteCluster } from "./support/suite-cluster.ts";

describe("scheduledLearningRate", () => {
  it("constant: the base rate in every round", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 1000 }), fc.double({ min: 1e-6, max: 100, noNaN: true }), (rounds, base) => {
      for (const r of [0, rounds - 1, Math.floor(rounds / 2)]) expect(scheduledLearningRate(base, "constant", r, rounds)).toBe(base);
    }));
  });

  it("cosine: the base rate first, half of it halfway, strictly falling and never 0", () => {
    expect(scheduledLearningRate(0.1, "cosine", 0, 20)).toBe(0.1);
    expect(scheduledLearningRate(0.1, "cosine", 10, 20)).toBeCloseTo(0.05, 15);
    expect(scheduledLearningRate(0.1, "cosine", 19, 20)).toBeCloseTo(0.1 * 0.5 * (1 + Math.cos((19 * Math.PI) / 20)), 15);
    fc.assert(fc.property(fc.integer({ min: 2, max: 1000 }), (rounds) => {
      let previous = Infinity;
      for (let r = 0; r < rounds; r++) {
        const lr = scheduledLearningRate(1, "cosine", r, rounds);
        expect(lr).toBeLessThan(previous);
        expect(lr).toBeGreaterThan(0);
        previous = lr;
      }
    }), { numRuns: 30 });
  });

  it("refuses a round outside the run or a run without rounds", () => {
    expect(() => scheduledLearningRate(1, "cosine", 20, 20)).toThrow(/round 20 is outside the run's rounds 0…19/);
    expect(() => scheduledLearningRate(1, "constant", -1, 20)).toThrow(RangeError);
    expect(() => scheduledLearningRate(1, "cosine", 0.5, 20)).toThrow(RangeError);
    expect(() => scheduledLearningRate(1, "cosine", 0, 0)).toThrow(/positive whole number of rounds, got 0/);
  });
});

describe("run spec serverLearningRateSchedule", () => {
  it("is optional, takes constant or cosine and refuses anything else", () => {
    expect(parseRunSpec(tinyRunSpec()).serverLearningRateSchedule).toBeUndefined();
    expect(parseRunSpec(tinyRunSpec({ serverLearningRateSchedule: "cosine" })).serverLearningRateSchedule).toBe("cosine");
    expect(() => parseRunSpec({ ...tinyRunSpec(), serverLearningRateSchedule: "linear" })).toThrow(RunSpecError);
    expect(() => parseRunSpec({ ...tinyRunSpec(), serverLearningRateSchedule: "linear" })).toThrow(/serverLearningRateSchedule/);
  });
});

describe("a run with a cosine server schedule", () => {
  const cluster = useSuiteCluster();

  it("steps round 0 at the full rate and round 1 of 2 at half of it", async () => {
    const spec = tinyRunSpec({ rounds: 2, serverOptimizer: "fedavg", serverLearningRate: 1, serverLearningRateSchedule: "cosine" });
    const runId = await cluster().launch(spec);
    const initial = await cluster().coordinator.checkpoints.latest(runId);
    // Every device sends the same delta, so the mean is that delta up to the quantization step.
    const train = async (_cfg: unknown, weights: Float32Array) => ({ delta: new Float32Array(weights.length).fill(0.01), loss: 0, examples: 1 });
    for (let i = 0; i < 3; i++) await cluster().addDevice(`s${i}`, { train });
    const st = await cluster().waitRun(runId, 90_000);
    expect(st.state).toBe("completed");
    const store = cluster().coordinator.checkpoints;
    const [w0, w1, w2] = [initial!, await store.readRound(runId, 0), await store.readRound(runId, 1)].map((c) => c.weights);
    const meanStep = (a: Float32Array, b: Float32Array): number => {
      let s = 0;
      for (let i = 0; i < a.length; i++) s += b[i]! - a[i]!;
      return s / a.length;
    };
    expect(w0!.length).toBe(parameterCount(TINY_MODEL));
    // Round 1 of 2 at ½(1 + cos(π/2)) = ½ of the rate; a constant schedule would step 0.01 again.
    expect(meanStep(w0!, w1!)).toBeCloseTo(0.01, 4);
    expect(meanStep(w1!, w2!)).toBeCloseTo(0.005, 4);
  });
});
