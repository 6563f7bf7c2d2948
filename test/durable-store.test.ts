/**
 * The DurableStore contract (design note §3.2), run against every implementation: a directory
 * (put-if-absent decided by link(2)) and an S3-compatible store (PUT If-None-Match: *, against
 * moto's real S3 server on loopback). Of several writers — here separate OS processes racing on
 * one key — exactly one wins and the others are told so; what is stored is always one whole
 * value. The round decisions built on it refuse a stale coordinator's outcome, and ledger
 * segments refuse a second writer at one seq, on either store.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { randomBytes } from "node:crypto";
import { DirectoryStore } from "../coordinator/store/directory-store.ts";
import { openCheckedStore, openDurableStore, StoreUrlError } from "../coordinator/store/open-store.ts";
import type { DurableStore } from "../coordinator/store/durable-store.ts";
import { S3Store, S3StoreError, s3LocationFromUrl } from "../coordinator/store/s3-store.ts";
import { conditionalWritesIgnored, MotoServer } from "./support/moto-server.ts";
import { RoundDecisions, StaleWriterError, type AttemptOutcome } from "../coordinator/runs/round-decisions.ts";
import { CheckpointStore } from "../coordinator/runs/checkpoint-store.ts";
import { parameterCount } from "../shared/model/index.ts";
import { TINY_MODEL } from "./support/cluster.ts";
import { readLedgerText, SegmentLedgerWriter, segmentKey } from "../coordinator/ledger/segment-writer.ts";
import { importLegacyLedger } from "../coordinator/ledger/legacy-ledger.ts";
import { generateEd25519 } from "../shared/crypto/index.ts";
import { LedgerWriter, verifyLedger, type LedgerEntry } from "../shared/ledger/index.ts";

const root = join(import.meta.dirname, "..");
const freshDir = (): DirectoryStore => new DirectoryStore(mkdtempSync(join(tmpdir(), "tacit-store-")));

/** moto's S3 server, for the whole file (it takes seconds to start), one bucket per run. */
let moto: MotoServer | undefined;
let bucket = "";
beforeAll(async () => {
  moto = await MotoServer.start();
  bucket = await moto.bucket();
}, 120_000);
afterAll(async () => moto?.stop());

/** A store as a coordinator opens it: by URL, with its env. Each call: a new, empty store. */
interface Impl {
  name: string;
  open(): { url: string; env: Record<string, string> };
}
const impls: Impl[] = [
  { name: "directory", open: () => ({ url: pathToFileURL(mkdtempSync(join(tmpdir(), "tacit-store-"))).href, env: {} }) },
  { name: "S3 (moto)", open: () => ({ url: `s3://${bucket}/t-${randomBytes(4).toString("hex")}/store`, env: moto!.env }) },
];

