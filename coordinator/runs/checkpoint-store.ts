/**
 * Global model checkpoints per run: checkpoints/<run>/round-<r>-a<attempt>/ (tfjs model.json +
 * weights.bin, written atomically by shared/model) and a LATEST pointer replaced atomically
 * after the checkpoint is complete, so a crash never leaves a half-written current model.
 *
 * Checkpoints live in the store's directory and are immutable: each attempt writes its own, so a
 * stale coordinator can never replace the model of a round its successor committed. A round
 * becomes committed when its attempt's outcome and then its commit record are put-if-absent in
 * the store (round-decisions.ts); everything after that (ledger entries, LATEST, Redis) is redone
 * idempotently by whichever coordinator runs next.
 *
 * On a store without a directory (S3) the checkpoint directories are written in a local cache
 * and each file is put-if-absent at `checkpoints/<run>/<dir>/<file>` before the attempt is
 * decided, so a committed round's checkpoint is always in the store; another coordinator fetches
 * it into its own cache when it needs it (loading checks the weights against their SHA-256).
 * LATEST is then `checkpoints/<run>/latest/<round + 1>.json`, put-if-absent, the highest one
 * current: it only moves forward, as the file does.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { DurableStore } from "../store/durable-store.ts";
import { loadCheckpoint, saveCheckpoint, weightsHash, type ModelSpec } from "../../shared/model/index.ts";
import { writeFileAtomic } from "../state/state-dir.ts";
import { failpoint } from "./failpoint.ts";
import { RoundDecisions, StaleWriterError, type CommitRecord } from "./round-decisions.ts";

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

/** What the round runner hands over at its commit point (a RoundCommit). */
interface CommitPayload {
  record: { round: number; attempt: number; status: string } & Record<string, unknown>;
}

export class CheckpointStore {
  /**
   * @param root the checkpoints directory (inside a directory store)
   * @param decisions where attempt outcomes and commit records are put-if-absent
   * @param instance this coordinator, named in the outcomes it decides
   * @param remote the store the checkpoints live in when `root` is only a local cache (S3)
   */
  constructor(
    private readonly root: string,
    readonly decisions: RoundDecisions,
    private readonly instance: string,
    private readonly remote?: DurableStore,
  ) {}

  private runDir(runId: string): string {
    return join(this.root, runId);
  }

  /** The checkpoint directory of `round` (−1 = the initial model), per attempt for trained rounds. */
  dirFor(runId: string, round: number, attempt?: number): string {
    return join(this.runDir(runId), `round-${String(round).padStart(5, "0")}${attempt === undefined ? "" : `-a${attempt}`}`);
  }

  /** Saves the initial model (round −1) and moves LATEST to it. */
  async save(runId: string, round: number, spec: ModelSpec, weights: Float32Array, serverState: unknown): Promise<string> {
    mkdirSync(this.runDir(runId), { recursive: true, mode: 0o700 });
    const hash = await saveCheckpoint(this.dirFor(runId, round), spec, weights, { runId, round, serverState });
    await this.upload(runId, this.dirFor(runId, round));
    await this.point(runId, round, hash, this.dirFor(runId, round));
    return hash;
  }

  /**
   * The commit point of a completed round attempt: writes its checkpoint, decides the attempt
   * as completed, then puts the round's commit record. Throws StaleWriterError when another
   * coordinator decided the attempt first (it was declared lost while this one was paused):
   * the round is then not committed by this process.
   */
  async write(runId: string, round: number, spec: ModelSpec, weights: Float32Array, serverState: unknown, commit: unknown): Promise<string> {
    const c = commit as CommitPayload;
    const attempt = c.record.attempt;
    mkdirSync(this.runDir(runId), { recursive: true, mode: 0o700 });
    const dir = this.dirFor(runId, round, attempt);
    const hash = await saveCheckpoint(dir, spec, weights, { runId, round, attempt, serverState });
    await this.upload(runId, dir);
    failpoint("before-commit", round);
    const decided = await this.decisions.decideAttempt(runId, { status: "completed", record: c.record, checkpoint: { hash, dir: basename(dir) }, commit, by: this.instance });
    if (!decided.won && (decided.outcome.status !== "completed" || decided.outcome.checkpoint?.hash !== hash)) {
      throw new StaleWriterError(`attempt ${attempt} of round ${round} was already decided as ${decided.outcome.status} by ${decided.outcome.by}: this coordinator stands down`);
    }
    await this.decisions.commit(runId, decided.outcome);
    return hash;
  }

  /** The commit record of `round`, if the round is committed. */
  committed(runId: string, round: number): Promise<CommitRecord | undefined> {
    return this.decisions.committed(runId, round);
  }

