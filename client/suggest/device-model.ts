/**
 * The laptop's current model: the last global model this device received in a round (its
 * weights verified against the coordinator-signed hash before training), kept in the state
 * dir so that suggestions work between rounds and across restarts. It is the global model
 * everyone received; nothing of this person's data is in it.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { loadCheckpoint, saveCheckpoint, weightsHash, type ModelSpec } from "../../shared/model/index.ts";

export interface DeviceModel {
  spec: ModelSpec;
  weights: Float32Array;
  runId: string;
  round: number;
  modelHash: string;
}

export class NoDeviceModelError extends Error {
  override name = "NoDeviceModelError";
}

export function deviceModelDir(stateDir: string): string {
  return join(stateDir, "model");
}

/** Keeps the model a round started from (round `round` trains on the model after round − 1). */
export async function saveDeviceModel(stateDir: string, m: { spec: ModelSpec; weights: Float32Array; runId: string; round: number }): Promise<void> {
  await saveCheckpoint(deviceModelDir(stateDir), m.spec, m.weights, { runId: m.runId, round: m.round, source: "global model received for this round" });
}

export async function loadDeviceModel(stateDir: string): Promise<DeviceModel> {
  const dir = deviceModelDir(stateDir);
  if (!existsSync(join(dir, "model.json"))) {
    throw new NoDeviceModelError("no model on this laptop yet: it arrives with the first round this laptop takes part in (`tacit client status` shows rounds joined)");
  }
  const cp = await loadCheckpoint(dir);
  return { spec: cp.spec, weights: cp.weights, runId: String(cp.meta.runId ?? ""), round: Number(cp.meta.round ?? -1), modelHash: weightsHash(cp.weights) };
}
