/**
 * Exporting a model the ledger released: the checkpoint's weights must hash to exactly the
 * hash the ledger's entry records before anything is written — an
 * export is a claim that "this is the model of round R", and the ledger is what makes it true.
 */
import { join } from "node:path";
import type { ModelRelease } from "../ledger/model-releases.ts";
import { exportModel, PUBLIC_MODEL_DIR, type ReleasedMixture } from "./export.ts";
import { ExportedModelError } from "./exported-model.ts";
import { validateFederatedWeight } from "./release-mix.ts";
import { validateModelSpec, type ModelSpec } from "./spec.ts";
import { weightsHash } from "./weights.ts";

export interface ReleasedCheckpoint {
  release: ModelRelease;
  checkpoint: { spec: ModelSpec; weights: Float32Array; path: string };
}

export async function exportRelease(dir: string, release: ModelRelease, checkpoint: ReleasedCheckpoint["checkpoint"], kind: "coordinator-run" | "simulation", mixture?: ReleasedMixture): Promise<{ modelHash: string }> {
  const hash = weightsHash(checkpoint.weights);
  const what = release.round < 0 ? `the initial model of run ${release.runId}` : `the model after round ${release.round} of run ${release.runId}`;
  if (hash !== release.modelHash) {
    throw new ExportedModelError(`hash mismatch: the checkpoint ${checkpoint.path} hashes to ${hash}, but the ledger released ${release.modelHash} as ${what} (entry ${release.seq}); not exporting it`);
  }
  // The weights are the released ones; their layout is the run's spec as the ledger records it.
  const spec = validateModelSpec(release.spec);
  return exportModel(dir, spec, checkpoint.weights, { kind, runId: release.runId, round: release.round, ledgerSeq: release.seq }, mixture);
}

/**
 * The released mixture (1 − w)·public + w·federated as one export: the run's public initial model
 * (its round −1 release) in `public/`, written first, then the federated model, whose
 * tacit-model.json names the mixture and is written last — a directory with it is complete.
 */
export async function exportReleasedMixture(dir: string, federated: ReleasedCheckpoint, publicModel: ReleasedCheckpoint, federatedWeight: number, kind: "coordinator-run" | "simulation"): Promise<{ modelHash: string; publicModelHash: string }> {
  validateFederatedWeight(federatedWeight);
  const pub = publicModel.release;
  // Only what the ledger pins as this run's public starting point may be mixed in: it cost no budget.
  if (pub.round !== -1 || pub.runId !== federated.release.runId) {
    throw new ExportedModelError(`the mixture's public model must be the initial model of run ${federated.release.runId}, not ${pub.round < 0 ? "that" : `round ${pub.round}`} of run ${pub.runId}`);
  }
  if (!pub.public) throw new ExportedModelError(`run ${pub.runId} started from a random initialisation, not a public pretrained model: there is no public model to mix with`);
  const { modelHash: publicModelHash } = await exportRelease(join(dir, PUBLIC_MODEL_DIR), pub, publicModel.checkpoint, kind);
  const { modelHash } = await exportRelease(dir, federated.release, federated.checkpoint, kind, { federatedWeight, publicModel: PUBLIC_MODEL_DIR, publicModelHash });
  return { modelHash, publicModelHash };
}
