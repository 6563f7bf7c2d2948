/**
 * The store's keys: one random 32-byte data key per UTC day, so deleting a day destroys its key
 * and every copy of that day's segments (backups, an old disk image) becomes unreadable.
 *
 * Layout of `keys/` (0700; files 0600):
 *   master.key     32 random bytes. It never encrypts actions: it only names and seals key files.
 *   <keyId>.key    "TKY1" | nonce(24) | secretbox_master(day(10 ascii) | dataKey(32))
 * keyId = first 16 bytes of HMAC-SHA256(master, "tacit/store/day/v1|" + day), in hex.
 *
 * Why this choice (over a sealed index): the day → key lookup needs no mutable index that could
 * be torn or lost — a flush derives the file name from the day, a reader derives nothing and
 * finds the key by the id stored in the segment header. File names are opaque without the
 * master key. Sealing the key file under the master key binds the day to its key (a key file
 * renamed onto another day's id is refused) and turns a flipped byte into a clear "key file
 * damaged" instead of a silent wrong key. The data keys themselves are random, not derived from
 * the master key, so once a key file is gone no master key can bring the day back.
 */
import { createHmac, randomBytes } from "node:crypto";
import { chmodSync, existsSync, linkSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import nacl from "tweetnacl";
import { writeBytesDurably, ensurePrivateDir, fsyncDir, shredFile } from "./durable-file.ts";

const KEY_MAGIC = Buffer.from("TKY1", "ascii");
const MASTER_FILE = "master.key";
export const KEY_ID_BYTES = 16;
const keyFileName = /^([0-9a-f]{32})\.key$/;

export type KeyLookup = { ok: true; day: string; key: Uint8Array } | { ok: false; file: string; reason: string };

export class KeyRing {
  private masterKey: Uint8Array;

  constructor(readonly dir: string) {
    ensurePrivateDir(dir);
    // Keys readable by other users (a careless copy or chmod) are made private again.
    for (const n of readdirSync(dir)) {
      const p = join(dir, n);
      const st = statSync(p);
      if (st.isFile() && st.mode & 0o077) chmodSync(p, 0o600);
    }
    this.masterKey = this.loadOrCreateMaster();
  }

  keyIdFor(day: string): string {
    return createHmac("sha256", this.masterKey).update(`tacit/store/day/v1|${day}`).digest().subarray(0, KEY_ID_BYTES).toString("hex");
  }

  keyFile(keyId: string): string {
    return join(this.dir, `${keyId}.key`);
  }

  /** The day's data key, created (exclusively: a concurrent creator's key wins) if absent. */
  dataKeyForWrite(day: string): { keyId: string; key: Uint8Array } {
    const keyId = this.keyIdFor(day);
    const file = this.keyFile(keyId);
    if (!existsSync(file)) {
      const key = nacl.randomBytes(32);
      const nonce = nacl.randomBytes(nacl.secretbox.nonceLength);
      const plain = Buffer.concat([Buffer.from(day, "ascii"), key]);
      const sealed = Buffer.concat([KEY_MAGIC, nonce, nacl.secretbox(plain, nonce, this.masterKey)]);
      if (this.createExclusive(file, sealed)) return { keyId, key };
    }
    const found = this.load(keyId);
    if (!found.ok) throw new Error(`${found.file}: ${found.reason}`);
    if (found.day !== day) throw new Error(`${file}: key file belongs to another day`);
    return { keyId, key: found.key };
  }

  /** Loads a key by the id a segment header names; never throws, never deletes. */
  load(keyId: string): KeyLookup {
    const file = this.keyFile(keyId);
    const rel = `keys/${keyId}.key`;
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return { ok: false, file: rel, reason: "no key for this segment: its day was deleted, or the key file is missing" };
      return { ok: false, file: rel, reason: `key file unreadable (${(err as NodeJS.ErrnoException).code ?? "error"})` };
    }
    const head = KEY_MAGIC.length + nacl.secretbox.nonceLength;
    if (bytes.length !== head + nacl.secretbox.overheadLength + 10 + 32) return { ok: false, file: rel, reason: `key file damaged: ${bytes.length} bytes, expected ${head + nacl.secretbox.overheadLength + 42}` };
    if (!bytes.subarray(0, KEY_MAGIC.length).equals(KEY_MAGIC)) return { ok: false, file: rel, reason: "key file damaged: bad magic" };
    const plain = nacl.secretbox.open(bytes.subarray(head), bytes.subarray(KEY_MAGIC.length, head), this.masterKey);
    if (!plain) return { ok: false, file: rel, reason: "key file damaged or sealed under another master key (authentication failed)" };
    const day = Buffer.from(plain.subarray(0, 10)).toString("ascii");
    if (this.keyIdFor(day) !== keyId) return { ok: false, file: rel, reason: "key file does not belong to the id it is stored under" };
    return { ok: true, day, key: plain.subarray(10) };
  }

  /** Ids of every key file present (whether readable or not). */
  ids(): string[] {
    return readdirSync(this.dir).flatMap((n) => {
      const m = keyFileName.exec(n);
      return m ? [m[1]!] : [];
    });
  }

  /** Destroys the day's key; true if there was one. */
  destroy(day: string): boolean {
    const file = this.keyFile(this.keyIdFor(day));
    if (!existsSync(file)) return false;
    shredFile(file);
    fsyncDir(this.dir);
    return true;
  }

  /** Destroys every key file and the master key, then starts a fresh master key. */
  destroyAll(): void {
    for (const n of readdirSync(this.dir)) {
      const p = join(this.dir, n);
      if (statSync(p).isFile()) shredFile(p);
      else rmSync(p, { recursive: true, force: true });
    }
    fsyncDir(this.dir);
    this.masterKey = this.loadOrCreateMaster();
  }

  private loadOrCreateMaster(): Uint8Array {
    const file = join(this.dir, MASTER_FILE);
    if (!existsSync(file)) this.createExclusive(file, randomBytes(32));
    const bytes = readFileSync(file);
    if (bytes.length !== 32) {
      // A damaged master key cannot be repaired; replacing it makes existing key files report
      // "sealed under another master key" on read instead of stopping capture for good. The
      // damaged file is kept aside (not deleted): opening a store never destroys anything.
      renameSync(file, join(this.dir, `master.key.damaged-${Date.now()}`));
      this.createExclusive(file, randomBytes(32));
      return new Uint8Array(readFileSync(file));
    }
    return new Uint8Array(bytes);
  }

  /** Writes a new file durably and links it into place only if nothing is there yet. */
  private createExclusive(file: string, data: Uint8Array): boolean {
    const tmp = join(this.dir, `.tmp-${randomBytes(8).toString("hex")}`);
    writeBytesDurably(tmp, data);
    try {
      linkSync(tmp, file);
      fsyncDir(this.dir);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw err;
    } finally {
      unlinkSync(tmp);
    }
  }
}
