/**
 * The encrypted local action store on a real file system with real tweetnacl: round trips,
 * opaque files, tamper/truncation detection byte by byte, crypto-shredding of deleted days,
 * permissions and crash leftovers.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { chmodSync, copyFileSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { ActionStore, StoreError, summarize, type ActionRecord } from "../client/store/index.ts";

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 10, 20, 9, 0, 0); // 2026-11-20 09:00 UTC

function allFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .map((n) => join(dir, n))
    .filter((p) => statSync(p).isFile());
}

function segFiles(dir: string): string[] {
  return readdirSync(join(dir, "segments")).filter((n) => n.endsWith(".seg")).map((n) => join(dir, "segments", n));
}

function rec(at: number, app: string, kind: ActionRecord["kind"], token: string): ActionRecord {
  return { at, app, kind, token };
}

/** Three days, three apps, distinctive strings we can grep raw bytes for. */
function sample(): ActionRecord[] {
  const out: ActionRecord[] = [];
  for (let d = 0; d < 3; d++) {
    for (let i = 0; i < 20; i++) {
      const at = T0 + d * DAY + i * 60_000;
      out.push(rec(at, "zebracode", "shortcut", "zebracode:shortcut:ctrl+shift+p"));
      out.push(rec(at + 1, "quokkaterm", "key", "quokkaterm:key:enter"));
      out.push(rec(at + 2, "quokkaterm", "typing-burst", "typing:burst:m"));
      out.push(rec(at + 3, "wombatbrowser", "click", "wombatbrowser:click"));
    }
    out.push(rec(T0 + d * DAY + 30 * 60_000, "wombatbrowser", "app-switch", "app-switch:zebracode>wombatbrowser"));
  }
  return out;
}

let dir: string;
beforeEach(() => {
  dir = join(mkdtempSync(join(tmpdir(), "tacit-store-")), "store");
});
afterEach(() => {
  rmSync(join(dir, ".."), { recursive: true, force: true });
});

function filled(opts?: Parameters<typeof ActionStore.open>[1]): { store: ActionStore; records: ActionRecord[] } {
  const store = ActionStore.open(dir, { flushEvery: 50, ...opts });
  const records = sample();
  for (const r of records) store.append(r);
  store.flush();
  return { store, records };
}

