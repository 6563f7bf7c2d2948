/**
 * Next-action prediction from a flat weight vector, in plain JavaScript. The model is small
 * (one window of embeddings, one hidden layer), so a forward pass is microseconds of arithmetic:
 * `tacit model predict`, `tacit client suggest` and the daemon's suggestion socket answer
 * without initialising a tfjs backend on their thread. test/model-export.test.ts checks that it
 * agrees with the training model (Trainer) and with the exported TensorFlow.js LayersModel.
 * Pure functions.
 */
import { COPY_PARAMETER, hasCopy, isTied, outputSize, PAD_ID, parameterShapes, SESSION_START_ID, SPECIAL_IDS, tokenBucket, type ModelSpec } from "./spec.ts";

/** One timed action, as the action store and the datasets hold them. */
export interface TimedToken {
  /** Unix seconds. */
  time: number;
  token: string;
}

/**
 * The model input for "what comes after these tokens", encoded exactly as buildExamples encodes
 * a training window: right-aligned, the most recent token last, a session-start marker and
 * padding in front when the context is shorter than the window.
 */
export function contextIds(tokens: readonly string[], spec: ModelSpec): Int32Array {
  const T = spec.window;
  const x = new Int32Array(T).fill(PAD_ID);
  const recent = tokens.slice(-T);
  let slot = T - 1;
  for (let j = recent.length - 1; j >= 0; j--, slot--) x[slot] = tokenBucket(recent[j]!, spec);
  // A context shorter than the window shows where its session started (as in training).
  if (slot >= 0) x[slot] = SESSION_START_ID;
  return x;
}

/**
 * The tokens of the current session before an action happening at `now`: actions are cut into
 * sessions at idle gaps longer than the spec's gap (as in training), so after a long pause the
 * next action starts a new session and the context is empty.
 */
export function currentSession(actions: readonly TimedToken[], now: number, spec: ModelSpec): string[] {
  const sorted = [...actions].sort((a, b) => a.time - b.time);
  let start = sorted.length;
  let next = now;
  for (let i = sorted.length - 1; i >= 0; i--) {
    if (next - sorted[i]!.time > spec.sessionGapSeconds) break;
    start = i;
    next = sorted[i]!.time;
  }
  return sorted.slice(start).map((a) => a.token);
}

/** Splits the flat weight vector into its named parameters (views, not copies). */
function unflatten(spec: ModelSpec, flat: Float32Array): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  let o = 0;
  for (const p of parameterShapes(spec)) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    out.set(p.name, flat.subarray(o, o + n));
    o += n;
  }
  return out;
}

/** y[j] = b[j] + Σ_i x[i] · W[i, j] for a row-major [in, out] kernel. */
function dense(x: Float64Array, w: Float32Array, b: Float32Array, outDim: number): Float64Array {
  const y = new Float64Array(outDim);
  for (let j = 0; j < outDim; j++) y[j] = b[j]!;
  for (let i = 0; i < x.length; i++) {
    const xi = x[i]!;
    if (xi === 0) continue;
    const row = i * outDim;
    for (let j = 0; j < outDim; j++) y[j] = y[j]! + xi * w[row + j]!;
  }
  return y;
}

/** The model's distribution over all output ids (pad, session start, buckets) after `ids`. */
export function predictDistribution(spec: ModelSpec, weights: Float32Array, ids: Int32Array): Float64Array {
  const p = unflatten(spec, weights);
  const D = spec.embedDim;
  const V = outputSize(spec);
  const emb = p.get("embedding")!;
  const x = new Float64Array(spec.window * D);
  for (let t = 0; t < spec.window; t++) for (let k = 0; k < D; k++) x[t * D + k] = emb[ids[t]! * D + k]!;
  const h = dense(x, p.get("hidden/kernel")!, p.get("hidden/bias")!, spec.hidden).map((v) => Math.max(0, v));
  let logits: Float64Array;
  if (isTied(spec)) {
    // Tied output: project to the embedding width, score against every embedding row.
    const q = dense(h, p.get("projection/kernel")!, p.get("projection/bias")!, D);
    const b = p.get("output/bias")!;
    logits = new Float64Array(V);
    for (let v = 0; v < V; v++) {
      let s = b[v]!;
      for (let k = 0; k < D; k++) s += q[k]! * emb[v * D + k]!;
      logits[v] = s;
    }
  } else {
    logits = dense(h, p.get("output/kernel")!, p.get("output/bias")!, V);
  }
  if (hasCopy(spec)) {
    const c = p.get(COPY_PARAMETER)!;
    for (let t = 0; t < spec.window; t++) logits[ids[t]!] = logits[ids[t]!]! + c[t]!;
  }
  let max = -Infinity;
  for (const l of logits) max = Math.max(max, l);
  let sum = 0;
  for (let v = 0; v < V; v++) sum += logits[v] = Math.exp(logits[v]! - max);
  for (let v = 0; v < V; v++) logits[v] = logits[v]! / sum;
  return logits;
}

export interface BucketPrediction {
  /** Output id (2 … vocabBuckets+1): a token hash bucket. */
  bucket: number;
  p: number;
}

/**
 * The K most likely next buckets, most likely first (ties: lower id first). Padding and the
 * session-start marker are inputs only, never an action, so they are never suggested.
 */
export function topBuckets(probs: ArrayLike<number>, k: number): BucketPrediction[] {
  const ids: number[] = [];
  for (let v = SPECIAL_IDS; v < probs.length; v++) ids.push(v);
  ids.sort((a, b) => probs[b]! - probs[a]! || a - b);
  return ids.slice(0, k).map((bucket) => ({ bucket, p: probs[bucket]! }));
}

/**
 * Bucket → token for a vocabulary (the caller's, or the device's own actions). Several tokens
 * can share a bucket: the earliest in `tokens` wins, so list the most frequent first.
 */
export function bucketVocabulary(tokens: Iterable<string>, spec: ModelSpec): Map<number, string> {
  const out = new Map<number, string>();
  for (const t of tokens) {
    const b = tokenBucket(t, spec);
    if (!out.has(b)) out.set(b, t);
  }
  return out;
}

/** A prediction shown to a person or an agent: their token where the vocabulary knows it, else the bucket. */
export type Prediction = { token: string; p: number } | { bucket: number; p: number };

export function labelPredictions(top: readonly BucketPrediction[], vocab: ReadonlyMap<number, string> | undefined): Prediction[] {
  return top.map((t) => {
    const token = vocab?.get(t.bucket);
    return token !== undefined ? { token, p: t.p } : { bucket: t.bucket, p: t.p };
  });
}
