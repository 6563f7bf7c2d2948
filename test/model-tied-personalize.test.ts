import { beforeAll, describe, expect, it } from "vitest";
import * as tf from "@tensorflow/tfjs-core";
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseDevactions } from "../shared/data/index.ts";
import {
  buildExamples, DEFAULT_MODEL_SPEC, DEFAULT_PERSONALIZATION, DIRICHLET_BIGRAM, DENSE_MODEL_SPEC, initBackend, initialWeights, InitialModelError, loadInitialModel, localCounts, parameterCount,
  parameterShapes, pretrainCached, saveCheckpoint, Trainer, validateModelSpec, weightsHash, type ModelSpec,
} from "../shared/model/index.ts";
import { rankOf, evaluateModel } from "../simulation/evaluation.ts";
import { resolveRecipe } from "../simulation/recipe.ts";

const TIED: ModelSpec = { version: 1, vocabBuckets: 30, window: 3, embedDim: 4, hidden: 6, sessionGapSeconds: 100, output: "tied" };

function periodic(n: number, tokens: string[], id = "u"): ReturnType<typeof parseDevactions> {
  return parseDevactions(Array.from({ length: n }, (_, i) => `${i}\t${tokens[i % tokens.length]}`).join("\n") + "\n", `${id}.tsv`);
}

/** The tied model's loss written with tfjs's own ops (one-hot lookup, transposed matMul), for reference gradients. */
function referenceLoss(spec: ModelSpec, w: tf.Tensor[], x: Int32Array, y: Int32Array): tf.Scalar {
  const [E, W, b1, P, c, b] = w as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D, tf.Tensor2D, tf.Tensor1D, tf.Tensor1D];
  const n = y.length;
  const V = spec.vocabBuckets + 2;
  const e = tf.matMul(tf.oneHot(tf.tensor1d(x, "int32"), V), E);
  const h = tf.relu(tf.add(tf.matMul(tf.reshape(e, [n, spec.window * spec.embedDim]), W), b1));
  const q = tf.add(tf.matMul(h as tf.Tensor2D, P), c);
  const logits = tf.add(tf.matMul(q as tf.Tensor2D, E, false, true), b);
  return tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(y, "int32"), V), logits) as tf.Scalar;
}

describe("tied-output model", () => {
  beforeAll(async () => {
    await initBackend();
  });

  it("has a third of the dense model's parameters at the default size, and no output kernel", () => {
    expect(parameterCount(DEFAULT_MODEL_SPEC)).toBe(70_882);
    expect(parameterCount(DENSE_MODEL_SPEC)).toBe(198_082);
    expect(parameterShapes(DEFAULT_MODEL_SPEC).map((p) => p.name)).toEqual(["embedding", "hidden/kernel", "hidden/bias", "projection/kernel", "projection/bias", "output/bias"]);
    // Specs written before the field existed are dense.
    expect(parameterCount(validateModelSpec({ ...DENSE_MODEL_SPEC }))).toBe(198_082);
    expect(() => validateModelSpec({ ...TIED, output: "shared" })).toThrow(/output/);
  });

  it("takes exactly the SGD step of tfjs's own gradient (gather lookup with scatter-add gradient, explicit-transpose matMul)", async () => {
    const ex = buildExamples(periodic(40, ["a", "b", "c", "a", "d"]), TIED);
    const w0 = initialWeights(TIED, 7);
    const t = new Trainer(TIED);
    t.setWeights(w0);
    await t.train(ex, { epochs: 1, batchSize: ex.count, learningRate: 1, seed: 1, maxSteps: 1 });
    const stepped = t.getWeights();
    t.dispose();
    let o = 0;
    const vars = parameterShapes(TIED).map((p) => {
      const size = p.shape.reduce((a, b) => a * b, 1);
      const v = tf.tensor(w0.subarray(o, o + size), p.shape);
      o += size;
      return v;
    });
    const grads = tf.grads((...ws: tf.Tensor[]) => referenceLoss(TIED, ws, ex.x, ex.y))(vars);
    const ref = new Float32Array(w0.length);
    o = 0;
    grads.forEach((g) => {
      ref.set(g.dataSync() as Float32Array, o);
      o += g.size;
    });
    let maxDiff = 0;
    for (let i = 0; i < w0.length; i++) maxDiff = Math.max(maxDiff, Math.abs(w0[i]! - ref[i]! - stepped[i]!));
    expect(maxDiff).toBeLessThan(1e-5);
    expect(ref.some((g) => Math.abs(g) > 1e-3)).toBe(true);
    tf.dispose([...vars, ...grads]);
  });

  it("learns a periodic sequence", async () => {
    const ex = buildExamples(periodic(200, ["x", "y", "z", "w"]), TIED);
    const t = new Trainer(TIED);
    t.setWeights(initialWeights(TIED, 3));
    await t.train(ex, { epochs: 30, batchSize: 32, learningRate: 0.5, seed: 1 });
    expect((await t.evaluate(ex)).top1).toBeGreaterThan(0.9);
    t.dispose();
  });
});

