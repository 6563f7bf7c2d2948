/**
 * The server update never publishes a non-finite global model (issue #13: a NaN/∞ model was
 * seen once in a DP smoke run). Unit cases for the checked update, and a real round whose
 * optimizer step would turn the model into NaN: the attempt aborts naming why, and the previous
 * checkpoint stays the run's current model.
 */
import { describe, expect, it } from "vitest";
import { applyServerUpdateChecked, firstNonFinite, NonFiniteModelError, parameterCount } from "../shared/model/index.ts";
import { serverStateToJson } from "../coordinator/rounds/server-state.ts";
import { TINY_MODEL, tinyRunSpec } from "./support/cluster.ts";
import { useSuiteCluster } from "./support/suite-cluster.ts";

describe("applyServerUpdateChecked", () => {
  const w = Float32Array.from([1, 2, 3]);
  it("applies a finite update unchanged", () => {
    const r = applyServerUpdateChecked(null, w, Float32Array.from([0.5, 0, -1]), { optimizer: "fedavg", learningRate: 1 });
    expect([...r.weights]).toEqual([1.5, 2, 2]);
  });
  it("refuses a non-finite aggregate", () => {
    expect(() => applyServerUpdateChecked(null, w, Float32Array.from([0, NaN, 0]), { optimizer: "fedavg", learningRate: 1 })).toThrow(/non-finite aggregate: coordinate 1/);
  });
  it("refuses a step that overflows float32 or a momentum state that is NaN", () => {
    const big = Float32Array.from([3e38, 0, 0]);
    expect(() => applyServerUpdateChecked(null, big, Float32Array.from([1e37, 0, 0]), { optimizer: "fedavg", learningRate: 100 })).toThrow(NonFiniteModelError);
    const nanState = { step: 3, m: Float32Array.from([0, NaN, 0]) };
    expect(() => applyServerUpdateChecked(nanState, w, new Float32Array(3), { optimizer: "fedavgm", learningRate: 1, momentum: 0.9 })).toThrow(/non-finite model: the fedavgm step makes weight 1/);
  });
  it("firstNonFinite finds NaN and ±∞", () => {
    expect(firstNonFinite([1, 2])).toBe(-1);
    expect(firstNonFinite([1, -Infinity])).toBe(1);
    expect(firstNonFinite([NaN])).toBe(0);
  });
});

describe("a round whose server step would make the model NaN", () => {
  const cluster = useSuiteCluster();

  it("aborts every attempt with the reason and keeps the previous checkpoint", async () => {
    const spec = tinyRunSpec({ rounds: 1, serverOptimizer: "fedavgm", serverMomentum: 0.9, deadlines: { ...tinyRunSpec().deadlines, selectionMs: 500 } });
    const runId = await cluster().launch(spec);
    const initial = await cluster().coordinator.checkpoints.latest(runId);
    // A corrupted optimizer state (one NaN momentum coordinate) in the current checkpoint. The
    // first attempt (which may have read the state before this) finds no devices and aborts;
    // the next ones read it.
    const m = new Float32Array(parameterCount(TINY_MODEL));
    m[5] = NaN;
    await cluster().coordinator.checkpoints.save(runId, -1, spec.model, initial!.weights, serverStateToJson({ step: 1, m }));
    for (;;) {
      const st = await cluster().mlTeam.unary<object, { rounds: unknown[] }>("RunControl", "GetRun", { runId });
      if (st.rounds.length > 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const train = async (_cfg: unknown, weights: Float32Array) => ({ delta: new Float32Array(weights.length).fill(0.01), loss: 0, examples: 1 });
    for (let i = 0; i < 3; i++) await cluster().addDevice(`d${i}`, { train });
    const st = await cluster().waitRun(runId, 90_000);
    expect(st.state).toBe("failed");
    expect(st.rounds.some((r) => /non-finite model: the fedavgm step makes weight 5/.test(r.detail))).toBe(true);
    expect(st.rounds.every((r) => r.status !== "completed")).toBe(true);
    const after = await cluster().coordinator.checkpoints.latest(runId);
    expect(after!.round).toBe(-1);
    expect(after!.hash).toBe(initial!.hash);
    expect(after!.weights.every(Number.isFinite)).toBe(true);
  }, 120_000);
});

describe("a run's initial model", () => {
  it("is refused when a weight is not finite", async () => {
    const { mkdtempSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { initialWeights, loadInitialModel, saveCheckpoint } = await import("../shared/model/index.ts");
    const w = initialWeights(TINY_MODEL, 3);
    w[2] = Infinity;
    const dir = join(mkdtempSync(join(tmpdir(), "tacit-nan-cp-")), "cp");
    const sha256 = await saveCheckpoint(dir, TINY_MODEL, w, { source: "public" });
    await expect(loadInitialModel({ checkpoint: dir, sha256, source: "public", dataset: "x" }, TINY_MODEL)).rejects.toThrow(/non-finite weight \(index 2 is Infinity\)/);
  });
});
