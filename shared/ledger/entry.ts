/**
 * Ledger entries: JSONL, one per line, each hash-chained to the previous and signed by the
 * coordinator's ed25519 key:
 *   hash = SHA-256(canonicalJson({ seq, prevHash, time, type, hashedBody(body) }))
 *   signature = ed25519(coordinator, hash as ASCII hex)
 * The first entry (`genesis`) carries the coordinator's public key. `hashedBody` is the body
 * itself, except that a round's member lists are covered through a commitment that lets each
 * member be served a view proving its own membership only (`member-commitment.ts`).
 */
import { createHash, type KeyObject } from "node:crypto";
import { canonicalJson } from "../crypto/canonical-json.ts";
import { signBytes, verifyBytes } from "../crypto/ed25519.ts";
import { hashedBody } from "./member-commitment.ts";

export const GENESIS_PREV = "0".repeat(64);
export const ENTRY_TYPES = ["genesis", "policy", "run-launch", "round", "attestation", "run-end", "enrollment-token", "enrollment", "device-offence", "evaluation"] as const;
export type EntryType = (typeof ENTRY_TYPES)[number];

export interface LedgerEntry {
  seq: number;
  prevHash: string;
  time: number;
  type: EntryType;
  body: Record<string, unknown>;
  hash: string;
  signature: string;
}

export function entryHash(e: Pick<LedgerEntry, "seq" | "prevHash" | "time" | "type" | "body">): string {
  return createHash("sha256").update(canonicalJson({ seq: e.seq, prevHash: e.prevHash, time: e.time, type: e.type, body: hashedBody(e.body) })).digest("hex");
}

export function sealEntry(partial: Pick<LedgerEntry, "seq" | "prevHash" | "time" | "type" | "body">, key: KeyObject): LedgerEntry {
  const hash = entryHash(partial);
  return { ...partial, hash, signature: Buffer.from(signBytes(key, hash)).toString("base64") };
}

/**
 * Seals `items` in order as the entries after `after` (the chain's last entry, or none for an
 * empty ledger): each chained to the one before and signed. Both ledger writers append batches
 * sealed here, so a batch is chained the same way whichever store it goes to.
 */
export function sealChain(items: readonly { type: EntryType; body: Record<string, unknown> }[], after: { seq: number; hash: string } | undefined, time: number, key: KeyObject): LedgerEntry[] {
  const entries: LedgerEntry[] = [];
  let last = after;
  for (const it of items) {
    const entry = sealEntry({ seq: last ? last.seq + 1 : 0, prevHash: last?.hash ?? GENESIS_PREV, time, type: it.type, body: it.body }, key);
    entries.push(entry);
    last = { seq: entry.seq, hash: entry.hash };
  }
  return entries;
}

/** Strict base64: Node's decoder ignores stray characters and trailing bits, a ledger must not. */
export function strictBase64(s: unknown, bytes: number): Buffer | undefined {
  if (typeof s !== "string") return undefined;
  const b = Buffer.from(s, "base64");
  return b.length === bytes && b.toString("base64") === s ? b : undefined;
}

export function entrySignatureValid(e: LedgerEntry, coordinatorKey: KeyObject): boolean {
  const sig = strictBase64(e.signature, 64);
  return sig !== undefined && verifyBytes(coordinatorKey, e.hash, sig);
}
