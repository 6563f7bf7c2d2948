/**
 * Reading an export back (`tacit model predict`, `tacit verify --model`): both files validated,
 * the LayersModel's weights turned back into Tacit's flat weight vector and hashed. The hash is
 * recomputed from the weights, never taken from tacit-model.json, so a model whose weights were
 * changed after export no longer matches the hash it claims (nor any the ledger released).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { COPY_ONEHOT_WEIGHT, EXPORT_FORMAT, layerWeights, MODEL_JSON, PUBLIC_MODEL_DIR, TACIT_MODEL_JSON, transpose, type ModelSource } from "./export.ts";
import { hasCopy, isTied, modelSpecSchema, outputSize, parameterShapes, sameModelSpec, type ModelSpec } from "./spec.ts";
import { weightsHash } from "./weights.ts";

export class ExportedModelError extends Error {
  override name = "ExportedModelError";
}

const tacitModelSchema = z
  .object({
    format: z.literal(EXPORT_FORMAT),
    model: modelSpecSchema,
    modelHash: z.string().regex(/^[0-9a-f]{64}$/, "must be 64 hex digits"),
    source: z.record(z.unknown()),
    release: z
      .object({
        federatedWeight: z.number().gt(0).lte(1),
        publicModel: z.literal(PUBLIC_MODEL_DIR),
        publicModelHash: z.string().regex(/^[0-9a-f]{64}$/, "must be 64 hex digits"),
      })
      .strict()
      .optional(),
  })
  .passthrough();

// Weight files are named relative to the export: a bare file name, nothing that leaves the dir.
const weightPath = z.string().regex(/^[\w.-]+$/, "must be a file name inside the export directory").refine((p) => p !== "." && p !== "..", "must be a file name");

const modelJsonSchema = z
  .object({
    modelTopology: z.record(z.unknown()),
    weightsManifest: z
      .array(
        z.object({
          paths: z.array(weightPath).min(1),
          weights: z.array(z.object({ name: z.string(), shape: z.array(z.number().int().min(0)), dtype: z.literal("float32") }).passthrough()),
        }),
      )
      .min(1),
  })
  .passthrough();

export interface ExportedModel {
  spec: ModelSpec;
  /** Tacit's flat weight vector, rebuilt from the LayersModel's weights. */
  weights: Float32Array;
  /** SHA-256 of `weights`, recomputed here (equal to the hash tacit-model.json records). */
  modelHash: string;
  source: ModelSource | Record<string, unknown>;
  /** The released predictor mixes this model with the run's public one (shared/model/release-mix.ts). */
  mixture?: { federatedWeight: number; publicModel: ExportedModel };
}

