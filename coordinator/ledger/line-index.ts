/**
 * Where each ledger line sits in the file, and which lines name which device, kept in memory as
 * entries are appended. ReadLedger then reads only the byte ranges it serves, in pages, instead
 * of reading and parsing the whole file on every call (finding L4).
 */
import { closeSync, openSync, readSync } from "node:fs";
import type { LedgerEntry } from "../../shared/ledger/entry.ts";

/** Largest page ReadLedger reads at once. */
export const PAGE_BYTES = 256 * 1024;

/** The device ids an entry names: an attestation's or enrollment's device, a round's cohort. */
function devicesNamed(e: Pick<LedgerEntry, "type" | "body">): string[] {
  const b = e.body as { deviceId?: unknown; cohort?: unknown };
  const out: string[] = [];
  if (typeof b.deviceId === "string") out.push(b.deviceId);
  if (Array.isArray(b.cohort)) for (const d of b.cohort) if (typeof d === "string" && d !== b.deviceId) out.push(d);
  return out;
}

export class LedgerLineIndex {
  private readonly starts: number[] = [];
  private readonly lengths: number[] = [];
  private end = 0;
  private readonly byDevice = new Map<string, number[]>();

  constructor(private readonly path: string) {}

  get size(): number {
    return this.starts.length;
  }

  /** Records the next line (entry `e`, `bytes` long including its newline). */
  add(e: Pick<LedgerEntry, "type" | "body" | "seq">, bytes: number): void {
    if (e.seq !== this.starts.length) throw new Error(`ledger index out of step: entry ${e.seq} after ${this.starts.length} lines`);
    this.starts.push(this.end);
    this.lengths.push(bytes);
    this.end += bytes;
    for (const d of devicesNamed(e)) {
      const seqs = this.byDevice.get(d) ?? [];
      seqs.push(e.seq);
      this.byDevice.set(d, seqs);
    }
  }

  /** The seqs served from `fromSeq`: all of them, or for a device the genesis and the entries naming it. */
  seqs(fromSeq: number, deviceId?: string): number[] {
    const from = Math.max(0, Math.floor(fromSeq));
    if (!deviceId) return Array.from({ length: Math.max(0, this.size - from) }, (_, i) => from + i);
    const mine = this.byDevice.get(deviceId) ?? [];
    return [...(from === 0 && this.size > 0 ? [0] : []), ...mine.filter((s) => s >= from && s !== 0)];
  }

  /** The lines of `seqs` (ascending), read from the file in pages of at most PAGE_BYTES. */
  *pages(seqs: readonly number[]): Generator<string[]> {
    if (seqs.length === 0) return;
    const fd = openSync(this.path, "r");
    try {
      let i = 0;
      while (i < seqs.length) {
        // One read covers a run of consecutive seqs (the whole tail for a reviewer).
        let j = i + 1;
        let bytes = this.lengths[seqs[i]!]!;
        while (j < seqs.length && seqs[j] === seqs[j - 1]! + 1 && bytes + this.lengths[seqs[j]!]! <= PAGE_BYTES) bytes += this.lengths[seqs[j++]!]!;
        const buf = Buffer.alloc(bytes);
        readSync(fd, buf, 0, bytes, this.starts[seqs[i]!]!);
        yield buf.toString("utf8").slice(0, -1).split("\n");
        i = j;
      }
    } finally {
      closeSync(fd);
    }
  }
}
