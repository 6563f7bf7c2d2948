/**
 * Model export for the ML team and the agents it serves: a standard TensorFlow.js LayersModel
 * (model.json with modelTopology and weightsManifest, plus weights.bin) that
 * `tf.loadLayersModel` loads as is, and tacit-model.json, which says how to feed it (token
 * hashing, window, session gap) and which global model it is (the model hash exactly as the
 * ledger records it).
 *
 * The LayersModel uses stock Keras layers only — Embedding, Flatten, Dense — so any tfjs or
 * Keras runtime can load it without Tacit code. The tied output (logits scored against the
 * input embedding) has no stock layer, so the export writes Eᵀ out as the output Dense kernel;
 * reading an export checks that copy against the embedding, so the hash of the flat weight
 * vector still covers every number the LayersModel computes with.
 */
import * as tf from "@tensorflow/tfjs";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../fs/write-file-atomic.ts";
import { initBackend } from "./backend.ts";
import { COPY_PARAMETER, hasCopy, isTied, outputSize, PAD_ID, parameterCount, parameterShapes, SESSION_START_ID, SPECIAL_IDS, type ModelSpec } from "./spec.ts";
import { weightsHash } from "./weights.ts";

export const EXPORT_FORMAT = "tacit-model-export-v1";
export const MODEL_JSON = "model.json";
export const WEIGHTS_BIN = "weights.bin";
export const TACIT_MODEL_JSON = "tacit-model.json";

/**
 * An export whose predictor is a mixture with the run's public initial model
 * (shared/model/release-mix.ts): that model is exported too, in the subdirectory `publicModel`,
 * and p = (1 − federatedWeight)·p_public + federatedWeight·p_this.
 */
export interface ReleasedMixture {
  federatedWeight: number;
  publicModel: typeof PUBLIC_MODEL_DIR;
  publicModelHash: string;
}
export const PUBLIC_MODEL_DIR = "public";

/** Where an exported model came from; written into tacit-model.json as is. */
export type ModelSource =
  | { kind: "coordinator-run"; runId: string; round: number; ledgerSeq: number }
  | { kind: "simulation"; runId: string; round: number; ledgerSeq: number }
  | { kind: "centralized-simulation"; epochs: number };

/** The layer weights of the exported LayersModel, by tfjs weight name, derived from the flat vector. */
export function layerWeights(spec: ModelSpec, flat: Float32Array): { name: string; shape: number[]; values: Float32Array }[] {
  const out: { name: string; shape: number[]; values: Float32Array }[] = [];
  let o = 0;
  const byName = new Map<string, { shape: number[]; values: Float32Array }>();
  for (const p of parameterShapes(spec)) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    byName.set(p.name, { shape: p.shape, values: flat.subarray(o, o + n) });
    o += n;
  }
  const get = (n: string) => byName.get(n)!;
  out.push({ name: "embedding/embeddings", ...get("embedding") });
  out.push({ name: "hidden/kernel", ...get("hidden/kernel") }, { name: "hidden/bias", ...get("hidden/bias") });
  if (isTied(spec)) {
    out.push({ name: "projection/kernel", ...get("projection/kernel") }, { name: "projection/bias", ...get("projection/bias") });
    out.push({ name: "output/kernel", shape: [spec.embedDim, outputSize(spec)], values: transpose(get("embedding").values, outputSize(spec), spec.embedDim) });
  } else {
    out.push({ name: "output/kernel", ...get("output/kernel") });
  }
  out.push({ name: "output/bias", ...get("output/bias") });
  if (hasCopy(spec)) {
    // The copy path as stock layers: a fixed one-hot Embedding (the V×V identity), then a Dense of
    // one unit over the window positions, whose kernel is c.
    out.push({ name: COPY_ONEHOT_WEIGHT, shape: [outputSize(spec), outputSize(spec)], values: identity(outputSize(spec)) });
    out.push({ name: COPY_PARAMETER, shape: [spec.window, 1], values: get(COPY_PARAMETER).values });
  }
  return out;
}

/** The export's fixed one-hot table of the copy path; not a parameter, so not hashed (it is checked on reading). */
export const COPY_ONEHOT_WEIGHT = "copy_onehot/embeddings";

export function identity(n: number): Float32Array {
  const m = new Float32Array(n * n);
  for (let i = 0; i < n; i++) m[i * n + i] = 1;
  return m;
}

/** Row-major [rows, cols] → [cols, rows]. */
export function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c]!;
  return t;
}

