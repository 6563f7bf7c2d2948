/**
 * The one way Tacit replaces a file: write a temp file beside it, fsync it, rename it over the
 * old one, fsync the directory. A crash or a power loss leaves either the old file or the new
 * one, never a torn mix, and a rename that returned is on disk. `durable: false` skips both
 * fsyncs for files that are worthless after a crash (a status file rewritten every second).
 */
import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";

export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600, o: { durable?: boolean } = {}): void {
  const durable = o.durable !== false;
  // `.tmp-*`: readers that list a directory (the client store) skip what a crash left behind.
  const tmp = join(dirname(path), `.tmp-${basename(path)}-${randomBytes(6).toString("hex")}`);
  try {
    writeFileSync(tmp, data, { mode });
    if (durable) fsyncPath(tmp, "r");
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  if (durable) fsyncPath(dirname(path), "r");
}

/** fsync of a file or directory by path (a directory's fsync makes a rename in it durable). */
export function fsyncPath(path: string, flags: "r" | "r+"): void {
  const fd = openSync(path, flags);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