describe("on-device personalization", () => {
  it("ranks like tf.topk (ties to the lower index) and personalization lifts a device with a habit the global model lacks", async () => {
    expect(rankOf([0.1, 0.5, 0.1, 0.3], 1)).toBe(0);
    expect(rankOf([0.1, 0.5, 0.1, 0.3], 2)).toBe(3);
    expect(rankOf([0.2, 0.2, 0.2, 0.4], 1)).toBe(2);
    // A diverged (NaN) model misses; it once scored every target as a top-1 hit.
    expect(rankOf([NaN, NaN, NaN, NaN], 0)).toBe(3);
    expect(rankOf([0.2, NaN, 0.5, 0.3], 1)).toBe(3);
    await initBackend();
    const seq = periodic(120, ["a", "b", "c", "d", "e", "f"]);
    const train = { ...seq, events: seq.events.slice(0, 100) };
    const held = { ...seq, events: seq.events.slice(100) };
    const t = new Trainer(TIED);
    const w = initialWeights(TIED, 1);
    const sets = [{ userId: "u", examples: buildExamples(held, TIED, { contextFrom: train }), local: localCounts(buildExamples(train, TIED), TIED.window) }];
    const r = evaluateModel(t, w, sets, { ...DIRICHLET_BIGRAM, alpha: 2 });
    expect(r.evalPersonalized.top1Micro).toBe(1);
    expect(r.eval.top1Micro).toBeLessThan(0.5);
    t.dispose();
  });

  it("the default (the simulation's evalPersonalized and the recipe) uses the last two actions where the last one alone is ambiguous", async () => {
    await initBackend();
    // After "a" comes b or c in turn; the action before "a" decides which.
    const seq = periodic(120, ["a", "b", "a", "c"]);
    const train = { ...seq, events: seq.events.slice(0, 96) };
    const held = { ...seq, events: seq.events.slice(96) };
    const t = new Trainer(TIED);
    const sets = [{ userId: "u", examples: buildExamples(held, TIED, { contextFrom: train }), local: localCounts(buildExamples(train, TIED), TIED.window) }];
    const recipe = resolveRecipe({ dp: true }, 10);
    expect(recipe.personalization).toBe(DEFAULT_PERSONALIZATION);
    expect(resolveRecipe({ dp: true, personalizationStrength: 5 }, 10).personalization).toEqual({ ...DEFAULT_PERSONALIZATION, alpha: 5 });
    // All-zero weights: a uniform global model, so ties go to the lower bucket and the global
    // model cannot tell the two "a" rows apart by accident.
    const w = new Float32Array(parameterCount(TIED));
    const byDefault = evaluateModel(t, w, sets, recipe.personalization);
    const bigram = evaluateModel(t, w, sets, DIRICHLET_BIGRAM);
    expect(byDefault.evalPersonalized.top1Micro).toBe(1);
    expect(bigram.evalPersonalized.top1Micro).toBe(0.75); // wrong after "a" half the time
    expect(evaluateModel(t, w, sets).evalPersonalized).toEqual(byDefault.evalPersonalized);
    // Counts over a different window would read the wrong context slots: refused.
    expect(() => evaluateModel(t, w, [{ ...sets[0]!, local: localCounts(buildExamples(train, { ...TIED, window: 2 }), 2) }])).toThrow(/window 2, the model 3/);
    t.dispose();
  });
});

describe("initial model from public data", () => {
  it("loads a hash-pinned checkpoint and refuses a wrong hash or a different model", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tacit-init-"));
    const w = initialWeights(TIED, 4);
    const sha256 = await saveCheckpoint(join(dir, "cp"), TIED, w, { source: "public" });
    const ref = { checkpoint: join(dir, "cp"), sha256, source: "public" as const, dataset: "public-set" };
    expect(weightsHash(await loadInitialModel(ref, TIED))).toBe(sha256);
    await expect(loadInitialModel({ ...ref, sha256: "0".repeat(64) }, TIED)).rejects.toThrow(InitialModelError);
    await expect(loadInitialModel(ref, { ...TIED, hidden: 7 })).rejects.toThrow(/different model/);
    await expect(loadInitialModel({ ...ref, checkpoint: join(dir, "missing") }, TIED)).rejects.toThrow(InitialModelError);
  });

  it("pretrains on public files once and reuses the cached checkpoint of the same data, spec and recipe", async () => {
    await initBackend();
    const data = mkdtempSync(join(tmpdir(), "tacit-public-"));
    writeFileSync(join(data, "user-1.tsv"), Array.from({ length: 60 }, (_, i) => `${i}\t${["a", "b", "c"][i % 3]}`).join("\n") + "\n");
    writeFileSync(join(data, "user-2.tsv"), Array.from({ length: 60 }, (_, i) => `${i}\t${["a", "c"][i % 2]}`).join("\n") + "\n");
    const cache = mkdtempSync(join(tmpdir(), "tacit-cache-"));
    const prev = process.env.TACIT_CACHE_DIR;
    process.env.TACIT_CACHE_DIR = cache;
    try {
      const recipe = { epochs: 2, batchSize: 16, learningRate: 0.01, optimizer: "adam" as const, seed: 1 };
      const first = await pretrainCached(data, TIED, recipe);
      expect(first.cached).toBe(false);
      expect(first.meta.source).toBe("public");
      expect(weightsHash(first.weights)).not.toBe(weightsHash(initialWeights(TIED, 1)));
      const again = await pretrainCached(data, TIED, recipe);
      expect(again.cached).toBe(true);
      expect(again.sha256).toBe(first.sha256);
      // Different public data → a new checkpoint, not the cached one.
      mkdirSync(join(data, "more"), { recursive: true });
      writeFileSync(join(data, "user-3.tsv"), "0\ta\n1\tb\n2\ta\n");
      expect((await pretrainCached(data, TIED, recipe)).cached).toBe(false);
    } finally {
      if (prev === undefined) delete process.env.TACIT_CACHE_DIR;
      else process.env.TACIT_CACHE_DIR = prev;
    }
  });
});
