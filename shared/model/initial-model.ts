/**
 * A run's initial model named by its spec (`initialModel`): a checkpoint on the coordinator's
 * disk, pinned by the SHA-256 of its weights and declared as trained on public data only. The
 * coordinator loads it at launch instead of the seeded random initialisation; the ledger's
 * run-launch entry carries the spec (provenance, hash) and the initial model hash, so a
 * reviewer sees that the run started from public data at no privacy cost.
 */
import { loadCheckpoint } from "./checkpoint.ts";
import { sameModelSpec, type ModelSpec } from "./spec.ts";
import { weightsHash } from "./weights.ts";

export interface InitialModelRef {
  checkpoint: string;
  sha256: string;
  source: "public";
  dataset: string;
}

export class InitialModelError extends Error {
  override name = "InitialModelError";
}

export async function loadInitialModel(ref: InitialModelRef, spec: ModelSpec): Promise<Float32Array> {
  let cp: Awaited<ReturnType<typeof loadCheckpoint>>;
  try {
    cp = await loadCheckpoint(ref.checkpoint);
  } catch (err) {
    throw new InitialModelError(`initialModel.checkpoint ${ref.checkpoint}: ${(err as Error).message}`);
  }
  if (!sameModelSpec(cp.spec, spec)) throw new InitialModelError(`initialModel.checkpoint ${ref.checkpoint} holds a different model (${JSON.stringify(cp.spec)}) than the run's spec`);
  const hash = weightsHash(cp.weights);
  if (hash !== ref.sha256) throw new InitialModelError(`initialModel.checkpoint ${ref.checkpoint} has weights SHA-256 ${hash}, the spec pins ${ref.sha256}`);
  // A run never starts from a NaN/∞ model (issue #13): every round after it would be NaN too.
  const bad = cp.weights.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) throw new InitialModelError(`initialModel.checkpoint ${ref.checkpoint} has a non-finite weight (index ${bad} is ${cp.weights[bad]})`);
  return cp.weights;
}