describe.each(impls)("$name DurableStore contract", (impl) => {
  const fresh = (): DurableStore => {
    const { url, env } = impl.open();
    return openDurableStore(url, env);
  };

  it("puts once: the first value stays, a second put is refused, get and list see whole values", async () => {
    const s = fresh();
    expect(await s.putIfAbsent("commits/run-1/00000.json", Buffer.from("first"))).toBe(true);
    expect(await s.putIfAbsent("commits/run-1/00000.json", Buffer.from("second"))).toBe(false);
    expect((await s.get("commits/run-1/00000.json"))!.toString()).toBe("first");
    expect(await s.get("commits/run-1/00001.json")).toBeUndefined();
    expect(await s.get("nothing/here.json")).toBeUndefined();
    await s.putIfAbsent("commits/run-1/00001.json", Buffer.from("x"));
    await s.putIfAbsent("attempts/run-1/00000/00000.json", Buffer.from("y"));
    expect(await s.list("commits/")).toEqual(["commits/run-1/00000.json", "commits/run-1/00001.json"]);
    expect(await s.list("commits/run-1/00001")).toEqual(["commits/run-1/00001.json"]);
    expect(await s.list("commits")).toEqual(["commits/run-1/00000.json", "commits/run-1/00001.json"]);
    expect(await s.list("")).toEqual(["attempts/run-1/00000/00000.json", "commits/run-1/00000.json", "commits/run-1/00001.json"]);
    expect(await s.list("nothing/")).toEqual([]);
    // Bytes come back exactly, empty values included.
    const bin = randomBytes(70_000);
    expect(await s.putIfAbsent("checkpoints/run-1/weights.bin", bin)).toBe(true);
    expect(Buffer.compare((await s.get("checkpoints/run-1/weights.bin"))!, bin)).toBe(0);
    expect(await s.putIfAbsent("empty", new Uint8Array(0))).toBe(true);
    expect((await s.get("empty"))!.length).toBe(0);
  });

  it("refuses keys that could leave the store, before contacting it", async () => {
    const s = fresh();
    for (const k of ["../x", "/etc/passwd", "a/../../b", ".hidden", "a//b", ""]) await expect(s.putIfAbsent(k, Buffer.from("x"))).rejects.toThrow(/invalid store key/);
    for (const k of ["../x", "a/./b"]) await expect(s.get(k)).rejects.toThrow(/invalid store key/);
    await expect(s.list("../x/")).rejects.toThrow(/invalid store key/);
  });

  it("of 6 processes racing to put one key, exactly one wins", async () => {
    const { url, env } = impl.open();
    // Each racer opens the store by URL, says "ready" and waits for one "go" on stdin, so the puts really overlap.
    const script = join(mkdtempSync(join(tmpdir(), "tacit-race-")), "race.mjs");
    writeFileSync(script, `const { openDurableStore } = await import(${JSON.stringify(join(root, "coordinator/store/open-store.ts"))});
const s = openDurableStore(process.argv[2]);
process.stdout.write("ready\\n");
process.stdin.once("data", async () => {
  process.stdout.write(String(await s.putIfAbsent("commits/run/00000.json", Buffer.from(process.argv[3].repeat(100000)))));
  process.exit(0);
});`);
    const racers = ["a", "b", "c", "d", "e", "f"].map((tag) => {
      const p = spawn(process.execPath, ["--import", "tsx", script, url, tag], { cwd: root, stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...env } });
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
    const stored = (await openDurableStore(url, env).get("commits/run/00000.json"))!.toString("utf8");
    expect(stored).toMatch(/^(a+|b+|c+|d+|e+|f+)$/);
    expect(stored).toHaveLength(100000);
  }, 60_000);

  decisionContract(fresh);
});

describe("directory DurableStore", () => {
  it("leaves no temp file behind a won or a lost put", async () => {
    const s = freshDir();
    await s.putIfAbsent("commits/run-1/00000.json", Buffer.from("first"));
    await s.putIfAbsent("commits/run-1/00000.json", Buffer.from("second"));
    expect(readdirSync(join(s.localRoot, "commits", "run-1")).filter((n) => n.startsWith("."))).toEqual([]);
  });
});

describe("choosing a store by URL", () => {
  it("file:// is a directory, s3:// an S3 store; unknown schemes are refused by name", () => {
    const dir = mkdtempSync(join(tmpdir(), "tacit-store-"));
    expect(openDurableStore(pathToFileURL(dir).href).localRoot).toBe(dir);
    const s3 = openDurableStore("s3://my-bucket/tacit/prod", { TACIT_S3_ENDPOINT: "http://127.0.0.1:9000" });
    expect(s3).toBeInstanceOf(S3Store);
    expect(s3.url).toBe("s3://my-bucket/tacit/prod/");
    expect(s3.localRoot).toBeUndefined();
    expect(() => openDurableStore("ftp://x")).toThrow(StoreUrlError);
    expect(() => openDurableStore("ftp://x")).toThrow(/not supported/);
    expect(() => openDurableStore("not a url")).toThrow(/not a URL/);
  });

  it("reads the bucket, prefix, endpoint, region and path style", () => {
    const at = (url: string, env: NodeJS.ProcessEnv = {}) => s3LocationFromUrl(new URL(url), env);
    expect(at("s3://b-1/a/b/")).toEqual({ bucket: "b-1", prefix: "a/b/", region: "us-east-1", forcePathStyle: false });
    expect(at("s3://b-1")).toMatchObject({ prefix: "" });
    expect(at("s3://b-1/p", { TACIT_S3_ENDPOINT: "http://127.0.0.1:9000", AWS_REGION: "eu-west-1" })).toEqual({ bucket: "b-1", prefix: "p/", endpoint: "http://127.0.0.1:9000", region: "eu-west-1", forcePathStyle: true });
    expect(at("s3://b-1/p", { AWS_ENDPOINT_URL_S3: "https://s3.example.test", TACIT_S3_FORCE_PATH_STYLE: "0", AWS_DEFAULT_REGION: "auto" })).toMatchObject({ endpoint: "https://s3.example.test", forcePathStyle: false, region: "auto" });
    expect(() => at("s3://Bad_Bucket/p")).toThrow(/not an S3 bucket name/);
    expect(() => at("s3://key:secret@bucket/p")).toThrow(/AWS_\* variables/);
    expect(() => at("s3://bucket/p?endpoint=x")).toThrow(/only s3:\/\/bucket\/prefix/);
    expect(() => at("s3://bucket/../p")).not.toThrow(); // URL parsing already resolves `..` away
    expect(() => at("s3://bucket/.git")).toThrow(/invalid store key/);
    expect(() => at("s3://bucket/p", { TACIT_S3_ENDPOINT: "127.0.0.1:9000" })).toThrow(/TACIT_S3_ENDPOINT/);
    expect(() => at("s3://bucket/p", { TACIT_S3_FORCE_PATH_STYLE: "yes" })).toThrow(/TACIT_S3_FORCE_PATH_STYLE/);
  });
});

describe("S3 DurableStore against a real server", () => {
  it("the probe passes on a server with conditional writes, and leaves nothing behind", async () => {
    const url = `s3://${bucket}/probe-ok`;
    const s = await openCheckedStore(url, moto!.env);
    expect(await s.list("")).toEqual([]);
  });

  it("a server that ignores If-None-Match is refused at open, before anything is written through it", async () => {
    const proxy = await conditionalWritesIgnored(moto!.endpoint);
    try {
      const env = { ...moto!.env, TACIT_S3_ENDPOINT: proxy.endpoint };
      // Through the proxy a second put "wins" too: exactly what must never reach a coordinator.
      const raw = openDurableStore(`s3://${bucket}/no-cas`, env);
      expect(await raw.putIfAbsent("k", Buffer.from("1"))).toBe(true);
      expect(await raw.putIfAbsent("k", Buffer.from("2"))).toBe(true);
      await expect(openCheckedStore(`s3://${bucket}/no-cas`, env)).rejects.toThrow(/ignores If-None-Match: \*/);
    } finally {
      await proxy.close();
    }
  });

  it("names the missing bucket and the unreachable endpoint", async () => {
    await expect(openDurableStore("s3://no-such-bucket-here/p", moto!.env).putIfAbsent("k", Buffer.from("x"))).rejects.toThrow(/PUT k failed: bucket no-such-bucket-here does not exist/);
    await expect(openDurableStore("s3://no-such-bucket-here/p", moto!.env).get("k")).rejects.toThrow(S3StoreError);
    await expect(openDurableStore("s3://no-such-bucket-here/p", moto!.env).list("x/")).rejects.toThrow(/LIST x\/ failed: bucket/);
    const closed = `http://127.0.0.1:${await (await import("../coordinator/redis/embedded-redis.ts")).freePort()}`;
    await expect(openCheckedStore(`s3://${bucket}/p`, { ...moto!.env, TACIT_S3_ENDPOINT: closed })).rejects.toThrow(/could not be reached/);
  }, 60_000);
});

const outcome = (status: string, attempt: number, extra: Partial<AttemptOutcome> = {}): AttemptOutcome => ({
  status, record: { round: 0, attempt, status }, by: `coordinator-${status}`, ...extra,
});

/** What the coordinators' safety rests on, on each store: a stale writer's decision loses. */
function decisionContract(fresh: () => DurableStore): void {
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
      const cps = new CheckpointStore(mkdtempSync(join(tmpdir(), "tacit-checkpoints-")), d, "zombie");
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
}
