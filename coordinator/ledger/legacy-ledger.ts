/**
 * A state dir from before ledger segments has one ledger.jsonl. On first start it becomes the
 * first segment (after the old writer's repair of a torn last line), then is renamed aside, so
 * the chain — and every hash devices and reviewers hold — carries on unchanged.
 */
import { existsSync, readFileSync, renameSync } from "node:fs";
import type { KeyObject } from "node:crypto";
import { LedgerWriter } from "../../shared/ledger/writer.ts";
import type { DurableStore } from "../store/durable-store.ts";
import { segmentKey } from "./segment-writer.ts";

/** Returns a note for the log when a file was imported (or undefined). */
export async function importLegacyLedger(store: DurableStore, legacyPath: string, key: KeyObject): Promise<string | undefined> {
  if (!existsSync(legacyPath)) return undefined;
  const repaired = LedgerWriter.open(legacyPath, key).repaired;
  const text = readFileSync(legacyPath);
  // Put-if-absent: a crash after the put and before the rename just finds it there next time.
  const written = text.length === 0 ? false : await store.putIfAbsent(segmentKey(0), text);
  const existing = await store.get(segmentKey(0));
  if (text.length > 0 && !written && !existing?.equals(text)) {
    throw new Error(`${legacyPath} and the store's first ledger segment differ: refusing to choose; move one aside`);
  }
  renameSync(legacyPath, `${legacyPath}.migrated`);
  return `imported ${legacyPath} as the ledger's first segment${repaired ? ` (${repaired})` : ""}`;
}
