/**
 * The coordinator's durable, shared storage (design note §3.2): commit records, attempt outcomes,
 * ledger segments and checkpoints. Every write of a decision is `putIfAbsent`: the first writer
 * of a key wins and every later one is told so. That is the fencing the coordinators' safety
 * rests on — a coordinator that was paused past its lease and wakes up loses every race it
 * enters, so it can never overwrite what its successor decided (Kleppmann, "How to do
 * distributed locking", 2016: the storage, not the lock holder, must refuse the stale write).
 *
 * Implementations: a directory (directory-store.ts; local disk or NFS, the embedded default)
 * and an S3-compatible object store (s3-store.ts: PUT with `If-None-Match: *`, 412 = the write
 * lost; GET; LIST with a prefix). Both pass one contract suite (test/durable-store.test.ts).
 */
export interface DurableStore {
  /** Where the store lives, for logs and `tacit verify`. */
  readonly url: string;
  /** Writes `bytes` at `key` unless the key exists. True: written (durably); false: someone else's value is there. */
  putIfAbsent(key: string, bytes: Uint8Array): Promise<boolean>;
  /** The bytes at `key`, or undefined. */
  get(key: string): Promise<Buffer | undefined>;
  /** Every key that starts with `prefix`, sorted. */
  list(prefix: string): Promise<string[]>;
  /** Local directory of the store, when it has one (checkpoints are still tfjs directories). */
  readonly localRoot?: string | undefined;
  /** Checks, before anything is served from the store, that put-if-absent really fences (S3: the server honours If-None-Match). */
  probe?(): Promise<void>;
  /** Releases connections (S3). */
  close?(): void;
}

/** Keys are relative paths of plain segments: never absolute, never `..`, nothing hidden. */
export function checkKey(key: string): void {
  if (!/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(key) || key.split("/").some((s) => s === "." || s === ".." || s.startsWith("."))) {
    throw new Error(`invalid store key ${JSON.stringify(key)}`);
  }
}

/** JSON put-if-absent; false when the key already held a value. */
export async function putJsonIfAbsent(store: DurableStore, key: string, value: unknown): Promise<boolean> {
  return store.putIfAbsent(key, Buffer.from(JSON.stringify(value) + "\n"));
}

export async function getJson<T>(store: DurableStore, key: string): Promise<T | undefined> {
  const b = await store.get(key);
  return b ? (JSON.parse(b.toString("utf8")) as T) : undefined;
}
