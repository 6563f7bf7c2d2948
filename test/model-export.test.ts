/**
 * Model export: a really trained model (tied and dense output) exported as a TensorFlow.js
 * LayersModel, loaded back by a plain Node script that knows nothing of Tacit, and its
 * predictions compared with the training model's (Trainer) and with Tacit's own JS forward
 * pass. Then every way an export can be wrong is refused by name.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, cpSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  buildExamples, contextIds, currentSession, exportModel, initBackend, initialWeights, predictDistribution, readExportedModel, topBuckets, Trainer,
  bucketVocabulary, tokenBucket, sameModelSpec, SESSION_START_ID, PAD_ID, type ModelSpec, type Examples,
} from "../shared/model/index.ts";

const TIED: ModelSpec = { version: 1, vocabBuckets: 24, window: 3, embedDim: 4, hidden: 12, sessionGapSeconds: 600, output: "tied" };
const DENSE: ModelSpec = { ...TIED, output: "dense" };
/** The dense model with the context-copy path (spec.ts `copy`). */
const COPY: ModelSpec = { ...DENSE, copy: true };
const SPECS = [TIED, DENSE, COPY];
const label = (spec: ModelSpec): string => `${spec.output}${spec.copy ? "+copy" : ""}`;
const TOKENS = ["git:commit", "git:push", "vim:save", "term:make", "term:test", "browser:reload"];

/** A person who repeats commit → push → save → make → test, in sessions split by long gaps. */
function sequence(): { userId: string; source: string; events: { time: number; token: string }[] } {
  const events: { time: number; token: string }[] = [];
  let t = 1_700_000_000;
  for (let i = 0; i < 400; i++) {
    events.push({ time: t, token: TOKENS[i % 5]! });
    t += i % 40 === 39 ? 5000 : 7;
  }
  return { userId: "u", source: "test", events };
}

function runNode(script: string, args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ status: code ?? -1, stdout, stderr }));
  });
}

function trainerDistributions(spec: ModelSpec, weights: Float32Array, ex: Examples): number[][] {
  const t = new Trainer(spec);
  try {
    t.setWeights(weights);
    const rows: number[][] = [];
    t.forEachDistribution(ex, (_r, p) => rows.push([...p]));
    return rows;
  } finally {
    t.dispose();
  }
}

