/**
 * Finding L4 of the 2026-11-30 security findings: ReadLedger used to read the whole ledger and
 * JSON-parse every line on each call. Now PrivacyLedger serves lines through its in-memory index
 * (coordinator/ledger/line-index.ts): it fetches only the segments that hold the lines it
 * serves and parses none of the others.
 *
 * Two checks, both on a real ledger. Its first segment holds many lines: a pre-segment
 * ledger.jsonl imported on first start. After it come single-entry segments appended through
 * PrivacyLedger.
 * - The store's reads are counted. A read from seq N fetches only the segments at or after N.
 *   A device's read fetches only the genesis segment and the segments of entries that name
 *   the device. Reads are per segment, so the whole first segment is fetched even when only
 *   some of its lines are served.
 * - Every line that neither read serves is overwritten in place with garbage of the same
 *   length, also the lines inside the first segment. Both reads still return exactly the
 *   right lines. A reader that parsed the whole ledger would throw on the garbage, or hand
 *   some of it out.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateEd25519, type Ed25519KeyPair } from "../shared/crypto/index.ts";
import { LedgerWriter } from "../shared/ledger/writer.ts";
import { entryHash, type LedgerEntry } from "../shared/ledger/entry.ts";
import { PrivacyLedger } from "../coordinator/ledger/privacy-ledger.ts";
import { readLedgerText, segmentKey } from "../coordinator/ledger/segment-writer.ts";
import { DirectoryStore } from "../coordinator/store/directory-store.ts";
import type { DurableStore } from "../coordinator/store/durable-store.ts";

/** A DirectoryStore that records which keys were fetched, and how many bytes each fetch returned. */
class CountingStore implements DurableStore {
  readonly fetched: { key: string; bytes: number }[] = [];
  constructor(private readonly inner: DirectoryStore) {}
  get url(): string {
    return this.inner.url;
  }
  get localRoot(): string {
    return this.inner.localRoot;
  }
  putIfAbsent(key: string, bytes: Uint8Array): Promise<boolean> {
    return this.inner.putIfAbsent(key, bytes);
  }
  async get(key: string): Promise<Buffer | undefined> {
    const b = await this.inner.get(key);
    this.fetched.push({ key, bytes: b?.length ?? 0 });
    return b;
  }
  list(prefix: string): Promise<string[]> {
    return this.inner.list(prefix);
  }
}

const TARGET = "dev-target000000000000";
/** Lines 0..LEGACY_LAST are the imported ledger.jsonl, so they are all in segment 0. */
const LEGACY_LAST = 30;
const LAST = 60;
/** The target device's enrollment, inside segment 0, and a later offence of its own segment. */
const TARGET_ENROLLMENT = 12;
const TARGET_OFFENCE = 40;
/** The reviewer reads from here. */
const FROM = 50;

const enrollmentBody = (deviceId: string, i: number) => ({
  deviceId,
  keyFingerprint: `fp-${i}`.padEnd(64, "0"),
  label: `laptop-${i}`,
  creator: "admin-1",
  tokenId: `tok-${i}`,
  tokenLabel: "fleet",
});

/** Overwrites `length` bytes at `position` with '#' (not JSON), in place, without changing the file's size or any offset. */
function scribble(path: string, position: number, length: number): void {
  const fd = openSync(path, "r+");
  try {
    writeSync(fd, Buffer.alloc(length, "#"), 0, length, position);
  } finally {
    closeSync(fd);
  }
}

