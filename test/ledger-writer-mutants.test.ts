/**
 * LedgerWriter's crash repair and durability, and strictBase64 (shared/ledger/writer.ts,
 * entry.ts): what mutation testing found unpinned (issue #16). `open` must cut a torn or invalid
 * LAST line (no newline, not JSON, bad hash, wrong seq, wrong prevHash) and report exactly what it
 * cut, must refuse a ledger corrupt before its last line, and must leave an intact ledger alone
 * (no repair, no write: its mtime stays). Appends must close their descriptors and keep writing
 * after a short write — the write loop is driven through a pass-through mock of node:fs that
 * shortens one write. Signatures must be strict base64: a non-canonical encoding of the right
 * bytes is a SIGNATURE violation.
 */
import { afterEach, describe, expect, it, vi } from "vitest";

/** When set, the next writeSync writes (and reports) only this many bytes. */
const shortWrite = vi.hoisted(() => ({ next: undefined as number | undefined }));
vi.mock("node:fs", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs")>();
  const writeSync = ((fd: number, buf: Uint8Array, offset?: number, length?: number): number => {
    const cut = shortWrite.next;
    if (cut === undefined) return length === undefined ? real.writeSync(fd, buf) : real.writeSync(fd, buf, offset, length);
    shortWrite.next = undefined;
    return real.writeSync(fd, buf, offset ?? 0, cut);
  }) as typeof real.writeSync;
  return { ...real, writeSync, default: { ...real, writeSync } };
});
afterEach(() => void (shortWrite.next = undefined));

import { mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateEd25519 } from "../shared/crypto/index.ts";
import { LedgerWriter, sealEntry, strictBase64, verifyLedger, type LedgerEntry } from "../shared/ledger/index.ts";

const KEY = generateEd25519();
const PUB = Buffer.from(KEY.publicRaw).toString("base64");

/** A ledger of genesis + `n` policy entries on disk; its path, entries and text. */
function written(n: number): { path: string; entries: LedgerEntry[]; text: string } {
  const path = join(mkdtempSync(join(tmpdir(), "tacit-ledger-writer-")), "l.jsonl");
  const w = LedgerWriter.open(path, KEY.privateKey);
  const entries = [w.append("genesis", { coordinatorPublicKey: PUB }, 1000)];
  for (let i = 0; i < n; i++) entries.push(w.append("policy", { note: `entry ${i + 1}` }, 1000 + i));
  return { path, entries, text: readFileSync(path, "utf8") };
}
const lineOf = (e: unknown): string => JSON.stringify(e) + "\n";
const bytes = (s: string): number => Buffer.byteLength(s);
const integrity = (path: string) => verifyLedger(readFileSync(path, "utf8"), { integrityOnly: true, trustedCoordinatorKey: PUB }).violations.map((v) => [v.code, v.line]);

describe("LedgerWriter.open: an intact ledger", () => {
  it("is reopened without a repair and without being written to", () => {
    const { path, text } = written(2);
    utimesSync(path, 1_000_000, 1_000_000);
    const w = LedgerWriter.open(path, KEY.privateKey);
    expect(w.repaired).toBeUndefined();
    expect(w.nextSeq).toBe(3);
    expect(readFileSync(path, "utf8")).toBe(text);
    expect(statSync(path).mtimeMs).toBe(1_000_000_000); // not even truncated to its own length
  });

  it("an existing empty file is an empty ledger, not a torn one", () => {
    const path = join(mkdtempSync(join(tmpdir(), "tacit-ledger-writer-")), "l.jsonl");
    writeFileSync(path, "");
    const w = LedgerWriter.open(path, KEY.privateKey);
    expect(w.repaired).toBeUndefined();
    expect(w.nextSeq).toBe(0);
  });
});

describe("LedgerWriter.open: a torn or invalid last line is cut and reported", () => {
  /** Replaces the ledger's third and last line by `make(entries)` (raw text), reopens, and checks the repair. */
  function repairs(make: (entries: LedgerEntry[]) => string) {
    const { path, entries, text } = written(2);
    const last = make(entries);
    const keep = text.slice(0, text.length - lineOf(entries[2]).length);
    writeFileSync(path, keep + last);
    const w = LedgerWriter.open(path, KEY.privateKey);
    expect(w.repaired).toBe(`line 3 was torn or invalid and has been removed (${bytes(last)} bytes)`);
    expect(w.nextSeq).toBe(2);
    expect(readFileSync(path, "utf8")).toBe(keep);
    // The chain goes on from the last good entry.
    const next = w.append("policy", { note: "after repair" }, 5000);
    expect([next.seq, next.prevHash]).toEqual([2, entries[1]!.hash]);
    expect(integrity(path)).toEqual([]);
  }

  it("a whole entry that lost only its newline is torn: not built on", () => {
    repairs((e) => JSON.stringify(e[2]));
  });

  it("a complete line that is not JSON, or JSON that is no entry", () => {
    repairs(() => "garbage\n");
    repairs(() => "null\n");
  });

  it("a complete line whose content does not match its hash", () => {
    repairs((e) => lineOf({ ...e[2]!, body: { note: "edited" } }));
  });

  it("a correctly hashed entry with the wrong seq, or the wrong prevHash", () => {
    repairs((e) => lineOf(sealEntry({ seq: 3, prevHash: e[1]!.hash, time: 1, type: "policy", body: {} }, KEY.privateKey)));
    repairs(() => lineOf(sealEntry({ seq: 2, prevHash: "f".repeat(64), time: 1, type: "policy", body: {} }, KEY.privateKey)));
  });
});