  /** Moves LATEST to the (complete, committed) checkpoint of `round`. */
  async point(runId: string, round: number, hash: string, dir: string): Promise<void> {
    const value = JSON.stringify({ round, dir: basename(dir), hash }) + "\n";
    // Another coordinator having moved it to this round already is the same outcome.
    if (this.remote) await this.remote.putIfAbsent(latestKey(runId, round), Buffer.from(value));
    else writeFileAtomic(join(this.runDir(runId), "LATEST"), value, 0o644);
  }

  async pointer(runId: string): Promise<LatestPointer | undefined> {
    let p: LatestPointer;
    if (this.remote) {
      const last = (await this.remote.list(`checkpoints/${runId}/latest/`)).at(-1);
      const bytes = last ? await this.remote.get(last) : undefined;
      if (!bytes) return undefined;
      p = JSON.parse(bytes.toString("utf8")) as LatestPointer;
    } else {
      const ptr = join(this.runDir(runId), "LATEST");
      if (!existsSync(ptr)) return undefined;
      p = JSON.parse(readFileSync(ptr, "utf8")) as LatestPointer;
    }
    // Directory names are relative to the run's directory, so a shared store can be mounted anywhere.
    return { ...p, dir: join(this.runDir(runId), basename(p.dir)) };
  }

  /** Puts every file of a checkpoint directory into the remote store (no-op on a directory store). */
  private async upload(runId: string, dir: string): Promise<void> {
    if (!this.remote) return;
    for (const name of readdirSync(dir).filter((n) => !n.startsWith(".")).sort()) {
      const key = `checkpoints/${runId}/${basename(dir)}/${name}`;
      const bytes = readFileSync(join(dir, name));
      if (await this.remote.putIfAbsent(key, bytes)) continue;
      const there = await this.remote.get(key);
      if (!there || !there.equals(bytes)) throw new StaleWriterError(`checkpoint file ${key} in ${this.remote.url} was already written, with other bytes, by another coordinator: this coordinator stands down`);
    }
  }

  /**
   * The local directory of checkpoint `dirName`, fetched from the remote store into the cache
   * first when it is not there (whole or not at all: fetched beside it, then renamed).
   */
  async localDir(runId: string, dirName: string): Promise<string> {
    const dir = join(this.runDir(runId), basename(dirName));
    if (!this.remote || existsSync(dir)) return dir;
    const prefix = `checkpoints/${runId}/${basename(dirName)}/`;
    const keys = await this.remote.list(prefix);
    if (keys.length === 0) throw new Error(`checkpoint ${basename(dirName)} of run ${runId} is not in store ${this.remote.url}`);
    const tmp = `${dir}.fetch-${process.pid}-${randomBytes(4).toString("hex")}`;
    mkdirSync(tmp, { recursive: true, mode: 0o700 });
    try {
      for (const key of keys) {
        const bytes = await this.remote.get(key);
        if (!bytes) throw new Error(`checkpoint file ${key} vanished from store ${this.remote.url}`);
        writeFileSync(join(tmp, key.slice(prefix.length)), bytes, { mode: 0o644 });
      }
      if (!existsSync(dir)) renameSync(tmp, dir);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    return dir;
  }

  /** The directory of the checkpoint a commit record names. */
  pathOf(runId: string, commit: CommitRecord): string {
    return join(this.runDir(runId), basename(commit.checkpoint.dir));
  }

  /** The checkpoint of committed round `round`; throws when the round is not committed. */
  async readRound(runId: string, round: number): Promise<{ weights: Float32Array; hash: string; meta: Record<string, unknown>; path: string }> {
    const commit = await this.committed(runId, round);
    if (!commit) throw new Error(`round ${round} of run ${runId} is not committed`);
    return { ...(await this.read(runId, commit)), path: await this.localDir(runId, commit.checkpoint.dir) };
  }

  /** The checkpoint a commit record names. */
  async read(runId: string, commit: CommitRecord): Promise<{ weights: Float32Array; hash: string; meta: Record<string, unknown> }> {
    const cp = await loadCheckpoint(await this.localDir(runId, commit.checkpoint.dir));
    return { weights: cp.weights, hash: weightsHash(cp.weights), meta: cp.meta };
  }

  async latest(runId: string): Promise<StoredCheckpoint | undefined> {
    const p = await this.pointer(runId);
    if (!p) return undefined;
    const cp = await loadCheckpoint(await this.localDir(runId, p.dir));
    return { round: p.round, weights: cp.weights, hash: weightsHash(cp.weights), serverState: cp.meta.serverState };
  }
}

/** The key that moves a remote LATEST to `round` (−1, the initial model, is 0). */
const latestKey = (runId: string, round: number): string => `checkpoints/${runId}/latest/${String(round + 1).padStart(8, "0")}.json`;
