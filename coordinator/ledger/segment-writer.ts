/**
 * The privacy ledger as segments in the DurableStore (design note §3.2): `ledger/<firstSeq>.jsonl`,
 * each holding whole lines in the unchanged entry format (shared/ledger/entry.ts). Appending is
 * one `putIfAbsent` at the key of the next seq: a round's entry and all its attestations are one
 * write (not one fsync per attestation), and two coordinators can never both extend the chain at
 * the same seq — the loser re-reads what the winner wrote and decides again (a stale coordinator
 * finds its round already decided and stands down). Read in seq order, the segments concatenate
 * to exactly the JSONL text `tacit verify` checks.
 */
import type { KeyObject } from "node:crypto";
import { entryHash, GENESIS_PREV, sealChain, type EntryType, type LedgerEntry } from "../../shared/ledger/entry.ts";
import type { DurableStore } from "../store/durable-store.ts";

export const LEDGER_PREFIX = "ledger/";
export const segmentKey = (firstSeq: number): string => `${LEDGER_PREFIX}${String(firstSeq).padStart(12, "0")}.jsonl`;

/** Called for every entry read or written, in seq order: where its line sits. */
export type EntrySink = (e: LedgerEntry, at: { segment: string; offset: number; bytes: number }) => void;

export class LedgerCorruptError extends Error {
  override name = "LedgerCorruptError";
}

export class SegmentLedgerWriter {
  private last: { seq: number; hash: string } | undefined;

  constructor(
    private readonly store: DurableStore,
    private readonly key: KeyObject,
    private readonly sink: EntrySink,
  ) {}

  get nextSeq(): number {
    return this.last ? this.last.seq + 1 : 0;
  }

  /**
   * Reads every segment written since the last read (by this process or another coordinator),
   * checking each entry's hash and its link to the chain: a broken segment stops the writer
   * instead of being built on (`tacit verify` names it).
   */
  async refresh(): Promise<void> {
    for (;;) {
      const seg = segmentKey(this.nextSeq);
      const buf = await this.store.get(seg);
      if (!buf) return;
      const text = buf.toString("utf8");
      if (!text.endsWith("\n")) throw new LedgerCorruptError(`ledger segment ${seg} does not end with a whole line`);
      let offset = 0;
      for (const line of text.slice(0, -1).split("\n")) {
        const bytes = Buffer.byteLength(line) + 1;
        let e: LedgerEntry;
        try {
          e = JSON.parse(line) as LedgerEntry;
        } catch {
          throw new LedgerCorruptError(`ledger segment ${seg}: a line is not JSON`);
        }
        if (e.seq !== this.nextSeq || e.prevHash !== (this.last?.hash ?? GENESIS_PREV) || e.hash !== entryHash(e)) {
          throw new LedgerCorruptError(`ledger segment ${seg}: entry ${e.seq} breaks the hash chain; run \`tacit verify\``);
        }
        this.last = { seq: e.seq, hash: e.hash };
        this.sink(e, { segment: seg, offset, bytes });
        offset += bytes;
      }
    }
  }

  /**
   * Seals `items` after the head this process knows and puts them as one segment. Returns the
   * entries, or undefined when another writer took that seq first — the caller has then seen
   * (through the sink) what was written, and decides again what, if anything, to append.
   */
  async tryAppend(items: readonly { type: EntryType; body: Record<string, unknown> }[], time = Date.now()): Promise<LedgerEntry[] | undefined> {
    if (items.length === 0) return [];
    const entries = sealChain(items, this.last, time, this.key);
    const lines = entries.map((e) => JSON.stringify(e) + "\n");
    const seg = segmentKey(this.nextSeq);
    if (!(await this.store.putIfAbsent(seg, Buffer.from(lines.join(""))))) {
      await this.refresh();
      return undefined;
    }
    let offset = 0;
    entries.forEach((e, i) => {
      const bytes = Buffer.byteLength(lines[i]!);
      this.last = { seq: e.seq, hash: e.hash };
      this.sink(e, { segment: seg, offset, bytes });
      offset += bytes;
    });
    return entries;
  }
}

/** The whole ledger as one JSONL text (what `tacit verify` and reviewers read). */
export async function readLedgerText(store: DurableStore): Promise<string> {
  const parts: string[] = [];
  for (const key of await store.list(LEDGER_PREFIX)) {
    if (!/\/\d{12}\.jsonl$/.test(key)) continue;
    parts.push((await store.get(key))!.toString("utf8"));
  }
  return parts.join("");
}
