/**
 * The encrypted local action store (docs/DESIGN.md §3): append-only segments sealed with
 * nacl.secretbox under one random data key per UTC day (see key-ring.ts for the key layout and
 * why), segment files named by random ids, nothing readable in any file name.
 *
 *   <dir>/            0700
 *     keys/           0700   master.key, <keyId>.key (0600)
 *     segments/       0700   <random 16-byte hex>.seg (0600), .tmp-* while being written
 *
 * Appends are buffered in memory and sealed as new segments when the buffer reaches
 * `flushEvery` records, `flushAfterMs` after the first unflushed append, on flush() and on
 * close(). Reads never throw on bad data and never delete: a damaged segment or key file is
 * skipped and reported as a StoreProblem. Deleting a day shreds its key, so copies of its
 * segments made before (backups, snapshots) can no longer be opened by anyone.
 *
 * Several processes may open the same store (the daemon appends while `tacit client data`
 * reads or deletes): every write is a new file or an atomic rename, and a day key is re-checked
 * on disk before each flush so a day deleted by another process gets a fresh key rather than
 * segments sealed under a destroyed one.
 */
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, openSync, readSync, closeSync, unlinkSync, existsSync } from "node:fs";
import { join } from "node:path";
import { ZodError } from "zod";
import { actionRecordSchema, dayPattern, utcDay, type ActionKind, type ActionRecord } from "./action-record.ts";
import { ensurePrivateDir, fsyncDir, replaceFileAtomic, shredFile } from "./durable-file.ts";
import { KeyRing } from "./key-ring.ts";
import { HEADER_BYTES, openSegment, readHeader, sealSegment } from "./segment-codec.ts";

export { ACTION_KINDS, type ActionKind, type ActionRecord } from "./action-record.ts";

export interface StoreProblem {
  /** Path relative to the store directory, e.g. `segments/3f…e1.seg` or `keys/9a…0c.key`. */
  file: string;
  reason: string;
}

export interface ActionStoreOptions {
  /** Seal the buffer once it holds this many records (default 256). */
  flushEvery?: number;
  /** Seal the buffer this long after its first unflushed record (default 30 s). */
  flushAfterMs?: number;
  /** Called when a flush started by the size or time trigger fails; the records stay buffered. */
  onFlushError?: (err: Error) => void;
}

export class StoreError extends Error {
  override name = "StoreError";
}

const segmentName = /^([0-9a-f]{32})\.seg$/;
const MAX_BUFFERED = 100_000;

interface SegmentRef {
  name: string;
  path: string;
}

