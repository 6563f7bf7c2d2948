/**
 * DurableStore on a directory (design note §3.2): put-if-absent is decided by link(2), so of
 * several writers — here separate OS processes racing on one key — exactly one wins and the
 * others are told so; what is stored is always one whole value. The round decisions built on it
 * refuse a stale coordinator's outcome, and ledger segments refuse a second writer at one seq.
 */
import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { DirectoryStore } from "../coordinator/store/directory-store.ts";
import { openDurableStore, StoreUrlError } from "../coordinator/store/open-store.ts";
import { RoundDecisions, StaleWriterError, type AttemptOutcome } from "../coordinator/runs/round-decisions.ts";
import { CheckpointStore } from "../coordinator/runs/checkpoint-store.ts";
import { parameterCount } from "../shared/model/index.ts";
import { TINY_MODEL } from "./support/cluster.ts";
import { readLedgerText, SegmentLedgerWriter, segmentKey } from "../coordinator/ledger/segment-writer.ts";
import { importLegacyLedger } from "../coordinator/ledger/legacy-ledger.ts";
import { generateEd25519 } from "../shared/crypto/index.ts";
import { LedgerWriter, verifyLedger, type LedgerEntry } from "../shared/ledger/index.ts";

const fresh = (): DirectoryStore => new DirectoryStore(mkdtempSync(join(tmpdir(), "tacit-store-")));
const root = join(import.meta.dirname, "..");

describe("directory DurableStore", () => {
  it("puts once: the first value stays, a second put is refused, get and list see whole values", async () => {
    const s = fresh();
    expect(await s.putIfAbsent("commits/run-1/00000.json", Buffer.from("first"))).toBe(true);
    expect(await s.putIfAbsent("commits/run-1/00000.json", Buffer.from("second"))).toBe(false);
    expect((await s.get("commits/run-1/00000.json"))!.toString()).toBe("first");
    expect(await s.get("commits/run-1/00001.json")).toBeUndefined();
    await s.putIfAbsent("commits/run-1/00001.json", Buffer.from("x"));
    await s.putIfAbsent("attempts/run-1/00000/00000.json", Buffer.from("y"));
    expect(await s.list("commits/")).toEqual(["commits/run-1/00000.json", "commits/run-1/00001.json"]);
    expect(await s.list("commits/run-1/00001")).toEqual(["commits/run-1/00001.json"]);
    expect(await s.list("nothing/")).toEqual([]);
    // No temp file is left behind by a won or a lost put.
    expect(readdirSync(join(s.localRoot, "commits", "run-1")).filter((n) => n.startsWith("."))).toEqual([]);
  });

  it("refuses keys that could leave the store", async () => {
    const s = fresh();
    for (const k of ["../x", "/etc/passwd", "a/../../b", ".hidden", "a//b", ""]) await expect(s.putIfAbsent(k, Buffer.from("x"))).rejects.toThrow(/invalid store key/);
  });

  it("is chosen by URL; unknown schemes are refused by name", () => {
    const dir = mkdtempSync(join(tmpdir(), "tacit-store-"));
    expect(openDurableStore(pathToFileURL(dir).href).localRoot).toBe(dir);
    expect(() => openDurableStore("s3://bucket/prefix")).toThrow(StoreUrlError);
    expect(() => openDurableStore("ftp://x")).toThrow(/not supported/);
  });

  it("of 6 processes racing to put one key, exactly one wins", async () => {
    const s = fresh();
    // Each racer loads, says "ready" and waits for one "go" on stdin, so the puts really overlap.
    const script = join(mkdtempSync(join(tmpdir(), "tacit-race-")), "race.mjs");
    writeFileSync(script, `const { DirectoryStore } = await import(${JSON.stringify(join(root, "coordinator/store/directory-store.ts"))});
const s = new DirectoryStore(process.argv[2]);
process.stdout.write("ready\\n");
process.stdin.once("data", async () => {
  process.stdout.write(String(await s.putIfAbsent("commits/run/00000.json", Buffer.from(process.argv[3].repeat(100000)))));
  process.exit(0);
});`);
    const racers = ["a", "b", "c", "d", "e", "f"].map((tag) => {
      const p = spawn(process.execPath, ["--import", "tsx", script, s.localRoot, tag], { cwd: root, stdio: ["pipe", "pipe", "pipe"] });
      let out = "";
      let err = "";
      p.stderr.on("data", (d: Buffer) => (err += d.toString()));
      const ready = new Promise<void>((resolve) => p.stdout.on("data", (d: Buffer) => { out += d.toString(); if (out.includes("ready")) resolve(); }));
      const done = new Promise<string>((resolve, reject) => {
        p.on("error", reject);
        p.on("exit", (code) => (code === 0 ? resolve(out.replace("ready\n", "")) : reject(new Error(`racer ${tag} exited ${code}: ${err}`))));
      });
      return { p, ready, done };
    });
    await Promise.all(racers.map((r) => r.ready));
    for (const r of racers) r.p.stdin.write("go\n");
    const results = await Promise.all(racers.map((r) => r.done));
    expect(results.filter((r) => r === "true")).toHaveLength(1);
    expect(results.filter((r) => r === "false")).toHaveLength(5);
    const stored = readFileSync(join(s.localRoot, "commits/run/00000.json"), "utf8");
    expect(stored).toMatch(/^(a+|b+|c+|d+|e+|f+)$/);
    expect(stored).toHaveLength(100000);
  }, 60_000);
});

