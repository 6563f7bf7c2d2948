/**
 * Append-only ledger file. Each append writes one whole line with a single write on an
 * O_APPEND descriptor and fsyncs it, so a crash leaves at most a torn last line — which `open`
 * detects (no newline, bad JSON, bad hash or chain) and cuts away, reporting it, instead of
 * building on it.
 */
import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync, writeSync, constants } from "node:fs";
import type { KeyObject } from "node:crypto";
import { entryHash, GENESIS_PREV, sealChain, sealEntry, type EntryType, type LedgerEntry } from "./entry.ts";

export class LedgerWriter {
  private constructor(
    private readonly path: string,
    private readonly key: KeyObject,
    private last: { seq: number; hash: string } | undefined,
    readonly repaired: string | undefined,
  ) {}

  static open(path: string, key: KeyObject): LedgerWriter {
    let last: { seq: number; hash: string } | undefined;
    let repaired: string | undefined;
    if (existsSync(path)) {
      const text = readFileSync(path, "utf8");
      let goodBytes = 0;
      let offset = 0;
      const lines = text.split("\n");
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i]!;
        const complete = i < lines.length - 1; // followed by a newline
        if (line === "" && !complete) break;
        let ok = complete;
        let e: LedgerEntry | undefined;
        if (ok) {
          try {
            e = JSON.parse(line) as LedgerEntry;
            ok = e.hash === entryHash(e) && e.seq === (last ? last.seq + 1 : 0) && e.prevHash === (last ? last.hash : GENESIS_PREV);
          } catch {
            ok = false;
          }
        }
        if (!ok) {
          if (i === lines.length - 2 || (!complete && i === lines.length - 1)) {
            repaired = `line ${i + 1} was torn or invalid and has been removed (${Buffer.byteLength(text) - offset} bytes)`;
            break;
          }
          throw new Error(`ledger ${path} is corrupt at line ${i + 1} (not the last line): refusing to append; run \`tacit verify --ledger ${path}\``);
        }
        last = { seq: e!.seq, hash: e!.hash };
        offset += Buffer.byteLength(line) + 1;
        goodBytes = offset;
      }
      if (repaired !== undefined) {
        const fd = openSync(path, "r+");
        ftruncateSync(fd, goodBytes);
        fsyncSync(fd);
        closeSync(fd);
      }
    }
    return new LedgerWriter(path, key, last, repaired);
  }

  get nextSeq(): number {
    return this.last ? this.last.seq + 1 : 0;
  }

  /**
   * Group commit: seals the entries in order (each chained to the one before), writes them as
   * one buffer and fsyncs once. A crash part-way leaves a prefix of whole lines and at most one
   * torn last line, which `open` repairs — the same guarantee as one append at a time, with one
   * fsync per batch instead of per entry (a round's attestations: one per survivor).
   */
  appendBatch(items: readonly { type: EntryType; body: Record<string, unknown> }[], time = Date.now()): LedgerEntry[] {
    if (items.length === 0) return [];
    const entries = sealChain(items, this.last, time, this.key);
    const buf = Buffer.from(entries.map((e) => JSON.stringify(e) + "\n").join(""));
    const fd = openSync(this.path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o644);
    try {
      for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    const tail = entries.at(-1)!;
    this.last = { seq: tail.seq, hash: tail.hash };
    return entries;
  }

  append(type: EntryType, body: Record<string, unknown>, time = Date.now()): LedgerEntry {
    const entry = sealEntry({ seq: this.nextSeq, prevHash: this.last?.hash ?? GENESIS_PREV, time, type, body }, this.key);
    const fd = openSync(this.path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o644);
    try {
      writeSync(fd, Buffer.from(JSON.stringify(entry) + "\n"));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.last = { seq: entry.seq, hash: entry.hash };
    return entry;
  }
}
