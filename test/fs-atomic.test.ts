/** The one atomic file replacement (shared/fs/write-file-atomic.ts). */
import { describe, expect, it } from "vitest";
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atomicTempPath, writeFileAtomic } from "../shared/fs/write-file-atomic.ts";

describe("writeFileAtomic", () => {
  it("replaces the whole file with the given mode and leaves no temp file", () => {
    const dir = mkdtempSync(join(tmpdir(), "tacit-atomic-"));
    const path = join(dir, "budget.json");
    writeFileAtomic(path, "old", 0o600);
    writeFileAtomic(path, new Uint8Array([110, 101, 119]), 0o640, { durable: true });
    expect(readFileSync(path, "utf8")).toBe("new");
    expect(statSync(path).mode & 0o777).toBe(0o640); // the new file comes with the mode asked for
    writeFileAtomic(join(dir, "fresh"), "x");
    expect(statSync(join(dir, "fresh")).mode & 0o777).toBe(0o600); // private unless asked otherwise
    expect(readdirSync(dir).sort()).toEqual(["budget.json", "fresh"]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("fails with the file untouched and no temp file when the rename cannot happen", () => {
    const dir = mkdtempSync(join(tmpdir(), "tacit-atomic-"));
    const path = join(dir, "target");
    mkdirSync(path); // a directory where the file should go: rename(2) refuses
    mkdirSync(join(path, "inside"));
    expect(() => writeFileAtomic(path, "data")).toThrow();
    expect(statSync(path).isDirectory()).toBe(true);
    expect(readdirSync(dir)).toEqual(["target"]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("I5: a symlink or file planted at the temp name is refused with EEXIST, never followed or overwritten", () => {
    const dir = mkdtempSync(join(tmpdir(), "tacit-atomic-"));
    const path = join(dir, "export.json");
    writeFileAtomic(path, "old");
    const victim = join(dir, "victim"); // what another user's symlink points at
    writeFileSync(victim, "victim's data");
    const planted = atomicTempPath(path, "planted");
    symlinkSync(victim, planted);
    expect(() => writeFileAtomic(path, "secret", 0o600, { tempSuffix: "planted" })).toThrow(/EEXIST/);
    expect(readFileSync(victim, "utf8")).toBe("victim's data"); // not followed
    expect(lstatSync(planted).isSymbolicLink()).toBe(true); // left alone, not removed
    expect(readlinkSync(planted)).toBe(victim);
    expect(readFileSync(path, "utf8")).toBe("old"); // nothing replaced
    rmSync(planted);
    writeFileSync(planted, "attacker's file", { mode: 0o666 }); // a plain file, open to its planter
    expect(() => writeFileAtomic(path, "secret", 0o600, { tempSuffix: "planted" })).toThrow(/EEXIST/);
    expect(readFileSync(planted, "utf8")).toBe("attacker's file"); // not truncated, not written
    expect(readFileSync(path, "utf8")).toBe("old");
    rmSync(dir, { recursive: true, force: true });
  });

  it("I5: the temp name carries 96 random bits, so nobody can plant at it in advance", () => {
    const names = new Set(Array.from({ length: 50 }, () => atomicTempPath("/d/f")));
    expect(names.size).toBe(50);
    for (const n of names) expect(n).toMatch(/^\/d\/\.tmp-f-[0-9a-f]{24}$/);
  });
});