describe("ReadLedger reads and parses only what it serves (L4)", () => {
  let root: string;
  let store: CountingStore;
  let ledger: PrivacyLedger;
  /** The ledger's lines as written, before any corruption. */
  let written: string[];
  /** The segment each seq is in (segment 0 for the imported lines). */
  const segmentOf = (seq: number): string => segmentKey(seq <= LEGACY_LAST ? 0 : seq);

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "tacit-l4-"));
    const key: Ed25519KeyPair = generateEd25519();
    // A state dir from before segments: genesis and LEGACY_LAST enrollments in one ledger.jsonl.
    const stateDir = join(root, "state");
    mkdirSync(stateDir);
    const legacyPath = join(stateDir, "ledger.jsonl");
    const legacy = LedgerWriter.open(legacyPath, key.privateKey);
    legacy.append("genesis", { coordinatorPublicKey: Buffer.from(key.publicRaw).toString("base64"), format: "tacit-ledger-v1" });
    for (let seq = 1; seq <= LEGACY_LAST; seq++) legacy.append("enrollment", enrollmentBody(seq === TARGET_ENROLLMENT ? TARGET : `dev-legacy-${seq}`, seq));

    store = new CountingStore(new DirectoryStore(join(root, "store")));
    ledger = await PrivacyLedger.open(store, { ledger: legacyPath }, key);
    expect(ledger.migrated).toMatch(/imported/);
    for (let seq = LEGACY_LAST + 1; seq <= LAST; seq++) {
      if (seq === TARGET_OFFENCE) await ledger.offence({ deviceId: TARGET, runId: "run-1", round: 0, reason: "share is not a field element" });
      else await ledger.enrollment(enrollmentBody(`dev-later-${seq}`, seq));
    }
    written = (await readLedgerText(store)).slice(0, -1).split("\n");
    expect(written.length).toBe(LAST + 1);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("fetches only the segments holding the served lines, from a seq and for a device", async () => {
    store.fetched.length = 0;
    expect(await ledger.lines(FROM)).toEqual(written.slice(FROM));
    const fromSeq = store.fetched.map((f) => f.key);
    expect(fromSeq).toEqual(Array.from({ length: LAST + 1 - FROM }, (_, i) => segmentKey(FROM + i)));
    // Those segments hold exactly the served lines: not one byte more is read.
    expect(store.fetched.reduce((n, f) => n + f.bytes, 0)).toBe(written.slice(FROM).reduce((n, l) => n + Buffer.byteLength(l) + 1, 0));

    store.fetched.length = 0;
    expect(await ledger.lines(0, TARGET)).toEqual([written[0], written[TARGET_ENROLLMENT], written[TARGET_OFFENCE]]);
    // The genesis and the target's enrollment share segment 0, which is fetched once.
    expect(store.fetched.map((f) => f.key)).toEqual([segmentKey(0), segmentKey(TARGET_OFFENCE)]);
  });

  it("serves the right lines when every line it does not serve is garbage", async () => {
    const served = new Set<number>([0, TARGET_ENROLLMENT, TARGET_OFFENCE]);
    for (let seq = FROM; seq <= LAST; seq++) served.add(seq);
    // A line's offset in its segment: running through segment 0; 0 for every later, single-entry segment.
    let legacyOffset = 0;
    for (let seq = 0; seq <= LAST; seq++) {
      const bytes = Buffer.byteLength(written[seq]!);
      const offset = seq <= LEGACY_LAST ? legacyOffset : 0;
      if (seq <= LEGACY_LAST) legacyOffset += bytes + 1;
      // The newline stays: every segment still holds whole lines, of which these no longer parse.
      if (!served.has(seq)) scribble(join(store.localRoot, segmentOf(seq)), offset, bytes);
    }
    // The corruption is real: a reader that parsed the whole ledger fails on it.
    const now = (await readLedgerText(store)).slice(0, -1).split("\n");
    expect(now.filter((l) => l.startsWith("#")).length).toBe(LAST + 1 - served.size);
    expect(() => now.map((l) => JSON.parse(l) as unknown)).toThrow(SyntaxError);

    const fromSeq = await ledger.lines(FROM);
    expect(fromSeq).toEqual(written.slice(FROM));
    const mine = await ledger.lines(0, TARGET);
    expect(mine).toEqual([written[0], written[TARGET_ENROLLMENT], written[TARGET_OFFENCE]]);
    // And each served line is the whole, untouched entry.
    for (const line of [...fromSeq, ...mine]) {
      const e = JSON.parse(line) as LedgerEntry;
      expect(entryHash(e)).toBe(e.hash);
    }
    expect(mine.map((l) => (JSON.parse(l) as LedgerEntry).type)).toEqual(["genesis", "enrollment", "device-offence"]);
  });
});