/** The stock-layer model: ids [batch, window] (int32) → probabilities [batch, vocabBuckets + 2]. */
function buildLayersModel(spec: ModelSpec): tf.LayersModel {
  const V = outputSize(spec);
  // A functional model so the input itself is declared int32 (ids, not features).
  const input = tf.input({ name: "context", batchShape: [null, spec.window], dtype: "int32" });
  let x = tf.layers.embedding({ name: "embedding", inputDim: V, outputDim: spec.embedDim, inputLength: spec.window }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.flatten({ name: "flatten" }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dense({ name: "hidden", units: spec.hidden, activation: "relu" }).apply(x) as tf.SymbolicTensor;
  if (isTied(spec)) x = tf.layers.dense({ name: "projection", units: spec.embedDim }).apply(x) as tf.SymbolicTensor;
  if (!hasCopy(spec)) {
    const output = tf.layers.dense({ name: "output", units: V, activation: "softmax" }).apply(x) as tf.SymbolicTensor;
    return tf.model({ name: "tacit_next_action", inputs: input, outputs: output });
  }
  const logits = tf.layers.dense({ name: "output", units: V }).apply(x) as tf.SymbolicTensor;
  // [batch, window, V] one-hot rows → [batch, V, window] → Σ_t c_t · onehot_t = [batch, V].
  let copy = tf.layers.embedding({ name: "copy_onehot", inputDim: V, outputDim: V, inputLength: spec.window, trainable: false }).apply(input) as tf.SymbolicTensor;
  copy = tf.layers.permute({ name: "copy_positions", dims: [2, 1] }).apply(copy) as tf.SymbolicTensor;
  copy = tf.layers.dense({ name: "copy", units: 1, useBias: false }).apply(copy) as tf.SymbolicTensor;
  copy = tf.layers.flatten({ name: "copy_flatten" }).apply(copy) as tf.SymbolicTensor;
  const summed = tf.layers.add({ name: "logits" }).apply([logits, copy]) as tf.SymbolicTensor;
  const output = tf.layers.activation({ name: "softmax", activation: "softmax" }).apply(summed) as tf.SymbolicTensor;
  return tf.model({ name: "tacit_next_action", inputs: input, outputs: output });
}

/** What tacit-model.json says: everything a consumer needs besides the LayersModel itself. */
export function tacitModelDescription(spec: ModelSpec, modelHash: string, source: ModelSource): Record<string, unknown> {
  return {
    format: EXPORT_FORMAT,
    model: spec,
    modelHash,
    modelHashAlgorithm: `SHA-256 of the float32 little-endian weights concatenated in this order: ${parameterShapes(spec).map((p) => `${p.name} [${p.shape.join("×")}]`).join(", ")}` +
      (isTied(spec) ? "; the LayersModel's output/kernel is embedding transposed (tied output) and is not hashed separately" : "") +
      (hasCopy(spec) ? `; ${COPY_ONEHOT_WEIGHT} is the fixed identity (one-hot) table of the context-copy path and is not hashed` : ""),
    source,
    tokenHashing: {
      algorithm: "sha256",
      rule: `id = ${SPECIAL_IDS} + (first 4 bytes of SHA-256(UTF-8 token) as a big-endian uint32) mod ${spec.vocabBuckets}`,
      vocabBuckets: spec.vocabBuckets,
      specialIds: { padding: PAD_ID, sessionStart: SESSION_START_ID },
    },
    window: spec.window,
    sessionGapSeconds: spec.sessionGapSeconds,
    input: `int32 [batch, ${spec.window}]: the ids of the ${spec.window} previous actions of the current session, most recent last; a shorter session is left-padded as [${PAD_ID}…, ${SESSION_START_ID}, a1, …]. A gap of more than ${spec.sessionGapSeconds} s between actions starts a new session.`,
    output: `float32 [batch, ${outputSize(spec)}]: probabilities of the next action's id (${PAD_ID} and ${SESSION_START_ID} are inputs only). The model carries no tokens: map ids back through a vocabulary of your own.`,
  };
}

/**
 * Writes the export into `dir` (created if needed). Files are replaced atomically, and
 * tacit-model.json last, so a directory with tacit-model.json holds a complete export.
 */
export async function exportModel(dir: string, spec: ModelSpec, flat: Float32Array, source: ModelSource, release?: ReleasedMixture): Promise<{ modelHash: string }> {
  if (flat.length !== parameterCount(spec)) throw new Error(`weights have ${flat.length} values, the spec needs ${parameterCount(spec)}`);
  await initBackend();
  const modelHash = weightsHash(flat);
  const model = buildLayersModel(spec);
  try {
    const wanted = new Map(layerWeights(spec, flat).map((w) => [w.name, w]));
    // Set by the layer weights' own names, so the order tfjs keeps them in does not matter.
    model.setWeights(model.weights.map((w) => {
      const src = wanted.get(w.originalName);
      if (!src) throw new Error(`export: no value for layer weight ${w.originalName}`);
      return tf.tensor(src.values, src.shape);
    }));
    mkdirSync(dir, { recursive: true });
    await model.save(
      tf.io.withSaveHandler(async (art) => {
        const data = art.weightData instanceof ArrayBuffer ? art.weightData : tf.io.concatenateArrayBuffers(art.weightData as ArrayBuffer[]);
        writeFileAtomic(join(dir, WEIGHTS_BIN), new Uint8Array(data), 0o644);
        const modelJson = {
          format: "layers-model",
          generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
          convertedBy: "tacit model export",
          modelTopology: art.modelTopology,
          weightsManifest: [{ paths: [WEIGHTS_BIN], weights: art.weightSpecs }],
        };
        writeFileAtomic(join(dir, MODEL_JSON), JSON.stringify(modelJson), 0o644);
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON", weightDataBytes: data.byteLength } };
      }),
    );
  } finally {
    model.dispose();
  }
  const description = { ...tacitModelDescription(spec, modelHash, source), ...(release ? { release } : {}) };
  writeFileAtomic(join(dir, TACIT_MODEL_JSON), JSON.stringify(description, null, 2) + "\n", 0o644);
  return { modelHash };
}