export class ActionStore {
  private buffer: ActionRecord[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly keys: KeyRing;
  private readonly segDir: string;
  private readonly flushEvery: number;
  private readonly flushAfterMs: number;

  private constructor(
    readonly dir: string,
    private readonly opts: ActionStoreOptions,
  ) {
    ensurePrivateDir(dir);
    this.keys = new KeyRing(join(dir, "keys"));
    this.segDir = join(dir, "segments");
    ensurePrivateDir(this.segDir);
    this.flushEvery = Math.max(1, Math.floor(opts.flushEvery ?? 256));
    this.flushAfterMs = Math.max(1, opts.flushAfterMs ?? 30_000);
  }

  /** Opens (creating if needed) the store at `dir`. */
  static open(dir: string, opts: ActionStoreOptions = {}): ActionStore {
    return new ActionStore(dir, opts);
  }

  /** Validates and buffers one record; throws StoreError on an invalid record or a closed store. */
  append(rec: ActionRecord): void {
    if (this.closed) throw new StoreError("the action store is closed");
    const parsed = actionRecordSchema.safeParse(rec);
    if (!parsed.success) throw new StoreError(`invalid action record: ${describe(parsed.error)}`);
    if (this.buffer.length >= MAX_BUFFERED) this.buffer.shift(); // flushes keep failing: bound memory, drop oldest
    this.buffer.push(parsed.data);
    if (this.buffer.length >= this.flushEvery) this.autoFlush();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.autoFlush(), this.flushAfterMs);
      this.timer.unref();
    }
  }

  /** Seals the buffered records now, one new segment per UTC day present in the buffer. */
  flush(): void {
    this.clearTimer();
    if (this.buffer.length === 0) return;
    ensurePrivateDir(this.segDir);
    const byDay = groupByDay(this.buffer);
    for (const [day, recs] of byDay) {
      const { keyId, key } = this.keys.dataKeyForWrite(day);
      const name = `${randomBytes(16).toString("hex")}.seg`;
      replaceFileAtomic(join(this.segDir, name), sealSegment(keyId, key, day, recs));
      // Only what is on disk leaves the buffer, so a failure half-way loses nothing.
      this.buffer = this.buffer.filter((r) => utcDay(r.at) !== day);
    }
  }

  /** UTC days ("YYYY-MM-DD") that hold data (stored with a readable key, or buffered), sorted. */
  days(): string[] {
    const out = new Set<string>();
    const ids = new Set<string>();
    for (const seg of this.segments()) {
      const head = readHead(seg.path);
      if (head) {
        const h = readHeader(head);
        if (h.ok) ids.add(h.keyId);
      }
    }
    for (const id of ids) {
      const k = this.keys.load(id);
      if (k.ok) out.add(k.day);
    }
    for (const r of this.buffer) out.add(utcDay(r.at));
    return [...out].sort();
  }

  /** Every readable record (stored and buffered) matching the filter, time-ordered, plus what could not be read. */
  read(filter: { day?: string; app?: string } = {}): { records: ActionRecord[]; problems: StoreProblem[] } {
    if (filter.day !== undefined && !dayPattern.test(filter.day)) throw new StoreError(`not a day: ${JSON.stringify(filter.day)} (expected YYYY-MM-DD)`);
    const wantId = filter.day === undefined ? undefined : this.keys.keyIdFor(filter.day);
    const records: ActionRecord[] = [];
    const problems: StoreProblem[] = [];
    this.scan(
      (seg, opened) => {
        if (!opened.ok) problems.push({ file: `segments/${seg.name}`, reason: opened.reason });
        else for (const r of opened.records) if (filter.app === undefined || r.app === filter.app) records.push(r);
      },
      wantId,
    );
    for (const r of this.buffer) {
      if ((filter.day === undefined || utcDay(r.at) === filter.day) && (filter.app === undefined || r.app === filter.app)) records.push(r);
    }
    records.sort((a, b) => a.at - b.at);
    return { records, problems };
  }

  /** Removes the day's segments and shreds its key; returns the number of readable records removed. */
  deleteDay(day: string): number {
    if (!dayPattern.test(day)) throw new StoreError(`not a day: ${JSON.stringify(day)} (expected YYYY-MM-DD)`);
    const before = this.buffer.length;
    this.buffer = this.buffer.filter((r) => utcDay(r.at) !== day);
    let removed = before - this.buffer.length;
    const keyId = this.keys.keyIdFor(day);
    this.scan((seg, opened) => {
      if (opened.ok) removed += opened.records.length;
      unlinkSync(seg.path);
    }, keyId);
    // The key goes last: if we crash before this line the remaining segments are still deletable
    // by id; after it, whatever copy survives is sealed under a key nobody has.
    this.keys.destroy(day);
    fsyncDir(this.segDir);
    return removed;
  }

  /**
   * Rewrites every segment holding records of `app` without them (records *of* the app, and
   * app-switch records naming it). Returns the number of records removed. Segments that cannot
   * be read are left alone (they are reported by read()).
   */
  deleteApp(app: string): number {
    const before = this.buffer.length;
    this.buffer = this.buffer.filter((r) => !mentionsApp(r, app));
    let removed = before - this.buffer.length;
    const emptied = new Set<string>();
    this.scan((seg, opened, keyId) => {
      if (!opened.ok) return;
      const kept = opened.records.filter((r) => !mentionsApp(r, app));
      if (kept.length === opened.records.length) return;
      removed += opened.records.length - kept.length;
      if (kept.length > 0) {
        const { key } = this.keys.dataKeyForWrite(opened.day);
        replaceFileAtomic(join(this.segDir, `${randomBytes(16).toString("hex")}.seg`), sealSegment(keyId, key, opened.day, kept));
      } else emptied.add(opened.day);
      // New segment first, then the old one goes: a crash in between duplicates the kept
      // records, it never loses them; the window is one unlink.
      unlinkSync(seg.path);
    });
    fsyncDir(this.segDir);
    // A day left with no segment at all has no data: destroy its key so days() stays truthful.
    if (emptied.size > 0) {
      const live = this.days();
      for (const day of emptied) if (!live.includes(day)) this.keys.destroy(day);
    }
    return removed;
  }

  /** Removes every segment (and leftover temp file) and every key, master key included. */
  deleteAll(): void {
    this.clearTimer();
    this.buffer = [];
    ensurePrivateDir(this.segDir);
    for (const name of readdirSync(this.segDir)) unlinkSync(join(this.segDir, name));
    fsyncDir(this.segDir);
    this.keys.destroyAll();
  }

  /** Flushes and stops the flush timer; further appends throw. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
  }

  private autoFlush(): void {
    try {
      this.flush();
    } catch (err) {
      this.opts.onFlushError?.(err as Error);
      if (!this.timer && !this.closed) {
        this.timer = setTimeout(() => this.autoFlush(), this.flushAfterMs);
        this.timer.unref();
      }
    }
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private segments(): SegmentRef[] {
    let names: string[];
    try {
      names = readdirSync(this.segDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return []; // removed under us: nothing stored
      throw err;
    }
    return names.filter((n) => segmentName.test(n)).map((name) => ({ name, path: join(this.segDir, name) }));
  }

  /**
   * Visits every segment (or only those under key `onlyKeyId`) with its opened content or the
   * reason it cannot be opened. Key files are read once per scan.
   */
  private scan(visit: (seg: SegmentRef, opened: ReturnType<typeof openSegment>, keyId: string) => void, onlyKeyId?: string): void {
    const keyCache = new Map<string, ReturnType<KeyRing["load"]>>();
    for (const seg of this.segments()) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(seg.path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue; // deleted by another process meanwhile
        if (onlyKeyId === undefined) visit(seg, { ok: false, reason: `segment unreadable (${(err as NodeJS.ErrnoException).code ?? "error"})` }, "");
        continue;
      }
      const h = readHeader(bytes);
      if (!h.ok) {
        if (onlyKeyId === undefined) visit(seg, h, "");
        continue;
      }
      if (onlyKeyId !== undefined && h.keyId !== onlyKeyId) continue;
      let k = keyCache.get(h.keyId);
      if (!k) keyCache.set(h.keyId, (k = this.keys.load(h.keyId)));
      if (!k.ok) visit(seg, { ok: false, reason: k.reason }, h.keyId);
      else visit(seg, openSegment(bytes, h.keyId, k.key, k.day), h.keyId);
    }
  }
}