const outcome = (status: string, attempt: number, extra: Partial<AttemptOutcome> = {}): AttemptOutcome => ({
  status, record: { round: 0, attempt, status }, by: `coordinator-${status}`, ...extra,
});

describe("round decisions", () => {
  it("an attempt declared lost cannot later be decided completed by its stale coordinator", async () => {
    const d = new RoundDecisions(fresh());
    expect((await d.decideAttempt("run", outcome("lost", 0))).won).toBe(true);
    const stale = await d.decideAttempt("run", outcome("completed", 0, { checkpoint: { hash: "h0", dir: "round-00000-a0" } }));
    expect(stale.won).toBe(false);
    expect(stale.outcome.status).toBe("lost");
    await expect(d.commit("run", stale.outcome)).rejects.toThrow(/did not complete/);
    expect(await d.committed("run", 0)).toBeUndefined();
  });

  it("a completed attempt's commit is the same whoever writes it; another attempt's commit is refused", async () => {
    const d = new RoundDecisions(fresh());
    const done = outcome("completed", 1, { checkpoint: { hash: "h1", dir: "round-00000-a1" }, commit: { record: { attempt: 1 } } });
    expect((await d.decideAttempt("run", done)).won).toBe(true);
    const first = await d.commit("run", done);
    expect(await d.commit("run", done)).toEqual(first); // a successor publishing the same decision
    const other = outcome("completed", 2, { checkpoint: { hash: "h2", dir: "round-00000-a2" } });
    await expect(d.commit("run", other)).rejects.toThrow(StaleWriterError);
    expect((await d.committed("run", 0))!.attempt).toBe(1);
  });
});

describe("checkpoint commit point", () => {
  const commitOf = (attempt: number) => ({ record: { round: 0, attempt, status: "completed" }, attestations: [] });

  it("a stale coordinator's commit of an attempt already declared lost is refused, and the round stays uncommitted", async () => {
    const s = fresh();
    const d = new RoundDecisions(s);
    const cps = new CheckpointStore(join(s.localRoot, "checkpoints"), d, "zombie");
    // The successor declared attempt 0 lost while the zombie was paused in SecAgg.
    await d.decideAttempt("run", outcome("lost", 0));
    const weights = new Float32Array(parameterCount(TINY_MODEL)).fill(0.5);
    await expect(cps.write("run", 0, TINY_MODEL, weights, null, commitOf(0))).rejects.toThrow(StaleWriterError);
    expect(await cps.committed("run", 0)).toBeUndefined();
    // The successor's own attempt then commits the round.
    await cps.write("run", 0, TINY_MODEL, weights, null, commitOf(1));
    expect((await cps.committed("run", 0))!.attempt).toBe(1);
  });
});

