/**
 * Public pretraining: the run's initial model trained centrally on public per-user files (e.g.
 * data/devactions, released open-source histories). Public data costs no privacy budget, and a
 * federation started from this model needs far fewer noisy rounds (bench/RESULTS.md).
 *
 * The result is a checkpoint whose metadata says where it came from (`source: "public"`, the
 * dataset's content hash and the recipe), so a run spec can name it and the ledger records its
 * hash. `pretrainCached` reuses a checkpoint of the same data, spec and recipe.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { readDevactionsDir, type UserSequence } from "../data/index.ts";
import { initBackend } from "./backend.ts";
import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import { buildExamples, type Examples } from "./examples.ts";
import { sameModelSpec, type ModelSpec } from "./spec.ts";
import { Trainer } from "./trainer.ts";
import { initialWeights } from "./weights.ts";

export interface PretrainRecipe {
  epochs: number;
  batchSize: number;
  learningRate: number;
  optimizer: "sgd" | "adam";
  seed: number;
}

/** The replica's recipe (../shared/findings/dp-utility-2026-11-30.md): 8 epochs of Adam 2e-3, batch 256. */
export const DEFAULT_PRETRAIN: PretrainRecipe = { epochs: 8, batchSize: 256, learningRate: 2e-3, optimizer: "adam", seed: 1 };

export interface PretrainResult {
  weights: Float32Array;
  sha256: string;
  checkpoint: string;
  dataSha256: string;
  cached: boolean;
  meta: Record<string, unknown>;
}

export class PretrainError extends Error {
  override name = "PretrainError";
}

/** Content hash of a dataset dir: every .tsv file's name and bytes, in name order. */
export function datasetHash(dir: string): string {
  const h = createHash("sha256");
  const files = readdirSync(dir).filter((f) => f.endsWith(".tsv")).sort();
  if (files.length === 0) throw new PretrainError(`${dir}: no .tsv user files to pretrain on`);
  for (const f of files) {
    const data = readFileSync(join(dir, f));
    h.update(`${f}\0${data.length}\0`).update(data);
  }
  return h.digest("hex");
}

export function concatExamples(parts: readonly Examples[], window: number): Examples {
  const count = parts.reduce((a, p) => a + p.count, 0);
  const x = new Int32Array(count * window);
  const y = new Int32Array(count);
  let o = 0;
  for (const p of parts) {
    x.set(p.x.subarray(0, p.count * window), o * window);
    y.set(p.y.subarray(0, p.count), o);
    o += p.count;
  }
  return { x, y, count };
}

/** Trains `spec` from its seeded initialisation on the pooled users. */
export async function pretrainWeights(users: readonly UserSequence[], spec: ModelSpec, recipe: PretrainRecipe = DEFAULT_PRETRAIN, onEpoch?: (epoch: number, loss: number) => void): Promise<Float32Array> {
  await initBackend();
  const pooled = concatExamples(users.map((u) => buildExamples(u, spec)), spec.window);
  if (pooled.count === 0) throw new PretrainError("the public dataset has no training windows");
  const trainer = new Trainer(spec);
  try {
    trainer.setWeights(initialWeights(spec, recipe.seed));
    for (let e = 0; e < recipe.epochs; e++) {
      const r = await trainer.train(pooled, { epochs: 1, batchSize: recipe.batchSize, learningRate: recipe.learningRate, optimizer: recipe.optimizer, seed: recipe.seed * 1000 + e });
      onEpoch?.(e, r.loss);
    }
    return trainer.getWeights();
  } finally {
    trainer.dispose();
  }
}

/** Where cached public checkpoints live: $TACIT_CACHE_DIR, else $XDG_CACHE_HOME/tacit, else ~/.cache/tacit. */
export function pretrainCacheDir(): string {
  const base = process.env.TACIT_CACHE_DIR ?? (process.env.XDG_CACHE_HOME ? join(process.env.XDG_CACHE_HOME, "tacit") : join(homedir(), ".cache", "tacit"));
  return join(base, "pretrain");
}

/** Pretrains on DIR and writes the checkpoint to `out` (overwriting it). */
export async function pretrainToCheckpoint(dataset: string, spec: ModelSpec, out: string, recipe: PretrainRecipe = DEFAULT_PRETRAIN, onEpoch?: (epoch: number, loss: number) => void): Promise<PretrainResult> {
  const dataSha256 = datasetHash(dataset);
  const users = await readDevactionsDir(dataset);
  const weights = await pretrainWeights(users, spec, recipe, onEpoch);
  const meta = { source: "public", dataset: resolve(dataset), dataSha256, users: users.length, recipe };
  const sha256 = await saveCheckpoint(out, spec, weights, meta);
  return { weights, sha256, checkpoint: resolve(out), dataSha256, cached: false, meta };
}

/** Like pretrainToCheckpoint, but reuses the cached checkpoint of the same data, spec and recipe. */
export async function pretrainCached(dataset: string, spec: ModelSpec, recipe: PretrainRecipe = DEFAULT_PRETRAIN, onEpoch?: (epoch: number, loss: number) => void): Promise<PretrainResult> {
  const dataSha256 = datasetHash(dataset);
  const key = createHash("sha256").update(JSON.stringify({ dataSha256, spec, recipe })).digest("hex").slice(0, 32);
  const dir = join(pretrainCacheDir(), key);
  if (existsSync(join(dir, "model.json"))) {
    try {
      const cp = await loadCheckpoint(dir);
      if (sameModelSpec(cp.spec, spec) && cp.meta.dataSha256 === dataSha256) {
        return { weights: cp.weights, sha256: String(cp.meta.weightsSha256), checkpoint: dir, dataSha256, cached: true, meta: cp.meta };
      }
    } catch {
      // A damaged cache entry is simply retrained and overwritten.
    }
  }
  return pretrainToCheckpoint(dataset, spec, dir, recipe, onEpoch);
}
