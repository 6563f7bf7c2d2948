/**
 * The next-action model's spec (docs/DESIGN.md §4). The coordinator fixes it per run, so every device
 * hashes tokens into the same V buckets and no device reveals its vocabulary.
 * Ids: 0 = padding, 1 = session start, 2..V+1 = hash buckets.
 */
import { createHash } from "node:crypto";
import { z } from "zod";

export interface ModelSpec {
  version: 1;
  vocabBuckets: number;
  window: number;
  embedDim: number;
  hidden: number;
  sessionGapSeconds: number;
  /**
   * "dense" (absent = dense, the original model): logits = hidden × W_out + b.
   * "tied": the hidden layer is projected back to the embedding width and scored against the
   * input embedding itself, logits = (hidden × P + c) × Eᵀ + b — a third of the parameters,
   * which matters under DP because the noise norm grows with √d.
   */
  output?: "dense" | "tied";
  /**
   * Context copy (a cache/pointer path): logits[v] += Σ_t c_t · [context_t = v], one learned weight
   * per window position. Repeating a recent action is the strongest signal a device has and it is
   * the same for every device, so it transfers to devices and repositories the model never saw;
   * the other layers, which must learn it through the embeddings, learn it slowly.
   */
  copy?: boolean;
}

export const PAD_ID = 0;
export const SESSION_START_ID = 1;
export const SPECIAL_IDS = 2;

/** The original dense-output model (198,082 parameters). */
export const DENSE_MODEL_SPEC: ModelSpec = {
  version: 1,
  vocabBuckets: 1024,
  window: 8,
  embedDim: 32,
  hidden: 128,
  sessionGapSeconds: 1800,
};

/**
 * Runs without DP noise and without a public initial model: the dense model with the context-copy
 * path: a device's repeats are the strongest signal it has, the same for every device, and
 * FedAdam's bounded steps learn them slowly through the embeddings alone. On a 30 % carve of
 * data/devactions, 10 clients × 5 rounds scored 26.5 % held-out top-3 without it (in process)
 * and 41.4 % with it (over gRPC); 51 users × 20 rounds 59.5 % (bench/RESULTS.md).
 */
export const DENSE_COPY_MODEL_SPEC: ModelSpec = { ...DENSE_MODEL_SPEC, copy: true };

/** The default: the tied-output model (70,882 parameters); see bench/RESULTS.md for why. */
export const DEFAULT_MODEL_SPEC: ModelSpec = { ...DENSE_MODEL_SPEC, output: "tied" };

/**
 * DP runs and runs from a public model: the tied model with the context-copy path, with 28-wide
 * embeddings. The copy path lifted the released model at ε 8 on devactions-large from 54.9 % to
 * 57.6 % held-out top-3 (bench/RESULTS.md, "The copy path in the DP recipe"). The width keeps the
 * model under 2^16 parameters (62,174; 70,890 at width 32): the distributed DP encoding pads the
 * update to a power of two for its Hadamard rotation, so at 32 every device sampled noise for,
 * masked and sent 131,072 coordinates, and at 28 it does 65,536 — half of a DP round's device
 * work. Under DP the narrower model also scored higher (in process, ε 8: released 58.35 % vs
 * 57.81 %; bench/RESULTS.md, "A model under 2^16 parameters").
 */
export const TIED_COPY_MODEL_SPEC: ModelSpec = { ...DEFAULT_MODEL_SPEC, embedDim: 28, copy: true };

export const modelSpecSchema = z
  .object({
    version: z.literal(1),
    vocabBuckets: z.number().int().min(16).max(65_536),
    window: z.number().int().min(1).max(64),
    embedDim: z.number().int().min(1).max(512),
    hidden: z.number().int().min(1).max(2048),
    sessionGapSeconds: z.number().int().min(1).max(86_400 * 30),
    output: z.enum(["dense", "tied"]).optional(),
    copy: z.boolean().optional(),
  })
  .strict();

export class ModelSpecError extends Error {
  override name = "ModelSpecError";
}

export function validateModelSpec(x: unknown): ModelSpec {
  const r = modelSpecSchema.safeParse(x);
  if (!r.success) throw new ModelSpecError(`invalid model spec: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  return r.data;
}

export function outputSize(spec: ModelSpec): number {
  return spec.vocabBuckets + SPECIAL_IDS;
}

/** The context-copy weights c_t, one per window position (last in the layout). */
export const COPY_PARAMETER = "copy/kernel";

/** Parameter layout, in the order of the flat weight vector. */
export function parameterShapes(spec: ModelSpec): { name: string; shape: number[] }[] {
  const v = outputSize(spec);
  const input = [
    { name: "embedding", shape: [v, spec.embedDim] },
    { name: "hidden/kernel", shape: [spec.window * spec.embedDim, spec.hidden] },
    { name: "hidden/bias", shape: [spec.hidden] },
  ];
  const copy = hasCopy(spec) ? [{ name: COPY_PARAMETER, shape: [spec.window] }] : [];
  if (isTied(spec)) {
    return [...input, { name: "projection/kernel", shape: [spec.hidden, spec.embedDim] }, { name: "projection/bias", shape: [spec.embedDim] }, { name: "output/bias", shape: [v] }, ...copy];
  }
  return [...input, { name: "output/kernel", shape: [spec.hidden, v] }, { name: "output/bias", shape: [v] }, ...copy];
}

/** Field-by-field equality (key order and an absent `output` = "dense" do not matter). */
export function sameModelSpec(a: ModelSpec, b: ModelSpec): boolean {
  return (
    a.version === b.version && a.vocabBuckets === b.vocabBuckets && a.window === b.window && a.embedDim === b.embedDim &&
    a.hidden === b.hidden && a.sessionGapSeconds === b.sessionGapSeconds && isTied(a) === isTied(b) &&
    hasCopy(a) === hasCopy(b)
  );
}

export function hasCopy(spec: ModelSpec): boolean {
  return spec.copy === true;
}

export function isTied(spec: ModelSpec): boolean {
  return spec.output === "tied";
}

export function parameterCount(spec: ModelSpec): number {
  return parameterShapes(spec).reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
}

/** Stable bucket of a token: first 4 bytes of SHA-256, mod V, offset past the special ids. */
export function tokenBucket(token: string, spec: ModelSpec): number {
  const h = createHash("sha256").update(token).digest();
  return SPECIAL_IDS + (h.readUInt32BE(0) % spec.vocabBuckets);
}
