/**
 * Global model checkpoints per run: checkpoints/<run>/round-<r>/ (tfjs model.json +
 * weights.bin, written atomically by shared/model) and a LATEST pointer replaced atomically
 * after the checkpoint is complete, so a crash never leaves a half-written current model.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { loadCheckpoint, saveCheckpoint, weightsHash, type ModelSpec } from "../../shared/model/index.ts";
import { writeFileAtomic } from "../state/state-dir.ts";

export interface StoredCheckpoint {
  round: number;
  weights: Float32Array;
  hash: string;
  serverState?: unknown;
}

export class CheckpointStore {
  constructor(private readonly root: string) {}

  private runDir(runId: string): string {
    return join(this.root, runId);
  }

  dirFor(runId: string, round: number): string {
    return join(this.runDir(runId), `round-${String(round).padStart(5, "0")}`);
  }

  /** Saves the model after `round` (round −1 = the initial model) and moves LATEST to it. */
  async save(runId: string, round: number, spec: ModelSpec, weights: Float32Array, serverState: unknown): Promise<string> {
    mkdirSync(this.runDir(runId), { recursive: true, mode: 0o700 });
    const dir = this.dirFor(runId, round);
    const hash = await saveCheckpoint(dir, spec, weights, { runId, round, serverState });
    writeFileAtomic(join(this.runDir(runId), "LATEST"), JSON.stringify({ round, dir, hash }) + "\n", 0o644);
    return hash;
  }

  async latest(runId: string): Promise<StoredCheckpoint | undefined> {
    const ptr = join(this.runDir(runId), "LATEST");
    if (!existsSync(ptr)) return undefined;
    const { round, dir } = JSON.parse(readFileSync(ptr, "utf8")) as { round: number; dir: string; hash: string };
    const cp = await loadCheckpoint(dir);
    return { round, weights: cp.weights, hash: weightsHash(cp.weights), serverState: cp.meta.serverState };
  }
}
