/**
 * Global model checkpoints per run: checkpoints/<run>/round-<r>/ (tfjs model.json +
 * weights.bin, written atomically by shared/model) and a LATEST pointer replaced atomically
 * after the checkpoint is complete, so a crash never leaves a half-written current model.
 *
 * A completed round's checkpoint directory is also its commit record: its metadata carries what
 * the ledger must say about the round (record, cohort, survivors, mechanism, attestations), so the
 * atomic rename of that directory is the one point at which a round becomes committed. Everything
 * after it (ledger entries, LATEST, Redis) is redone idempotently by a restarted coordinator.
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

export interface LatestPointer {
  round: number;
  dir: string;
  hash: string;
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
    const hash = await this.write(runId, round, spec, weights, serverState);
    this.point(runId, round, hash);
    return hash;
  }

  /** Writes the checkpoint of `round` atomically (with an optional commit record) without moving LATEST. */
  async write(runId: string, round: number, spec: ModelSpec, weights: Float32Array, serverState: unknown, commit?: unknown): Promise<string> {
    mkdirSync(this.runDir(runId), { recursive: true, mode: 0o700 });
    return saveCheckpoint(this.dirFor(runId, round), spec, weights, { runId, round, serverState, ...(commit !== undefined ? { commit } : {}) });
  }

  /** Moves LATEST to the (complete) checkpoint of `round`. */
  point(runId: string, round: number, hash: string): void {
    writeFileAtomic(join(this.runDir(runId), "LATEST"), JSON.stringify({ round, dir: this.dirFor(runId, round), hash }) + "\n", 0o644);
  }

  pointer(runId: string): LatestPointer | undefined {
    const ptr = join(this.runDir(runId), "LATEST");
    if (!existsSync(ptr)) return undefined;
    return JSON.parse(readFileSync(ptr, "utf8")) as LatestPointer;
  }

  has(runId: string, round: number): boolean {
    return existsSync(join(this.dirFor(runId, round), "model.json"));
  }

  /** The checkpoint of one round with its metadata (including its commit record, if any). */
  async read(runId: string, round: number): Promise<{ weights: Float32Array; hash: string; meta: Record<string, unknown> }> {
    const cp = await loadCheckpoint(this.dirFor(runId, round));
    return { weights: cp.weights, hash: weightsHash(cp.weights), meta: cp.meta };
  }

  async latest(runId: string): Promise<StoredCheckpoint | undefined> {
    const p = this.pointer(runId);
    if (!p) return undefined;
    const cp = await loadCheckpoint(p.dir);
    return { round: p.round, weights: cp.weights, hash: weightsHash(cp.weights), serverState: cp.meta.serverState };
  }
}
