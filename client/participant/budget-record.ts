/**
 * The device's own budget record: every round attempt it contributed a masked input to, with the
 * DP event it ran. Charged *before* the masked input leaves the device, so a crash can only
 * over-count, never under-count; an "aborted" outcome does not refund (the coordinator's word is
 * not enough to un-spend budget).
 *
 * One exception keeps a coordinator crash from charging a round twice: when the coordinator
 * re-runs a round (a new attempt of the same run and round), an earlier attempt of that round
 * to which this device never revealed unmasking shares is marked "superseded" and no longer
 * counted. That rests on the coordinator holding masked inputs only in memory (a restarted
 * coordinator cannot unmask the lost attempt) — the threat model of docs/THREAT-MODEL.md;
 * the lost attempt is also recorded as aborted in the ledger, where a reviewer sees it.
 * Persisted atomically when a path is given.
 */
import { existsSync, readFileSync } from "node:fs";
import { writeFileAtomic } from "../../shared/fs/write-file-atomic.ts";
import type { DpEvent } from "../../shared/dp/index.ts";

export interface BudgetEntry {
  runId: string;
  round: number;
  attempt: number;
  event: DpEvent;
  at: number;
  /** The device sent unmasking shares for this attempt. */
  revealed?: boolean;
  outcome?: "completed" | "aborted" | "superseded";
}

export class BudgetRecord {
  private entries: BudgetEntry[] = [];

  constructor(private readonly path?: string) {
    if (path && existsSync(path)) {
      const parsed = JSON.parse(readFileSync(path, "utf8")) as { entries?: BudgetEntry[] };
      this.entries = parsed.entries ?? [];
    }
  }

  /** The events that count toward device ε (everything but superseded attempts). */
  events(): DpEvent[] {
    return this.entries.filter((e) => e.outcome !== "superseded").map((e) => e.event);
  }

  list(): readonly BudgetEntry[] {
    return this.entries;
  }

  charge(entry: BudgetEntry): void {
    if (this.entries.some((e) => e.runId === entry.runId && e.round === entry.round && e.attempt === entry.attempt)) return;
    for (const e of this.entries) {
      if (e.runId === entry.runId && e.round === entry.round && e.attempt < entry.attempt && !e.revealed && e.outcome === undefined) e.outcome = "superseded";
    }
    this.entries.push(entry);
    this.persist();
  }

  markRevealed(runId: string, round: number, attempt: number): void {
    const e = this.entries.find((x) => x.runId === runId && x.round === round && x.attempt === attempt);
    if (e) {
      e.revealed = true;
      this.persist();
    }
  }

  /**
   * Records the coordinator's outcome for `attempt` of a round. Earlier attempts of that round
   * still open were lost with a coordinator (a re-run started): they stay charged, as aborted —
   * never "completed", which would claim a ledger attestation that cannot exist.
   */
  markOutcome(runId: string, round: number, attempt: number, outcome: "completed" | "aborted"): void {
    for (const e of this.entries) {
      if (e.runId !== runId || e.round !== round || e.outcome !== undefined) continue;
      if (e.attempt === attempt) e.outcome = outcome;
      else if (e.attempt < attempt) e.outcome = "aborted";
    }
    this.persist();
  }

  private persist(): void {
    if (!this.path) return;
    // Durable before the device sends what it was charged for: a power loss can only over-count.
    writeFileAtomic(this.path, JSON.stringify({ entries: this.entries }, null, 1), 0o600);
  }
}
