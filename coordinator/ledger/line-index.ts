/**
 * Where each ledger line sits (segment and offset), and which lines name which device, kept in
 * memory as entries are read or appended. ReadLedger then reads only the segments it serves, in
 * pages, instead of reading and parsing the whole ledger on every call (finding L4).
 */
import type { LedgerEntry } from "../../shared/ledger/entry.ts";
import type { DurableStore } from "../store/durable-store.ts";

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
  private readonly segments: string[] = [];
  private readonly segOf: number[] = [];
  private readonly starts: number[] = [];
  private readonly lengths: number[] = [];
  private readonly byDevice = new Map<string, number[]>();

  constructor(private readonly store: DurableStore) {}

  get size(): number {
    return this.starts.length;
  }

  /** Records the next line (entry `e`, `bytes` long including its newline, at `offset` in `segment`). */
  add(e: Pick<LedgerEntry, "type" | "body" | "seq">, at: { segment: string; offset: number; bytes: number }): void {
    if (e.seq !== this.starts.length) throw new Error(`ledger index out of step: entry ${e.seq} after ${this.starts.length} lines`);
    if (this.segments[this.segments.length - 1] !== at.segment) this.segments.push(at.segment);
    this.segOf.push(this.segments.length - 1);
    this.starts.push(at.offset);
    this.lengths.push(at.bytes);
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

  /** The lines of `seqs` (ascending), in pages of at most PAGE_BYTES, each from one segment. */
  async *pages(seqs: readonly number[]): AsyncGenerator<string[]> {
    let cached: { seg: number; buf: Buffer } | undefined;
    let i = 0;
    while (i < seqs.length) {
      const seg = this.segOf[seqs[i]!]!;
      if (cached?.seg !== seg) {
        const buf = await this.store.get(this.segments[seg]!);
        if (!buf) throw new Error(`ledger segment ${this.segments[seg]} is missing from the store`);
        cached = { seg, buf };
      }
      // One page covers a run of consecutive seqs in one segment (the whole tail for a reviewer).
      let j = i + 1;
      let bytes = this.lengths[seqs[i]!]!;
      while (j < seqs.length && seqs[j] === seqs[j - 1]! + 1 && this.segOf[seqs[j]!] === seg && bytes + this.lengths[seqs[j]!]! <= PAGE_BYTES) bytes += this.lengths[seqs[j++]!]!;
      const start = this.starts[seqs[i]!]!;
      yield cached.buf.subarray(start, start + bytes).toString("utf8").slice(0, -1).split("\n");
      i = j;
    }
  }
}