function readHead(path: string): Uint8Array | undefined {
  try {
    const fd = openSync(path, "r");
    try {
      const buf = Buffer.alloc(HEADER_BYTES + 16);
      const n = readSync(fd, buf, 0, buf.length, 0);
      return buf.subarray(0, n);
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
}

function groupByDay(records: readonly ActionRecord[]): Map<string, ActionRecord[]> {
  const m = new Map<string, ActionRecord[]>();
  for (const r of records) {
    const d = utcDay(r.at);
    let list = m.get(d);
    if (!list) m.set(d, (list = []));
    list.push(r);
  }
  return m;
}

/** A record of the app, or an app-switch token naming it on either side. */
function mentionsApp(r: ActionRecord, app: string): boolean {
  if (r.app === app) return true;
  if (r.kind !== "app-switch") return false;
  const m = /^app-switch:(.*)>(.*)$/.exec(r.token);
  return !!m && (m[1] === app || m[2] === app);
}

function describe(err: ZodError): string {
  const i = err.issues[0];
  return i ? `${i.path.join(".") || "record"}: ${i.message}` : "invalid";
}

export interface ActionSummary {
  total: number;
  perApp: Record<string, Partial<Record<ActionKind, number>>>;
  /** Per UTC day; perHour has 24 counts by UTC hour. */
  perDay: Record<string, { total: number; firstAt: number; lastAt: number; perHour: number[] }>;
}

/** Counts for `tacit client data show`: what is stored, never the tokens themselves. */
export function summarize(records: readonly ActionRecord[]): ActionSummary {
  const perApp: ActionSummary["perApp"] = {};
  const perDay: ActionSummary["perDay"] = {};
  for (const r of records) {
    const a = (perApp[r.app] ??= {});
    a[r.kind] = (a[r.kind] ?? 0) + 1;
    const day = utcDay(r.at);
    const d = (perDay[day] ??= { total: 0, firstAt: r.at, lastAt: r.at, perHour: new Array<number>(24).fill(0) });
    d.total++;
    d.firstAt = Math.min(d.firstAt, r.at);
    d.lastAt = Math.max(d.lastAt, r.at);
    d.perHour[new Date(r.at).getUTCHours()]!++;
  }
  return { total: records.length, perApp, perDay };
}

// Kept for callers that want to know whether a directory already holds a store.
export function storeExists(dir: string): boolean {
  return existsSync(join(dir, "keys", "master.key"));
}
