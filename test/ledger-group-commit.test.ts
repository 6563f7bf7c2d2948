/**
 * Group commit of ledger entries (LedgerWriter.appendBatch, used for a round's attestations):
 * one batch is the same hash chain as appending one entry at a time, interleaves with single
 * appends, and a crash part-way through the batch's write leaves a ledger that `open` repairs to
 * a verifiable prefix of whole entries.
 */
import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, truncateSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateEd25519 } from "../shared/crypto/index.ts";
import { LedgerWriter, verifyLedger } from "../shared/ledger/index.ts";

function fresh(): { path: string; key: ReturnType<typeof generateEd25519>; w: LedgerWriter } {
  const path = join(mkdtempSync(join(tmpdir(), "tacit-group-commit-")), "l.jsonl");
  const key = generateEd25519();
  const w = LedgerWriter.open(path, key.privateKey);
  w.append("genesis", { coordinatorPublicKey: Buffer.from(key.publicRaw).toString("base64") });
  return { path, key, w };
}

const notes = (n: number, from = 0) => Array.from({ length: n }, (_, i) => ({ type: "policy" as const, body: { note: `entry ${from + i}` } }));

describe("ledger group commit", () => {
  it("a batch chains exactly like single appends and interleaves with them", () => {
    const { path, key, w } = fresh();
    const batch = w.appendBatch(notes(5));
    expect(batch.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    for (let i = 1; i < batch.length; i++) expect(batch[i]!.prevHash).toBe(batch[i - 1]!.hash);
    const single = w.append("policy", { note: "after" });
    expect(single.seq).toBe(6);
    expect(single.prevHash).toBe(batch[4]!.hash);
    expect(w.appendBatch([])).toEqual([]);
    const text = readFileSync(path, "utf8");
    expect(text.trimEnd().split("\n")).toHaveLength(7);
    const f = verifyLedger(text, { integrityOnly: true, trustedCoordinatorKey: Buffer.from(key.publicRaw).toString("base64"), expectedHead: { seq: single.seq, hash: single.hash } });
    expect(f.violations).toEqual([]);
    // Reopening continues the chain after the batch.
    expect(LedgerWriter.open(path, key.privateKey).nextSeq).toBe(7);
  });

  it("a crash in the middle of a batch's write leaves a repairable, verifiable prefix", () => {
    const { path, key, w } = fresh();
    const before = statSync(path).size;
    w.appendBatch(notes(4));
    const full = readFileSync(path, "utf8");
    // Cut inside the third entry of the batch, as a crash during the single write could.
    const batchText = full.slice(before);
    const firstTwo = Buffer.byteLength(batchText.split("\n").slice(0, 2).join("\n") + "\n");
    truncateSync(path, before + firstTwo + 10);
    const reopened = LedgerWriter.open(path, key.privateKey);
    expect(reopened.repaired).toMatch(/line 4 was torn/);
    expect(reopened.nextSeq).toBe(3); // genesis + the batch's first two entries survived
    const next = reopened.append("policy", { note: "after the crash" });
    expect(next.seq).toBe(3);
    const f = verifyLedger(readFileSync(path, "utf8"), { integrityOnly: true, trustedCoordinatorKey: Buffer.from(key.publicRaw).toString("base64") });
    expect(f.violations).toEqual([]);
  });
});
