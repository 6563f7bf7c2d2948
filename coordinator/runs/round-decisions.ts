/**
 * The decisions a round is made of, kept in the DurableStore with put-if-absent (design note
 * §3.2, §3.5), so that each is taken once however many coordinators — live, dead or paused —
 * try to take it:
 * - `attempts/<run>/<round>/<attempt>.json`: how the attempt ended (completed, aborted,
 *   cancelled, or lost with its coordinator). The first writer decides. A coordinator that
 *   finds another outcome there stands down: it was declared lost while it was paused, or its
 *   attempt was finished by a successor.
 * - `commits/<run>/<round>.json`: the round's commit point (it replaces the checkpoint
 *   directory's rename). It names the attempt whose checkpoint is the round's model; its content
 *   follows from that attempt's completed outcome, so whoever writes it writes the same thing.
 * Fencing by storage, not by the lease (Kleppmann 2016): a stale writer's put simply loses.
 */
import type { DurableStore } from "../store/durable-store.ts";
import { getJson, putJsonIfAbsent } from "../store/durable-store.ts";

export interface AttemptOutcome {
  status: string;
  /** The attempt's round record (RoundRecord), as the ledger and Redis record it. */
  record: { round: number; attempt: number; status: string } & Record<string, unknown>;
  /** A completed attempt: its checkpoint's hash and directory name, and its commit payload (RoundCommit). */
  checkpoint?: { hash: string; dir: string };
  commit?: unknown;
  /** An attempt that ended without a commit: who was in its cohort and who declined, for its ledger entry. */
  ledger?: unknown;
  /** Which coordinator decided it (for the log; not trusted for anything). */
  by: string;
}

export interface CommitRecord {
  runId: string;
  round: number;
  attempt: number;
  checkpoint: { hash: string; dir: string };
  commit: unknown;
}

/** A write refused because another coordinator decided first: this one must stand down. */
export class StaleWriterError extends Error {
  override name = "StaleWriterError";
}

const pad = (n: number): string => String(n).padStart(5, "0");
export const attemptKey = (runId: string, round: number, attempt: number): string => `attempts/${runId}/${pad(round)}/${pad(attempt)}.json`;
export const commitKey = (runId: string, round: number): string => `commits/${runId}/${pad(round)}.json`;

export class RoundDecisions {
  constructor(private readonly store: DurableStore) {}

  /** Decides an attempt's outcome unless it is decided already; returns the outcome that stands and whether it is ours. */
  async decideAttempt(runId: string, outcome: AttemptOutcome): Promise<{ won: boolean; outcome: AttemptOutcome }> {
    const key = attemptKey(runId, outcome.record.round, outcome.record.attempt);
    if (await putJsonIfAbsent(this.store, key, outcome)) return { won: true, outcome };
    const standing = await getJson<AttemptOutcome>(this.store, key);
    if (!standing) throw new Error(`store lost ${key} right after refusing to overwrite it`);
    return { won: false, outcome: standing };
  }

  attempt(runId: string, round: number, attempt: number): Promise<AttemptOutcome | undefined> {
    return getJson<AttemptOutcome>(this.store, attemptKey(runId, round, attempt));
  }

  /**
   * Writes the commit point of a completed attempt's round. Returns the commit that stands;
   * throws StaleWriterError if it names another attempt (which the attempt records make
   * impossible unless the store was tampered with).
   */
  async commit(runId: string, completed: AttemptOutcome): Promise<CommitRecord> {
    const { round, attempt } = completed.record;
    if (completed.status !== "completed" || !completed.checkpoint) throw new Error(`attempt ${attempt} of round ${round} did not complete: nothing to commit`);
    const rec: CommitRecord = { runId, round, attempt, checkpoint: completed.checkpoint, commit: completed.commit };
    if (await putJsonIfAbsent(this.store, commitKey(runId, round), rec)) return rec;
    const standing = await this.committed(runId, round);
    if (!standing || standing.attempt !== attempt) {
      throw new StaleWriterError(`round ${round} of run ${runId} is committed with attempt ${standing?.attempt}, not ${attempt}`);
    }
    return standing;
  }

  committed(runId: string, round: number): Promise<CommitRecord | undefined> {
    return getJson<CommitRecord>(this.store, commitKey(runId, round));
  }
}
