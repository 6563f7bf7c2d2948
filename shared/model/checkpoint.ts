/**
 * Checkpoints as tfjs artifacts (model.json + weights.bin) written through a custom
 * tf.io.IOHandler — no tfjs-node needed. The directory is written under a temporary name,
 * fsynced and renamed into place, so a crash leaves either the old checkpoint or the new one.
 */
import * as tf from "@tensorflow/tfjs-core";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, basename } from "node:path";
import { parameterCount, parameterShapes, validateModelSpec, type ModelSpec } from "./spec.ts";
import { weightsHash } from "./weights.ts";

export class CheckpointError extends Error {
  override name = "CheckpointError";
}

const FORMAT = "tacit-next-action-v1";

function writeSynced(path: string, data: string | Uint8Array): void {
  writeFileSync(path, data);
  const fd = openSync(path, "r");
  fsyncSync(fd);
  closeSync(fd);
}

/** A tf.io.IOHandler that saves artifacts into `dir` atomically. */
export function fileSaveHandler(dir: string, meta: Record<string, unknown>): tf.io.IOHandler {
  return {
    save: async (artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> => {
      const parent = dirname(dir);
      mkdirSync(parent, { recursive: true });
      // A random name, created exclusively (not recursive): nothing planted there is reused (I5).
      const tmp = join(parent, `.${basename(dir)}.tmp-${randomBytes(12).toString("hex")}`);
      mkdirSync(tmp);
      const data = artifacts.weightData instanceof ArrayBuffer ? new Uint8Array(artifacts.weightData) : new Uint8Array(tf.io.concatenateArrayBuffers(artifacts.weightData as ArrayBuffer[]));
      writeSynced(join(tmp, "weights.bin"), data);
      const modelJson = {
        format: FORMAT,
        generatedBy: "tacit",
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ["weights.bin"], weights: artifacts.weightSpecs }],
        userDefinedMetadata: meta,
      };
      writeSynced(join(tmp, "model.json"), JSON.stringify(modelJson));
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
      renameSync(tmp, dir);
      const fd = openSync(parent, "r");
      fsyncSync(fd);
      closeSync(fd);
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON", weightDataBytes: data.byteLength } };
    },
  };
}

/** A tf.io.IOHandler that loads artifacts from `dir`, checking every size. */
export function fileLoadHandler(dir: string): tf.io.IOHandler {
  return {
    load: async (): Promise<tf.io.ModelArtifacts> => {
      let json: { format?: string; modelTopology?: unknown; weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[]; userDefinedMetadata?: Record<string, unknown> };
      try {
        json = JSON.parse(readFileSync(join(dir, "model.json"), "utf8"));
      } catch (err) {
        throw new CheckpointError(`cannot read ${join(dir, "model.json")}: ${(err as Error).message}`);
      }
      if (json.format !== FORMAT) throw new CheckpointError(`${dir}: not a Tacit checkpoint (format ${String(json.format)})`);
      const specs = json.weightsManifest?.[0]?.weights;
      if (!specs) throw new CheckpointError(`${dir}: model.json has no weights manifest`);
      let data: Buffer;
      try {
        data = readFileSync(join(dir, "weights.bin"));
      } catch (err) {
        throw new CheckpointError(`cannot read ${join(dir, "weights.bin")}: ${(err as Error).message}`);
      }
      const ab = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
      return { modelTopology: json.modelTopology as object, weightSpecs: specs, weightData: ab, userDefinedMetadata: json.userDefinedMetadata as { [key: string]: {} } | undefined };
    },
  };
}

export async function saveCheckpoint(dir: string, spec: ModelSpec, flat: Float32Array, meta: Record<string, unknown>): Promise<string> {
  if (flat.length !== parameterCount(spec)) throw new CheckpointError(`weights have ${flat.length} values, spec needs ${parameterCount(spec)}`);
  const hash = weightsHash(flat);
  const specs: tf.io.WeightsManifestEntry[] = parameterShapes(spec).map((p) => ({ name: p.name, shape: p.shape, dtype: "float32" }));
  const bytes = new Uint8Array(flat.buffer, flat.byteOffset, flat.byteLength).slice();
  await fileSaveHandler(dir, { ...meta, spec, weightsSha256: hash }).save!({
    modelTopology: { tacitModelSpec: spec },
    weightSpecs: specs,
    weightData: bytes.buffer,
  });
  return hash;
}

export async function loadCheckpoint(dir: string): Promise<{ spec: ModelSpec; weights: Float32Array; meta: Record<string, unknown> }> {
  const art = await fileLoadHandler(dir).load!();
  const spec = validateModelSpec((art.modelTopology as { tacitModelSpec?: unknown }).tacitModelSpec);
  const want = parameterCount(spec);
  const data = art.weightData as ArrayBuffer;
  if (data.byteLength !== want * 4) throw new CheckpointError(`${dir}: weights.bin has ${data.byteLength} bytes, the spec needs ${want * 4}`);
  const expectedShapes = parameterShapes(spec);
  const specs = art.weightSpecs ?? [];
  if (specs.length !== expectedShapes.length || specs.some((s, i) => s.name !== expectedShapes[i]!.name || s.shape.join("x") !== expectedShapes[i]!.shape.join("x"))) {
    throw new CheckpointError(`${dir}: weight manifest does not match the model spec`);
  }
  const weights = new Float32Array(data);
  const meta = (art.userDefinedMetadata ?? {}) as Record<string, unknown>;
  if (typeof meta.weightsSha256 === "string" && meta.weightsSha256 !== weightsHash(weights)) {
    throw new CheckpointError(`${dir}: weights.bin does not match its recorded SHA-256 (corrupted)`);
  }
  return { spec, weights, meta };
}
