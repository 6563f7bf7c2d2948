/**
 * The device's own copy of the ledger entries about itself. After each round the daemon fetches
 * the new entries that concern it (checking the coordinator's signature on each) and appends them
 * here; `tacit client status --verify` later checks that the coordinator's ledger still holds
 * every one of them unchanged, and that every round this device was charged for and saw complete
 * is attested there — so the coordinator can neither rewrite nor hide what this device spent.
 */
import { appendFileSync, closeSync, existsSync, fsyncSync, openSync, readFileSync } from "node:fs";
import type { KeyObject } from "node:crypto";
import { checkLocalCopy, entryHash, entrySignatureValid, filterEntriesForDevice, LedgerFormatError, parseEntry, type LedgerEntry } from "../../shared/ledger/index.ts";
import type { CoordinatorClient } from "../transport/coordinator-client.ts";
import type { BudgetEntry } from "../participant/budget-record.ts";

export interface LocalCopyProblem {
  seq?: number;
  message: string;
}

/** Reads the local copy; a damaged line is reported, never fatal (the rest still counts). */
export function readLedgerCopy(path: string): { entries: LedgerEntry[]; problems: LocalCopyProblem[] } {
  if (!existsSync(path)) return { entries: [], problems: [] };
  const entries: LedgerEntry[] = [];
  const problems: LocalCopyProblem[] = [];
  readFileSync(path, "utf8")
    .split("\n")
    .forEach((line, i) => {
      if (line.trim() === "") return;
      try {
        entries.push(parseEntry(line, i + 1));
      } catch (err) {
        problems.push({ message: `local copy line ${i + 1}: ${err instanceof LedgerFormatError ? err.message : (err as Error).message}` });
      }
    });
  return { entries, problems };
}

/** The entry's hash matches its content and the coordinator signed that hash. */
function sealedBy(e: LedgerEntry, coordinatorKey: KeyObject): boolean {
  return entryHash(e) === e.hash && entrySignatureValid(e, coordinatorKey);
}

function parseSigned(lines: readonly string[], coordinatorKey: KeyObject): LedgerEntry[] {
  return lines.map((line, i) => {
    const e = parseEntry(line, i + 1);
    if (!sealedBy(e, coordinatorKey)) throw new LedgerFormatError(`ledger entry ${e.seq} from the coordinator has a wrong hash or signature`);
    return e;
  });
}

/** Appends the coordinator's new entries about this device; returns how many were added. */
export async function syncLedgerCopy(client: CoordinatorClient, deviceId: string, path: string, coordinatorKey: KeyObject): Promise<number> {
  const { entries } = readLedgerCopy(path);
  const from = entries.length > 0 ? Math.max(...entries.map((e) => e.seq)) + 1 : 0;
  const fresh = filterEntriesForDevice(parseSigned(await client.readLedger(from, deviceId), coordinatorKey), deviceId);
  if (fresh.length === 0) return 0;
  appendFileSync(path, fresh.map((e) => JSON.stringify(e) + "\n").join(""), { mode: 0o600 });
  const fd = openSync(path, "r");
  fsyncSync(fd);
  closeSync(fd);
  return fresh.length;
}

export interface LocalCopyReport {
  ok: boolean;
  localEntries: number;
  coordinatorEntries: number;
  problems: LocalCopyProblem[];
}

/** Compares the local copy and the budget record with what the coordinator serves now. */
export async function verifyLedgerCopy(
  client: CoordinatorClient,
  deviceId: string,
  path: string,
  coordinatorKey: KeyObject,
  budget: readonly BudgetEntry[],
): Promise<LocalCopyReport> {
  const local = readLedgerCopy(path);
  const problems: LocalCopyProblem[] = [...local.problems];
  for (const e of local.entries) if (!sealedBy(e, coordinatorKey)) problems.push({ seq: e.seq, message: `local entry ${e.seq} was altered on this laptop (hash or coordinator signature does not match)` });
  let theirs: LedgerEntry[];
  try {
    theirs = parseSigned(await client.readLedger(0, deviceId), coordinatorKey);
  } catch (err) {
    if (err instanceof LedgerFormatError) return { ok: false, localEntries: local.entries.length, coordinatorEntries: 0, problems: [...problems, { message: err.message }] };
    throw err;
  }
  for (const m of checkLocalCopy(local.entries, theirs)) problems.push({ seq: m.seq, message: m.message });
  const attested = new Set(
    theirs
      .filter((e) => e.type === "attestation" && e.body.deviceId === deviceId)
      .map((e) => {
        const body = JSON.parse(String(e.body.bodyJson ?? "{}")) as { runId?: string; round?: number; attempt?: number };
        return `${body.runId}/${body.round}/${body.attempt}`;
      }),
  );
  for (const b of budget) {
    if (b.outcome === "completed" && !attested.has(`${b.runId}/${b.round}/${b.attempt}`)) {
      problems.push({ message: `run ${b.runId} round ${b.round} (attempt ${b.attempt}) completed with this device's input, but the coordinator's ledger holds no attestation of it` });
    }
  }
  return { ok: problems.length === 0, localEntries: local.entries.length, coordinatorEntries: theirs.length, problems };
}
