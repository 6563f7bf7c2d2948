/**
 * A device's own copy of the ledger entries that concern it, so `tacit client status --verify`
 * can detect a coordinator that rewrote history about that device: every entry the device kept
 * must appear in the coordinator's ledger at the same seq with the same hash.
 */
import type { LedgerEntry } from "./entry.ts";
import { provenRoles } from "./member-commitment.ts";

/**
 * True when an entry concerns `deviceId`: its attestation, or a round that names it — in the
 * device's view, by a member proof that leads to the entry's signed commitment; in an older
 * entry, by its cohort list.
 */
function concernsDevice(e: LedgerEntry, deviceId: string): boolean {
  const b = e.body;
  if (e.type === "attestation") return b.deviceId === deviceId;
  if (e.type !== "round") return false;
  if ("members" in b) return provenRoles(b, deviceId)?.inCohort === true;
  return Array.isArray(b.cohort) && (b.cohort as unknown[]).includes(deviceId);
}

/** The entries a device keeps locally: its attestations and the rounds it was sampled into. */
export function filterEntriesForDevice(entries: readonly LedgerEntry[], deviceId: string): LedgerEntry[] {
  return entries.filter((e) => concernsDevice(e, deviceId));
}

/** One disagreement between a device's local copy and the coordinator's ledger. */
export interface LocalCopyMismatch {
  seq: number;
  problem: "missing" | "changed";
  message: string;
}

/**
 * Compares the device's local copy with the coordinator's ledger entry by entry (by seq and hash).
 * An empty result means the coordinator's ledger still holds every entry the device saw.
 */
export function checkLocalCopy(local: readonly LedgerEntry[], coordinatorLedger: readonly LedgerEntry[]): LocalCopyMismatch[] {
  const bySeq = new Map<number, LedgerEntry>();
  for (const e of coordinatorLedger) bySeq.set(e.seq, e);
  const out: LocalCopyMismatch[] = [];
  for (const mine of local) {
    const theirs = bySeq.get(mine.seq);
    if (!theirs) out.push({ seq: mine.seq, problem: "missing", message: `entry ${mine.seq} (${mine.type}) is missing from the coordinator's ledger` });
    else if (theirs.hash !== mine.hash || theirs.type !== mine.type)
      out.push({ seq: mine.seq, problem: "changed", message: `entry ${mine.seq} (${mine.type}) differs: local hash ${mine.hash.slice(0, 12)}…, ledger has ${theirs.hash.slice(0, 12)}…` });
  }
  return out;
}
