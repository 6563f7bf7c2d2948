/**
 * DurableStore on a directory (local disk, or NFS shared by several coordinators).
 *
 * putIfAbsent: write a temp file, fsync it, `link()` it to the final name — link fails with
 * EEXIST when the name exists, atomically, also on NFS (open(2), notes on O_EXCL) — then fsync
 * the directory so the new name survives a crash. A reader sees either no file or the whole one.
 */
import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, unlinkSync, writeSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { checkKey, type DurableStore } from "./durable-store.ts";

function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export class DirectoryStore implements DurableStore {
  readonly url: string;

  constructor(readonly localRoot: string) {
    this.url = pathToFileURL(localRoot).href;
  }

  private path(key: string): string {
    checkKey(key);
    return join(this.localRoot, key);
  }

  async putIfAbsent(key: string, bytes: Uint8Array): Promise<boolean> {
    const final = this.path(key);
    const dir = dirname(final);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = join(dir, `.tmp-${process.pid}-${randomBytes(6).toString("hex")}`);
    const fd = openSync(tmp, "wx", 0o644);
    try {
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, final);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw err;
    } finally {
      unlinkSync(tmp);
    }
    fsyncDir(dir);
    return true;
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      return readFileSync(this.path(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  async list(prefix: string): Promise<string[]> {
    // The directory part of the prefix is walked; the rest filters names.
    const cut = prefix.lastIndexOf("/");
    const base = cut >= 0 ? prefix.slice(0, cut) : "";
    if (base) checkKey(base);
    const out: string[] = [];
    const walk = (dir: string): void => {
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
        throw err;
      }
      for (const n of names) {
        if (n.startsWith(".")) continue; // temp files of writes in progress
        const p = join(dir, n);
        const key = relative(this.localRoot, p).split(sep).join("/");
        if (statSync(p).isDirectory()) walk(p);
        else if (key.startsWith(prefix)) out.push(key);
      }
    };
    walk(base ? join(this.localRoot, base) : this.localRoot);
    return out.sort();
  }
}
