/**
 * Atomic replacement of a small file: write a temp file beside it, fsync, rename. A crash
 * leaves either the old file or the new one, never a torn mix.
 */
import { closeSync, fsyncSync, openSync, renameSync, writeFileSync } from "node:fs";

export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600, o: { durable?: boolean } = {}): void {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  writeFileSync(tmp, data, { mode });
  if (o.durable !== false) {
    const fd = openSync(tmp, "r");
    fsyncSync(fd);
    closeSync(fd);
  }
  renameSync(tmp, path);
}