describe("ActionStore round trip", () => {
  it("reads back every record across several days, from a fresh process view too", () => {
    const { store, records } = filled();
    const sorted = [...records].sort((a, b) => a.at - b.at);
    expect(store.read()).toEqual({ records: sorted, problems: [] });
    expect(store.days()).toEqual(["2026-11-20", "2026-11-21", "2026-11-22"]);
    store.close();
    const again = ActionStore.open(dir);
    expect(again.read()).toEqual({ records: sorted, problems: [] });
    expect(again.read({ day: "2026-11-21" }).records).toEqual(sorted.filter((r) => r.at >= T0 + DAY && r.at < T0 + 2 * DAY));
    expect(again.read({ app: "quokkaterm" }).records).toEqual(sorted.filter((r) => r.app === "quokkaterm"));
    expect(again.read({ day: "2026-11-25" })).toEqual({ records: [], problems: [] });
    again.close();
  });

  it("flushes on its own at N records and after T ms, and on close", async () => {
    const store = ActionStore.open(dir, { flushEvery: 10, flushAfterMs: 150 });
    for (let i = 0; i < 10; i++) store.append(rec(T0 + i, "zebracode", "key", "zebracode:key:enter"));
    expect(segFiles(dir)).toHaveLength(1); // size trigger
    store.append(rec(T0 + 100, "zebracode", "key", "zebracode:key:tab"));
    expect(segFiles(dir)).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 400));
    expect(segFiles(dir)).toHaveLength(2); // time trigger
    store.append(rec(T0 + 200, "zebracode", "key", "zebracode:key:escape"));
    store.close();
    expect(segFiles(dir)).toHaveLength(3); // close
    expect(ActionStore.open(dir).read().records).toHaveLength(12);
    expect(() => store.append(rec(T0, "zebracode", "key", "zebracode:key:enter"))).toThrow(StoreError);
  });

  it.each([
    ["control character in app", rec(T0, "zebra\ncode", "key", "x:key:enter")],
    ["bidi override in token", rec(T0, "zebracode", "key", "zebracode:key:\u202Eenter")],
    ["overlong app", rec(T0, "a".repeat(65), "key", "a:key:enter")],
    ["overlong token", rec(T0, "zebracode", "key", "k".repeat(161))],
    ["empty app", rec(T0, "", "key", "k")],
    ["unknown kind", { at: T0, app: "zebracode", kind: "keystroke", token: "x" } as unknown as ActionRecord],
    ["fractional time", rec(T0 + 0.5, "zebracode", "key", "zebracode:key:enter")],
    ["extra field", { ...rec(T0, "zebracode", "key", "zebracode:key:enter"), text: "hunter2" } as ActionRecord],
  ])("refuses an invalid record: %s", (_name, bad) => {
    const store = ActionStore.open(dir);
    expect(() => store.append(bad)).toThrow(StoreError);
    expect(store.read().records).toEqual([]);
  });

  it("summarize counts per app/kind and per day/hour", () => {
    const s = summarize(sample());
    expect(s.total).toBe(243);
    expect(s.perApp["quokkaterm"]).toEqual({ key: 60, "typing-burst": 60 });
    expect(s.perApp["wombatbrowser"]).toEqual({ click: 60, "app-switch": 3 });
    const d = s.perDay["2026-11-21"]!;
    expect(d.total).toBe(81);
    expect(d.firstAt).toBe(T0 + DAY);
    expect(d.lastAt).toBe(T0 + DAY + 30 * 60_000); // the app-switch
    expect(d.perHour[9]).toBe(81);
    expect(d.perHour.reduce((a, b) => a + b, 0)).toBe(81);
  });
});

describe("ActionStore files reveal nothing", () => {
  it("no day, app or token in any file name, and no plaintext in any file's bytes", () => {
    const { store } = filled();
    store.close();
    const files = allFiles(dir);
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) {
      const name = relative(dir, f);
      expect(name).toMatch(/^(keys\/(master|[0-9a-f]{32})\.key|segments\/[0-9a-f]{32}\.seg)$/);
      const bytes = readFileSync(f);
      for (const needle of ["zebracode", "quokkaterm", "wombatbrowser", "shortcut", "typing", "burst", "ctrl+shift", "2026-11", "records"]) {
        expect(bytes.includes(Buffer.from(needle, "utf8")), `${needle} in ${name}`).toBe(false);
        expect(bytes.includes(Buffer.from(needle, "utf16le")), `${needle} (utf16) in ${name}`).toBe(false);
      }
    }
  });

  it("key files are 0600 and directories 0700, even if the store dir existed wider", () => {
    const { store } = filled();
    store.close();
    const mode = (p: string): number => statSync(p).mode & 0o777;
    expect(mode(dir)).toBe(0o700);
    expect(mode(join(dir, "keys"))).toBe(0o700);
    expect(mode(join(dir, "segments"))).toBe(0o700);
    const keyFiles = readdirSync(join(dir, "keys")).map((n) => join(dir, "keys", n));
    expect(keyFiles.length).toBe(4); // master + 3 days
    for (const k of keyFiles) expect(mode(k)).toBe(0o600);
    for (const s of segFiles(dir)) expect(mode(s)).toBe(0o600);
    // widened by hand: reopening makes them private again
    chmodSync(dir, 0o755);
    chmodSync(keyFiles[0]!, 0o644);
    ActionStore.open(dir).close();
    expect(mode(dir)).toBe(0o700);
    expect(mode(keyFiles[0]!)).toBe(0o600);
  });
});

