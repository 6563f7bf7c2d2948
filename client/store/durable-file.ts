/**
 * The few file operations the store needs to survive a crash at any instant: write to a temp
 * file, fsync, rename over (or link into) the final name, fsync the directory. A reader only
 * ever sees a complete old file or a complete new one; a crash leaves at most a `.tmp-*` file,
 * which readers ignore.
 */
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, statSync, unlinkSync, writeSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { fsyncPath, writeFileAtomic } from "../../shared/fs/write-file-atomic.ts";

export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

export function fsyncDir(dir: string): void {
  fsyncPath(dir, "r");
}

/** Creates `path` (which must not exist) 0600 with `data`, fsynced. */
export function writeBytesDurably(path: string, data: Uint8Array): void {
  const fd = openSync(path, "wx", 0o600);
  try {
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Atomically replaces `path` with `data`, 0600 (tmp + fsync + rename + fsync dir). */
export function replaceFileAtomic(path: string, data: Uint8Array): void {
  writeFileAtomic(path, data, 0o600);
}

/**
 * Overwrites a file with random bytes, fsyncs, then unlinks it. On a journaling or
 * copy-on-write file system, or an SSD, the old blocks may survive the overwrite; the point of
 * one key per day is that only 32 + 62 bytes ever need to disappear, not the day's segments.
 */
export function shredFile(path: string): void {
  try {
    const size = statSync(path).size;
    const fd = openSync(path, "r+");
    try {
      writeSync(fd, randomBytes(Math.max(size, 1)), 0, Math.max(size, 1), 0);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Unreadable or already gone: unlinking is all that is left to do.
  }
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}
