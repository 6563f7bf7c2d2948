/** The one atomic file replacement (shared/fs/write-file-atomic.ts). */
import { describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeFileAtomic } from "../shared/fs/write-file-atomic.ts";

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
});