describe("ledger segments", () => {
  it("two writers at one head: the second loses the seq, re-reads, and both entries chain", async () => {
    const s = fresh();
    const key = generateEd25519();
    const seen: number[][] = [[], []];
    const a = new SegmentLedgerWriter(s, key.privateKey, (e) => seen[0]!.push(e.seq));
    const b = new SegmentLedgerWriter(s, key.privateKey, (e) => seen[1]!.push(e.seq));
    expect(await a.tryAppend([{ type: "genesis", body: { coordinatorPublicKey: Buffer.from(key.publicRaw).toString("base64"), format: "tacit-ledger-v1" } }])).toHaveLength(1);
    await b.refresh();
    expect(await a.tryAppend([{ type: "enrollment-token", body: { tokenId: "a" } }, { type: "enrollment-token", body: { tokenId: "a2" } }])).toHaveLength(2);
    // b still believes the head is seq 0: its put at seq 1 loses, and it has now read a's segment.
    expect(await b.tryAppend([{ type: "enrollment-token", body: { tokenId: "b" } }])).toBeUndefined();
    expect(b.nextSeq).toBe(3);
    expect(await b.tryAppend([{ type: "enrollment-token", body: { tokenId: "b" } }])).toHaveLength(1);
    expect(seen[1]).toEqual([0, 1, 2, 3]);
    expect(await s.list("ledger/")).toEqual([segmentKey(0), segmentKey(1), segmentKey(3)]);
    const text = await readLedgerText(s);
    const entries = text.trim().split("\n").map((l) => JSON.parse(l) as LedgerEntry);
    expect(entries.map((e) => e.seq)).toEqual([0, 1, 2, 3]);
    expect(verifyLedger(text).violations.filter((v) => /CHAIN|HASH|SEQ|SIGNATURE/.test(v.code))).toEqual([]);
  });

  it("a segment that breaks the chain stops the writer", async () => {
    const s = fresh();
    const key = generateEd25519();
    const w = new SegmentLedgerWriter(s, key.privateKey, () => undefined);
    await w.tryAppend([{ type: "genesis", body: {} }]);
    await s.putIfAbsent(segmentKey(1), Buffer.from(JSON.stringify({ seq: 1, prevHash: "0".repeat(64), time: 0, type: "policy", body: {}, hash: "x", signature: "" }) + "\n"));
    await expect(new SegmentLedgerWriter(s, key.privateKey, () => undefined).refresh()).rejects.toThrow(/breaks the hash chain/);
  });

  it("imports a legacy ledger.jsonl (torn last line cut) as the first segment, unchanged", async () => {
    const s = fresh();
    const key = generateEd25519();
    const legacy = join(mkdtempSync(join(tmpdir(), "tacit-legacy-")), "ledger.jsonl");
    const lw = LedgerWriter.open(legacy, key.privateKey);
    lw.append("genesis", { coordinatorPublicKey: Buffer.from(key.publicRaw).toString("base64"), format: "tacit-ledger-v1" });
    lw.append("enrollment-token", { tokenId: "t" });
    const whole = readFileSync(legacy, "utf8");
    writeFileSync(legacy, whole + '{"seq":2,"torn');
    expect(await importLegacyLedger(s, legacy, key.privateKey)).toMatch(/torn or invalid/);
    expect(await readLedgerText(s)).toBe(whole);
    const w = new SegmentLedgerWriter(s, key.privateKey, () => undefined);
    await w.refresh();
    expect(w.nextSeq).toBe(2);
    expect(await importLegacyLedger(s, legacy, key.privateKey)).toBeUndefined(); // renamed aside: once
  });
});