describe("ActionStore damage is reported, skipped, never fatal", () => {
  it("every single-byte flip of a segment is reported and the other segments still read", () => {
    const store = ActionStore.open(dir);
    const small = [rec(T0, "zebracode", "key", "zebracode:key:enter"), rec(T0 + 5, "zebracode", "click", "zebracode:click")];
    for (const r of small) store.append(r);
    store.flush();
    const [victim] = segFiles(dir);
    for (const r of sample().slice(0, 30)) store.append(r);
    store.flush();
    const others = store.read().records.length - 2;
    const original = readFileSync(victim!);
    const reasons = new Set<string>();
    for (let i = 0; i < original.length; i++) {
      const bad = Buffer.from(original);
      bad[i]! ^= 1 << i % 8;
      writeFileSync(victim!, bad);
      const { records, problems } = store.read();
      expect(problems, `byte ${i}`).toHaveLength(1);
      expect(problems[0]!.file).toBe(`segments/${victim!.split("/").pop()}`);
      reasons.add(problems[0]!.reason.split(":")[0]!);
      expect(records, `byte ${i}`).toHaveLength(others);
      expect(existsSync(victim!)).toBe(true); // reading never deletes
    }
    // magic, key id and box bytes each fail for their own, specific reason
    expect([...reasons].sort()).toEqual(["no key for this segment", "not a Tacit store segment (bad magic)", "segment failed authentication"].sort());
    writeFileSync(victim!, original);
    expect(store.read()).toEqual({ records: expect.arrayContaining(small), problems: [] });
  });

  it.each([
    ["truncated to 0 bytes", (b: Buffer) => b.subarray(0, 0), /bad magic/],
    ["truncated inside the header", (b: Buffer) => b.subarray(0, 30), /truncated/],
    ["truncated inside the box", (b: Buffer) => b.subarray(0, b.length - 7), /failed authentication/],
    ["one byte appended", (b: Buffer) => Buffer.concat([b, Buffer.from([0])]), /failed authentication/],
    ["random garbage", (b: Buffer) => Buffer.from(Array.from(b, (_, i) => (i * 131 + 7) & 0xff)), /bad magic/],
  ])("segment %s is reported and skipped", (_n, mangle, reason) => {
    const { store, records } = filled();
    const [victim, ...rest] = segFiles(dir);
    const victimCount = ActionStore.open(dir).read().records.length;
    writeFileSync(victim!, mangle(readFileSync(victim!)));
    const { records: got, problems } = store.read();
    expect(problems).toEqual([{ file: `segments/${victim!.split("/").pop()}`, reason: expect.stringMatching(reason) }]);
    expect(got.length).toBeLessThan(victimCount);
    expect(got.length).toBeGreaterThan(0);
    expect(rest.length).toBeGreaterThan(0);
    expect(records.length).toBe(victimCount);
    expect(existsSync(victim!)).toBe(true);
  });

  it("a missing or corrupt key file is reported for each of its segments; other days still read", () => {
    const { store } = filled(); // 81 records a day, several segments a day
    const keyFiles = readdirSync(join(dir, "keys")).filter((n) => n !== "master.key");
    const k = join(dir, "keys", keyFiles[0]!);
    const saved = readFileSync(k);
    const daySegments = (reason: RegExp): number => {
      const r = store.read();
      expect(r.records).toHaveLength(243 - 81); // exactly one day lost, the others intact
      for (const p of r.problems) {
        expect(p.file).toMatch(/^segments\/[0-9a-f]{32}\.seg$/);
        expect(p.reason).toMatch(reason);
      }
      return r.problems.length;
    };
    const flipped = Buffer.from(saved);
    flipped[40]! ^= 0x10;
    writeFileSync(k, flipped);
    const n = daySegments(/key file damaged or sealed under another master key/);
    expect(n).toBeGreaterThanOrEqual(2);
    writeFileSync(k, saved.subarray(0, 10));
    expect(daySegments(/key file damaged: 10 bytes/)).toBe(n);
    rmSync(k);
    expect(daySegments(/no key for this segment/)).toBe(n);
    expect(store.days()).toHaveLength(2);
    writeFileSync(k, saved);
    expect(store.read().problems).toEqual([]);
  });

  it("a leftover temp file from a crash mid-write is ignored", () => {
    const { store, records } = filled();
    const seg = segFiles(dir)[0]!;
    // what a crash between write and rename leaves: a complete or partial temp file
    writeFileSync(join(dir, "segments", ".tmp-0123456789abcdef0123456789abcdef.seg-aaaa"), readFileSync(seg).subarray(0, 50));
    writeFileSync(join(dir, "keys", ".tmp-deadbeef"), Buffer.alloc(7));
    const again = ActionStore.open(dir);
    expect(again.read()).toEqual({ records: [...records].sort((a, b) => a.at - b.at), problems: [] });
    expect(again.days()).toHaveLength(3);
    store.close();
  });
});

