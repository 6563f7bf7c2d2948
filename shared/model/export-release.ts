/**
 * Exporting a model the ledger released: the checkpoint's weights must hash to exactly the
 * hash the ledger's entry records before anything is written — an
 * export is a claim that "this is the model of round R", and the ledger is what makes it true.
 */
import type { ModelRelease } from "../ledger/model-releases.ts";
import { exportModel } from "./export.ts";
import { ExportedModelError } from "./exported-model.ts";
import { validateModelSpec, type ModelSpec } from "./spec.ts";
import { weightsHash } from "./weights.ts";

export async function exportRelease(dir: string, release: ModelRelease, checkpoint: { spec: ModelSpec; weights: Float32Array; path: string }, kind: "coordinator-run" | "simulation"): Promise<{ modelHash: string }> {
  const hash = weightsHash(checkpoint.weights);
  const what = `round ${release.round} of run ${release.runId}`;
  if (hash !== release.modelHash) {
    throw new ExportedModelError(`hash mismatch: the checkpoint ${checkpoint.path} hashes to ${hash}, but the ledger released ${release.modelHash} as the model after ${what} (entry ${release.seq}); not exporting it`);
  }
  // The weights are the released ones; their layout is the run's spec as the ledger records it.
  const spec = validateModelSpec(release.spec);
  return exportModel(dir, spec, checkpoint.weights, { kind, runId: release.runId, round: release.round, ledgerSeq: release.seq });
}