describe("LedgerWriter.open: corruption before the last line is refused", () => {
  const refuses = (edit: (lines: string[]) => string[], lineNo: number) => {
    const { path, text } = written(3);
    const lines = text.split("\n");
    const bad = edit(lines).join("\n");
    writeFileSync(path, bad);
    expect(() => LedgerWriter.open(path, KEY.privateKey)).toThrow(
      new Error(`ledger ${path} is corrupt at line ${lineNo} (not the last line): refusing to append; run \`tacit verify --ledger ${path}\``),
    );
    expect(readFileSync(path, "utf8")).toBe(bad); // nothing cut
  };

  it("an edited entry in the middle", () => {
    refuses((l) => l.map((x, i) => (i === 1 ? x.replace("entry 1", "entry X") : x)), 2);
  });

  it("a blank line in the middle", () => {
    refuses((l) => [l[0]!, "", ...l.slice(1)], 2);
  });
});

describe("LedgerWriter appends", () => {
  /** Descriptors of this process open on `path` (Linux: /proc/self/fd links to the real path). */
  const openFdsOn = (path: string): number => {
    const real = realpathSync(path);
    return readdirSync("/proc/self/fd").filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === real;
      } catch {
        return false;
      }
    }).length;
  };

  it("close their descriptor, single and batched", () => {
    const { path } = written(0);
    const w = LedgerWriter.open(path, KEY.privateKey);
    for (let i = 0; i < 5; i++) w.append("policy", { note: `single ${i}` });
    for (let i = 0; i < 5; i++) w.appendBatch([{ type: "policy", body: { note: `batch ${i}` } }]);
    expect(openFdsOn(path)).toBe(0);
  });

  it("a batch goes on writing after a short write, to the last byte", () => {
    const { path } = written(0);
    const w = LedgerWriter.open(path, KEY.privateKey);
    shortWrite.next = 10;
    const batch = w.appendBatch([
      { type: "policy", body: { note: "one" } },
      { type: "policy", body: { note: "two" } },
    ]);
    expect(shortWrite.next).toBeUndefined(); // the short write happened
    expect(batch.map((e) => e.seq)).toEqual([1, 2]);
    expect(readFileSync(path, "utf8").split("\n").slice(1)).toEqual([JSON.stringify(batch[0]), JSON.stringify(batch[1]), ""]);
    expect(integrity(path)).toEqual([]);
  });
});

describe("strictBase64 and entry signatures", () => {
  const sig = Buffer.alloc(64, 7);
  const canonical = sig.toString("base64");

  it("takes only a string of exactly the canonical encoding of `bytes` bytes", () => {
    expect(strictBase64(canonical, 64)).toEqual(sig);
    expect(strictBase64(canonical, 32)).toBeUndefined();
    expect(strictBase64("AAAA", 64)).toBeUndefined();
    expect(strictBase64(canonical.replace(/==$/, ""), 64)).toBeUndefined(); // same bytes, no padding
    for (const v of [5, null, undefined, {}, true]) expect(strictBase64(v, 64)).toBeUndefined();
  });

  it("a signature re-encoded non-canonically (same bytes) does not verify", () => {
    const { path, text } = written(1);
    const lines = text.trimEnd().split("\n");
    const e = JSON.parse(lines[1]!) as LedgerEntry;
    // 64 bytes: 86 characters then "=="; the 86th carries 4 padding bits that must be zero.
    const A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const c = e.signature[85]!;
    const loose = e.signature.slice(0, 85) + A[A.indexOf(c) ^ 1] + "==";
    expect(Buffer.from(loose, "base64")).toEqual(Buffer.from(e.signature, "base64"));
    expect(integrity(path)).toEqual([]);
    writeFileSync(path, `${lines[0]}\n${JSON.stringify({ ...e, signature: loose })}\n`);
    expect(integrity(path)).toEqual([["SIGNATURE", 2]]);
  });
});