function readJson(path: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new ExportedModelError(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
}

function issues(e: z.ZodError): string {
  return e.issues.map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`).join("; ");
}

export function readExportedModel(dir: string): ExportedModel {
  return readExport(dir, false);
}

/** `asPublicHalf`: the public half of a mixture, refused as soon as it claims a mixture of its own. */
function readExport(dir: string, asPublicHalf: boolean): ExportedModel {
  const descPath = join(dir, TACIT_MODEL_JSON);
  if (!existsSync(descPath)) {
    throw new ExportedModelError(`${dir} is not a Tacit model export (no ${TACIT_MODEL_JSON}); write one with \`tacit model export\` or \`tacit simulate --out\``);
  }
  const desc = tacitModelSchema.safeParse(readJson(descPath, "the model description"));
  if (!desc.success) throw new ExportedModelError(`${descPath} is malformed: ${issues(desc.error)}`);
  const spec = desc.data.model as ModelSpec;
  // Refused before anything else is read: a nested mixture would recurse into public/public/….
  if (asPublicHalf && desc.data.release) throw new ExportedModelError(`${dir}: the public model of a mixture must be a plain model, not a mixture itself`);

  const mj = modelJsonSchema.safeParse(readJson(join(dir, MODEL_JSON), "the LayersModel"));
  if (!mj.success) throw new ExportedModelError(`${join(dir, MODEL_JSON)} is not a LayersModel: ${issues(mj.error)}`);

  // Each manifest group's files hold its weights back to back, in the manifest's order.
  const byName = new Map<string, { shape: number[]; values: Float32Array }>();
  for (const group of mj.data.weightsManifest) {
    const bytes = Buffer.concat(group.paths.map((p) => {
      try {
        return readFileSync(join(dir, p));
      } catch {
        throw new ExportedModelError(`${dir}: cannot read weight file ${p} named by ${MODEL_JSON}`);
      }
    }));
    let o = 0;
    for (const w of group.weights) {
      const n = w.shape.reduce((a, b) => a * b, 1);
      if (o + n * 4 > bytes.length) throw new ExportedModelError(`${dir}: the weight files hold ${bytes.length} bytes, fewer than ${MODEL_JSON}'s manifest names`);
      byName.set(w.name, { shape: w.shape, values: new Float32Array(bytes.buffer.slice(bytes.byteOffset + o, bytes.byteOffset + o + n * 4)) });
      o += n * 4;
    }
    if (o !== bytes.length) throw new ExportedModelError(`${dir}: the weight files hold ${bytes.length} bytes, ${MODEL_JSON}'s manifest names ${o}`);
  }

  // Every layer weight the spec implies, with its shape.
  for (const want of layerWeights(spec, new Float32Array(parameterShapes(spec).reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0)))) {
    const got = byName.get(want.name);
    if (!got) throw new ExportedModelError(`${dir}: ${MODEL_JSON} has no weight ${want.name}, which the model spec in ${TACIT_MODEL_JSON} needs`);
    if (got.shape.join("x") !== want.shape.join("x")) throw new ExportedModelError(`${dir}: weight ${want.name} has shape [${got.shape}], the model spec needs [${want.shape}]`);
  }
  const flatParts: Float32Array[] = parameterShapes(spec).map((p) => byName.get(p.name === "embedding" ? "embedding/embeddings" : p.name)!.values);
  const weights = new Float32Array(flatParts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of flatParts) {
    weights.set(p, o);
    o += p.length;
  }
  if (isTied(spec)) {
    // The hash covers the embedding only: the output kernel must be exactly its transpose.
    const et = transpose(byName.get("embedding/embeddings")!.values, outputSize(spec), spec.embedDim);
    const k = byName.get("output/kernel")!.values;
    if (et.some((v, i) => !Object.is(v, k[i]))) throw new ExportedModelError(`${dir}: output/kernel is not the transposed embedding this tied model requires (the export was altered)`);
  }
  if (hasCopy(spec)) {
    // Entry i is on the diagonal of the n×n table exactly when i is a multiple of n + 1.
    const n = outputSize(spec);
    const table = byName.get(COPY_ONEHOT_WEIGHT)!.values;
    if (!table.every((v, i) => Object.is(v, i % (n + 1) === 0 ? 1 : 0))) throw new ExportedModelError(`${dir}: ${COPY_ONEHOT_WEIGHT} is not the identity table the context-copy path requires (the export was altered)`);
  }
  const modelHash = weightsHash(weights);
  if (modelHash !== desc.data.modelHash) {
    throw new ExportedModelError(`${dir}: the weights hash to ${modelHash}, but ${TACIT_MODEL_JSON} records ${desc.data.modelHash} (hash mismatch: the weights were changed after export)`);
  }
  const release = desc.data.release;
  if (!release) return { spec, weights, modelHash, source: desc.data.source };
  return { spec, weights, modelHash, source: desc.data.source, mixture: { federatedWeight: release.federatedWeight, publicModel: readPublicModel(dir, spec, release.publicModelHash) } };
}

/** The public half of a mixture export: itself a plain export, of the same spec, hashing as recorded. */
function readPublicModel(dir: string, spec: ModelSpec, recordedHash: string): ExportedModel {
  const sub = join(dir, PUBLIC_MODEL_DIR);
  const pub = readExport(sub, true);
  if (pub.modelHash !== recordedHash) throw new ExportedModelError(`${sub}: the public model hashes to ${pub.modelHash}, but ${join(dir, TACIT_MODEL_JSON)} mixes in ${recordedHash}`);
  if (!sameModelSpec(pub.spec, spec)) throw new ExportedModelError(`${sub}: the public model's spec differs from the federated model's; they cannot be mixed`);
  return pub;
}
