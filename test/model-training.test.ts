import { describe, expect, it, beforeAll } from "vitest";
import { mkdtempSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { parseDevactions } from "../shared/data/index.ts";
import { applyServerUpdate, buildExamples, CheckpointError, initBackend, initialWeights, loadCheckpoint, parameterCount, saveCheckpoint, SESSION_START_ID, PAD_ID, tokenBucket, Trainer, validateModelSpec, weightsHash, WeightShapeError } from "../shared/model/index.ts";

const SPEC = { version: 1 as const, vocabBuckets: 64, window: 4, embedDim: 8, hidden: 16, sessionGapSeconds: 100 };

describe("next-action model", () => {
  let backend: string;
  beforeAll(async () => {
    backend = await initBackend();
  });

  it("chooses a backend at run time (tensorflow → wasm → cpu) and reports it", () => {
    expect(["tensorflow", "wasm", "cpu"]).toContain(backend);
    expect(tf.getBackend()).toBe(backend);
  });

  it("hashes tokens stably into buckets past the special ids", () => {
    expect(tokenBucket("commit:fix", SPEC)).toBe(tokenBucket("commit:fix", SPEC));
    for (const t of ["a", "b", "commit:feat", "M:x:y:ts"]) {
      const b = tokenBucket(t, SPEC);
      expect(b).toBeGreaterThanOrEqual(2);
      expect(b).toBeLessThan(SPEC.vocabBuckets + 2);
    }
  });

  it("builds left-padded windows cut at session gaps", () => {
    const seq = parseDevactions("0\ta\n10\tb\n20\tc\n500\td\n510\te\n", "u.tsv");
    const ex = buildExamples(seq, SPEC);
    expect(ex.count).toBe(5);
    const row = (i: number): number[] => Array.from(ex.x.subarray(i * 4, i * 4 + 4));
    const [a, b, c, d] = ["a", "b", "c", "d"].map((t) => tokenBucket(t, SPEC));
    expect(row(0)).toEqual([PAD_ID, PAD_ID, PAD_ID, SESSION_START_ID]);
    expect(row(2)).toEqual([PAD_ID, SESSION_START_ID, a, b]);
    expect(row(3)).toEqual([PAD_ID, PAD_ID, PAD_ID, SESSION_START_ID]); // gap 480 s > 100 s: new session
    expect(row(4)).toEqual([PAD_ID, PAD_ID, SESSION_START_ID, d]);
    expect(ex.y[2]).toBe(c);
  });

  it("lowers the loss on a small fixed batch", async () => {
    const seq = parseDevactions(Array.from({ length: 200 }, (_, i) => `${i}\t${["x", "y", "z", "w"][i % 4]}`).join("\n") + "\n", "u.tsv");
    const ex = buildExamples(seq, SPEC);
    const t = new Trainer(SPEC);
    t.setWeights(initialWeights(SPEC, 3));
    const before = await t.evaluate(ex);
    await t.train(ex, { epochs: 5, batchSize: 32, learningRate: 0.5, seed: 1 });
    const after = await t.evaluate(ex);
    expect(after.loss).toBeLessThan(before.loss * 0.5);
    expect(after.top1).toBeGreaterThan(0.9); // a periodic sequence is learnable
    t.dispose();
  });

  it("round-trips weights, refuses wrong shapes and leaks no tensors", async () => {
    const t = new Trainer(SPEC);
    const w = initialWeights(SPEC, 5);
    expect(w.length).toBe(parameterCount(SPEC));
    t.setWeights(w);
    expect(t.getWeights()).toEqual(w);
    expect(() => t.setWeights(new Float32Array(3))).toThrow(WeightShapeError);
    const ex = buildExamples(parseDevactions("0\ta\n1\tb\n2\tc\n", "u.tsv"), SPEC);
    const n0 = tf.memory().numTensors;
    await t.train(ex, { epochs: 2, batchSize: 2, learningRate: 0.1, seed: 1 });
    await t.evaluate(ex);
    expect(tf.memory().numTensors).toBe(n0);
    t.dispose();
  });

  it("saves checkpoints atomically as tfjs artifacts and refuses corrupted ones", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "tacit-cp-")), "round-1");
    const w = initialWeights(SPEC, 9);
    const hash = await saveCheckpoint(dir, SPEC, w, { round: 1 });
    expect(hash).toBe(weightsHash(w));
    const model = JSON.parse(readFileSync(join(dir, "model.json"), "utf8"));
    expect(model.weightsManifest[0].paths).toEqual(["weights.bin"]);
    const back = await loadCheckpoint(dir);
    expect(back.weights).toEqual(w);
    expect(back.spec).toEqual(SPEC);
    const bin = readFileSync(join(dir, "weights.bin"));
    bin[10] = bin[10]! ^ 0xff;
    writeFileSync(join(dir, "weights.bin"), bin);
    await expect(loadCheckpoint(dir)).rejects.toThrow(CheckpointError);
    writeFileSync(join(dir, "weights.bin"), bin.subarray(0, 100));
    await expect(loadCheckpoint(dir)).rejects.toThrow(/bytes/);
    expect(() => validateModelSpec({ ...SPEC, window: 0 })).toThrow(/window/);
  });

  it("applies FedAvg, FedAvgM and FedAdam server updates", () => {
    const w = Float32Array.from([1, 2, 3]);
    const d = Float32Array.from([0.5, -1, 0]);
    expect(Array.from(applyServerUpdate(null, w, d, { optimizer: "fedavg", learningRate: 1 }).weights)).toEqual([1.5, 1, 3]);
    const m1 = applyServerUpdate(null, w, d, { optimizer: "fedavgm", learningRate: 1, momentum: 0.9 });
    const m2 = applyServerUpdate(m1.state, m1.weights, d, { optimizer: "fedavgm", learningRate: 1, momentum: 0.9 });
    expect(m2.weights[0]).toBeCloseTo(1.5 + 0.5 * 1.9, 6); // momentum accumulates
    const a = applyServerUpdate(null, w, d, { optimizer: "fedadam", learningRate: 0.1 });
    expect(a.weights[0]!).toBeGreaterThan(1);
    expect(a.weights[1]!).toBeLessThan(2);
    expect(a.weights[2]).toBe(3);
  });
});
