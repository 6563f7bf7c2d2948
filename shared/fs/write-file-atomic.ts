/**
 * The one way Tacit replaces a file: write a temp file beside it, fsync it, rename it over the
 * old one, fsync the directory. A crash or a power loss leaves either the old file or the new
 * one, never a torn mix, and a rename that returned is on disk. `durable: false` skips both
 * fsyncs for files that are worthless after a crash (a status file rewritten every second).
 */
import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";

export interface AtomicWriteOptions {
  /** false: no fsyncs (a status file rewritten every second). */
  durable?: boolean;
  /** The temp name's suffix; random (96 bits) unless a test pins it to plant something there. */
  tempSuffix?: string;
}

/** The temp file writeFileAtomic uses for `path` (`.tmp-*`: directory readers skip leftovers). */
export function atomicTempPath(path: string, suffix: string = randomBytes(12).toString("hex")): string {
  return join(dirname(path), `.tmp-${basename(path)}-${suffix}`);
}

export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600, o: AtomicWriteOptions = {}): void {
  const durable = o.durable !== false;
  const tmp = atomicTempPath(path, o.tempSuffix);
  // O_CREAT|O_EXCL ("wx"): a file or symlink planted at the temp name (I5) makes the open fail
  // with EEXIST; it is never followed, truncated or written, and it is left where it is.
  const fd = openSync(tmp, "wx", mode);
  try {
    try {
      writeFileSync(fd, data);
      if (durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true }); // our own temp file: the open above created it
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