describe("model export (TensorFlow.js LayersModel + tacit-model.json)", () => {
  let dir: string;
  const trained = new Map<string, Float32Array>();
  let ex: Examples;

  beforeAll(async () => {
    await initBackend();
    dir = mkdtempSync(join(tmpdir(), "tacit-export-"));
    for (const spec of SPECS) {
      ex = buildExamples(sequence(), spec);
      const t = new Trainer(spec);
      t.setWeights(initialWeights(spec, 3));
      await t.train(ex, { epochs: 3, batchSize: 32, learningRate: 0.5, seed: 1 });
      trained.set(label(spec), t.getWeights());
      t.dispose();
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  for (const spec of SPECS) {
    it(`a plain Node tfjs script loads the ${label(spec)} export and reproduces Tacit's predictions`, async () => {
      const weights = trained.get(label(spec))!;
      const out = join(dir, label(spec));
      const { modelHash } = await exportModel(out, spec, weights, { kind: "centralized-simulation", epochs: 3 });

      const modelJson = JSON.parse(readFileSync(join(out, "model.json"), "utf8"));
      expect(modelJson.format).toBe("layers-model");
      const copyLayers = ["copy_onehot:Embedding", "copy_positions:Permute", "copy:Dense", "copy_flatten:Flatten", "logits:Add", "softmax:Activation"];
      const layers = modelJson.modelTopology.config.layers.map((l: { class_name: string; config: { name: string } }) => `${l.config.name}:${l.class_name}`);
      expect(layers.sort()).toEqual(["context:InputLayer", "embedding:Embedding", "flatten:Flatten", "hidden:Dense", ...(spec.output === "tied" ? ["projection:Dense"] : []), "output:Dense", ...(spec.copy ? copyLayers : [])].sort());
      expect(modelJson.weightsManifest[0].paths).toEqual(["weights.bin"]);
      const desc = JSON.parse(readFileSync(join(out, "tacit-model.json"), "utf8"));
      expect(desc).toMatchObject({ format: "tacit-model-export-v1", model: spec, modelHash, window: 3, sessionGapSeconds: 600, tokenHashing: { algorithm: "sha256", vocabBuckets: 24 } });

      // The training model's predictions on real windows of the data it learned.
      const rows = Math.min(ex.count, 40);
      const windows = Array.from({ length: rows }, (_, r) => [...ex.x.subarray(r * spec.window, r * spec.window + spec.window)]);
      const sub: Examples = { x: ex.x.slice(0, rows * spec.window), y: ex.y.slice(0, rows), count: rows };
      const expected = trainerDistributions(spec, weights, sub);

      const r = await runNode(join(import.meta.dirname, "fixtures", "load-tfjs-export.mjs"), [out, JSON.stringify(windows)]);
      expect(r.status, r.stderr).toBe(0);
      const loaded = JSON.parse(r.stdout) as { inputShape: (number | null)[]; probs: number[][] };
      expect(loaded.inputShape).toEqual([null, spec.window]);
      let maxDiff = 0;
      for (let i = 0; i < rows; i++) {
        for (let v = 0; v < expected[i]!.length; v++) maxDiff = Math.max(maxDiff, Math.abs(loaded.probs[i]![v]! - expected[i]![v]!));
        // Same top-3 as the project's model, and the project's JS forward pass agrees too.
        const top = (p: number[]) => p.map((x, k) => [x, k] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, 3).map((e) => e[1]);
        expect(top(loaded.probs[i]!)).toEqual(top(expected[i]!));
        const js = predictDistribution(spec, weights, Int32Array.from(windows[i]!));
        for (let v = 0; v < js.length; v++) expect(Math.abs(js[v]! - expected[i]![v]!)).toBeLessThan(1e-5);
      }
      expect(maxDiff).toBeLessThan(1e-5);
      // The model learned the routine: after make, test, commit (a window it trained on), push is the top prediction.
      const after = predictDistribution(spec, weights, contextIds(["term:make", "term:test", "git:commit"], spec));
      expect(topBuckets(after, 1)[0]!.bucket).toBe(tokenBucket("git:push", spec));

      // Read back: the same flat vector, the same hash.
      const back = readExportedModel(out);
      expect(back.modelHash).toBe(modelHash);
      expect(Buffer.from(back.weights.buffer).equals(Buffer.from(weights.buffer, weights.byteOffset, weights.byteLength))).toBe(true);
      process.stdout.write(`${label(spec)} export: max |p_tfjs − p_trainer| = ${maxDiff.toExponential(2)} over ${rows} windows\n`);
    }, 60_000);
  }

  it("encodes a context as training does: right-aligned, session start and padding only when it is short", () => {
    expect([...contextIds(["git:commit"], TIED)]).toEqual([PAD_ID, SESSION_START_ID, tokenBucket("git:commit", TIED)]);
    expect([...contextIds(["a", "b", "c", "d"], TIED)]).toEqual(["b", "c", "d"].map((t) => tokenBucket(t, TIED)));
    expect([...contextIds([], TIED)]).toEqual([PAD_ID, PAD_ID, SESSION_START_ID]);
    // Identical to the window buildExamples makes for the action that follows the context.
    const seq = sequence();
    const e = buildExamples(seq, TIED);
    const i = 45;
    const ctx = currentSession(seq.events.slice(0, i), seq.events[i]!.time, TIED);
    expect([...contextIds(ctx, TIED)]).toEqual([...e.x.subarray(i * 3, i * 3 + 3)]);
    // After a pause longer than the session gap, the next action starts a new session.
    expect(currentSession(seq.events.slice(0, 10), seq.events[9]!.time + 601, TIED)).toEqual([]);
  });

  it("maps buckets back through a vocabulary, the first listed token winning a shared bucket", () => {
    const v = bucketVocabulary(["x", ...TOKENS], TIED);
    expect(v.get(tokenBucket("git:push", TIED))).toBe(tokenBucket("x", TIED) === tokenBucket("git:push", TIED) ? "x" : "git:push");
    expect(v.get(tokenBucket("x", TIED))).toBe("x");
  });

  describe("refuses a wrong or altered export, by name", () => {
    /** Byte offset of a named weight in weights.bin, from the export's own manifest. */
    const offsetOf = (d: string, name: string): number => {
      const mj = JSON.parse(readFileSync(join(d, "model.json"), "utf8"));
      let o = 0;
      for (const s of mj.weightsManifest[0].weights as { name: string; shape: number[] }[]) {
        if (s.name === name) return o;
        o += s.shape.reduce((a, b) => a * b, 1) * 4;
      }
      throw new Error(`no weight ${name}`);
    };
    const bump = (d: string, name: string): void => {
      const w = readFileSync(join(d, "weights.bin"));
      const o = offsetOf(d, name);
      w.writeFloatLE(w.readFloatLE(o) + 0.5, o);
      writeFileSync(join(d, "weights.bin"), w);
    };
    const copy = (name: string): string => {
      const d = join(dir, name);
      cpSync(join(dir, "tied"), d, { recursive: true });
      return d;
    };

    it("a directory that is not an export", () => {
      const d = join(dir, "empty");
      mkdirSync(d, { recursive: true });
      expect(() => readExportedModel(d)).toThrow(/is not a Tacit model export \(no tacit-model\.json\)/);
    });

    it("a malformed tacit-model.json", () => {
      const d = copy("bad-desc");
      const desc = JSON.parse(readFileSync(join(d, "tacit-model.json"), "utf8"));
      writeFileSync(join(d, "tacit-model.json"), JSON.stringify({ ...desc, modelHash: "abc" }));
      expect(() => readExportedModel(d)).toThrow(/tacit-model\.json is malformed: modelHash: must be 64 hex digits/);
    });

    it("a model.json that is not a LayersModel, or names a file outside the export", () => {
      const d = copy("bad-model-json");
      const mj = JSON.parse(readFileSync(join(d, "model.json"), "utf8"));
      writeFileSync(join(d, "model.json"), JSON.stringify({ ...mj, weightsManifest: [{ ...mj.weightsManifest[0], paths: ["../../etc/passwd"] }] }));
      expect(() => readExportedModel(d)).toThrow(/is not a LayersModel: weightsManifest\.0\.paths\.0: must be a file name inside the export directory/);
    });

    it("weights of another model spec", () => {
      const d = copy("other-spec");
      const desc = JSON.parse(readFileSync(join(d, "tacit-model.json"), "utf8"));
      writeFileSync(join(d, "tacit-model.json"), JSON.stringify({ ...desc, model: { ...desc.model, hidden: 13 } }));
      expect(() => readExportedModel(d)).toThrow(/weight hidden\/kernel has shape \[12,12\], the model spec needs \[12,13\]/);
    });

    it("a truncated weight file", () => {
      const d = copy("truncated");
      const w = readFileSync(join(d, "weights.bin"));
      writeFileSync(join(d, "weights.bin"), w.subarray(0, w.length - 8));
      expect(() => readExportedModel(d)).toThrow(/the weight files hold \d+ bytes, fewer than model\.json's manifest names/);
    });

    it("weight files longer than the manifest says", () => {
      const d = copy("longer");
      writeFileSync(join(d, "weights.bin"), Buffer.concat([readFileSync(join(d, "weights.bin")), Buffer.alloc(8)]));
      expect(() => readExportedModel(d)).toThrow(/the weight files hold \d+ bytes, model\.json's manifest names \d+/);
    });

    it("weights of the wrong size are never exported", async () => {
      await expect(exportModel(join(dir, "short"), TIED, new Float32Array(10), { kind: "centralized-simulation", epochs: 0 })).rejects.toThrow(/weights have 10 values, the spec needs \d+/);
    });

    it("a weight changed after export (hash mismatch)", () => {
      const d = copy("altered");
      bump(d, "hidden/bias");
      expect(() => readExportedModel(d)).toThrow(/hash mismatch: the weights were changed after export/);
    });

    it("a tied output kernel that is no longer the embedding's transpose", () => {
      const d = copy("untied");
      bump(d, "output/kernel");
      expect(() => readExportedModel(d)).toThrow(/output\/kernel is not the transposed embedding/);
    });

    it("a context-copy model whose one-hot table is no longer the identity, or whose copy weights changed", () => {
      const d = join(dir, "copy-altered");
      cpSync(join(dir, label(COPY)), d, { recursive: true });
      expect(readExportedModel(d).spec.copy).toBe(true);
      // A copy model is another model: it is never mixed with, or taken for, the same spec without the path.
      expect(sameModelSpec(COPY, DENSE)).toBe(false);
      expect(sameModelSpec(COPY, { ...DENSE, copy: true })).toBe(true);
      const w = readFileSync(join(d, "weights.bin"));
      const o = offsetOf(d, "copy_onehot/embeddings") + 4 * 5; // row 0, column 5: an off-diagonal 0
      w.writeFloatLE(0.25, o);
      writeFileSync(join(d, "weights.bin"), w);
      expect(() => readExportedModel(d)).toThrow(/copy_onehot\/embeddings is not the identity table the context-copy path requires/);
      const e = join(dir, "copy-kernel-altered");
      cpSync(join(dir, label(COPY)), e, { recursive: true });
      bump(e, "copy/kernel");
      expect(() => readExportedModel(e)).toThrow(/hash mismatch/);
    });
  });
});