describe("ActionStore deletion", () => {
  it("deleteDay removes the day's segments and its key; an old copy of its segment stays unreadable", () => {
    const { store } = filled();
    const segsBefore = segFiles(dir);
    const keysBefore = readdirSync(join(dir, "keys")).length;
    const backup = segsBefore.map((s) => ({ name: s.split("/").pop()!, bytes: readFileSync(s) }));
    expect(store.deleteDay("2026-11-21")).toBe(81);
    expect(store.days()).toEqual(["2026-11-20", "2026-11-22"]);
    expect(readdirSync(join(dir, "keys")).length).toBe(keysBefore - 1);
    expect(store.read({ day: "2026-11-21" }).records).toEqual([]);
    expect(store.read().records).toHaveLength(162);
    // restore every old segment file (as from a backup): the deleted day's stay sealed
    for (const b of backup) writeFileSync(join(dir, "segments", b.name), b.bytes);
    const { records, problems } = store.read();
    expect(records).toHaveLength(162);
    expect(problems.length).toBeGreaterThan(0);
    for (const p of problems) expect(p.reason).toMatch(/no key for this segment/);
    // appending to the deleted day again starts a fresh key that cannot open the old copies
    store.append(rec(T0 + DAY + 5, "zebracode", "key", "zebracode:key:enter"));
    store.flush();
    const after = store.read();
    expect(after.records.filter((r) => r.at >= T0 + DAY && r.at < T0 + 2 * DAY)).toHaveLength(1);
    expect(after.problems.length).toBe(problems.length);
    for (const p of after.problems) expect(p.reason).toMatch(/failed authentication|no key|does not belong/);
    expect(() => store.deleteDay("21-11-2026")).toThrow(StoreError);
  });

  it("I4: what shredding does not cover, as README states: a whole-store copy taken before the delete, and delete --app", () => {
    const { store } = filled();
    store.close();
    const copy = join(dir, "..", "copy");
    cpSync(dir, copy, { recursive: true }); // a backup of the whole store: keys/ (master.key too) and segments/
    const live = ActionStore.open(dir);
    live.deleteDay("2026-11-21");
    // The day's key is gone from the live store, but the earlier copy carries its own key files.
    const fromCopy = ActionStore.open(copy).read({ day: "2026-11-21" });
    expect(fromCopy.problems).toEqual([]);
    expect(fromCopy.records).toHaveLength(81);
    // delete --app re-seals the kept records under the same day key and only unlinks the old
    // segments: an old copy of one, put back, opens again with the key still on the laptop.
    const oldSegs = segFiles(dir).map((s) => ({ name: s.split("/").pop()!, bytes: readFileSync(s) }));
    expect(live.deleteApp("zebracode")).toBe(40 + 2);
    expect(live.read().records.some((r) => r.app === "zebracode")).toBe(false);
    for (const b of oldSegs) writeFileSync(join(dir, "segments", b.name), b.bytes);
    expect(live.read().records.some((r) => r.app === "zebracode")).toBe(true);
    live.close();
    rmSync(copy, { recursive: true, force: true });
  });

  it("deleteDay also drops buffered records of that day", () => {
    const store = ActionStore.open(dir);
    store.append(rec(T0, "zebracode", "key", "zebracode:key:enter"));
    store.append(rec(T0 + DAY, "zebracode", "key", "zebracode:key:enter"));
    expect(store.deleteDay("2026-11-20")).toBe(1);
    store.close();
    expect(ActionStore.open(dir).read().records).toEqual([rec(T0 + DAY, "zebracode", "key", "zebracode:key:enter")]);
  });

  it("deleteApp rewrites segments without the app (and app-switch tokens naming it)", () => {
    const { store } = filled();
    store.append(rec(T0 + 5, "zebracode", "key", "zebracode:key:tab")); // buffered
    const before = segFiles(dir);
    expect(store.deleteApp("zebracode")).toBe(60 + 3 + 1);
    const { records, problems } = store.read();
    expect(problems).toEqual([]);
    expect(records).toHaveLength(243 - 63);
    expect(records.some((r) => r.app === "zebracode" || r.token.includes("zebracode"))).toBe(false);
    // rewritten segments are new files: the old ones are gone
    const after = segFiles(dir);
    expect(after.filter((f) => before.includes(f))).toEqual([]);
    for (const f of after) expect(readFileSync(f).includes(Buffer.from("zebracode"))).toBe(false);
    expect(store.deleteApp("nosuchapp")).toBe(0);
    expect(store.deleteApp("quokkaterm")).toBe(120);
    expect(store.deleteApp("wombatbrowser")).toBe(60);
    // nothing left: no days, and the day keys are gone too
    expect(store.days()).toEqual([]);
    expect(readdirSync(join(dir, "keys"))).toEqual(["master.key"]);
  });

  it("deleteAll removes every segment, temp file and key", () => {
    const { store } = filled();
    writeFileSync(join(dir, "segments", ".tmp-leftover"), "x");
    const oldMaster = readFileSync(join(dir, "keys", "master.key"));
    store.append(rec(T0, "zebracode", "key", "zebracode:key:enter"));
    store.deleteAll();
    expect(readdirSync(join(dir, "segments"))).toEqual([]);
    expect(readdirSync(join(dir, "keys"))).toEqual(["master.key"]);
    expect(readFileSync(join(dir, "keys", "master.key")).equals(oldMaster)).toBe(false);
    expect(store.read()).toEqual({ records: [], problems: [] });
    expect(store.days()).toEqual([]);
    // still usable afterwards
    store.append(rec(T0, "zebracode", "key", "zebracode:key:enter"));
    store.close();
    expect(ActionStore.open(dir).read().records).toHaveLength(1);
  });

  it("two handles on one store (daemon + CLI): a day deleted by one gets a fresh key in the other", () => {
    const daemon = ActionStore.open(dir);
    const cli = ActionStore.open(dir);
    daemon.append(rec(T0, "zebracode", "key", "zebracode:key:enter"));
    daemon.flush();
    expect(cli.deleteDay("2026-11-20")).toBe(1);
    daemon.append(rec(T0 + 1000, "zebracode", "key", "zebracode:key:tab"));
    daemon.flush(); // must not seal under the destroyed key (nobody could open it)
    expect(cli.read()).toEqual({ records: [rec(T0 + 1000, "zebracode", "key", "zebracode:key:tab")], problems: [] });
    daemon.close();
  });

  it("a damaged master key is set aside, not deleted; what it sealed is reported, new data works", () => {
    const { store } = filled();
    store.close();
    writeFileSync(join(dir, "keys", "master.key"), Buffer.alloc(5));
    const again = ActionStore.open(dir);
    expect(readdirSync(join(dir, "keys")).filter((n) => n.startsWith("master.key.damaged-"))).toHaveLength(1);
    const r = again.read();
    expect(r.records).toEqual([]);
    expect(r.problems.length).toBe(segFiles(dir).length);
    for (const p of r.problems) expect(p.reason).toMatch(/no key for this segment|sealed under another master key/);
    again.append(rec(T0, "zebracode", "key", "zebracode:key:enter"));
    again.flush();
    expect(again.read().records).toEqual([rec(T0, "zebracode", "key", "zebracode:key:enter")]);
  });

  it("a key file copied onto another day's id is refused", () => {
    const { store } = filled();
    const keys = readdirSync(join(dir, "keys")).filter((n) => n !== "master.key");
    copyFileSync(join(dir, "keys", keys[0]!), join(dir, "keys", keys[1]!));
    const { problems } = store.read();
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.some((p) => /does not belong/.test(p.reason))).toBe(true);
  });
});
