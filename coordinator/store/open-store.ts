/** Picks the DurableStore implementation named by a URL (TACIT_STORE_URL or the state dir default). */
import { fileURLToPath, pathToFileURL } from "node:url";
import { join, resolve } from "node:path";
import { DirectoryStore } from "./directory-store.ts";
import type { DurableStore } from "./durable-store.ts";

export class StoreUrlError extends Error {
  override name = "StoreUrlError";
}

/**
 * The embedded default: a directory inside the state dir, so one coordinator (and
 * `npm run simulate`) needs no setup. Several coordinators share one store by URL instead.
 */
export const defaultStoreUrl = (stateDir: string): string => pathToFileURL(join(resolve(stateDir), "store")).href;

/** The store named by `url` (TACIT_STORE_URL); `file:///dir` is the only scheme implemented. */
export function openDurableStore(url: string): DurableStore {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new StoreUrlError(`store URL ${JSON.stringify(url)} is not a URL (expected file:///path)`);
  }
  if (u.protocol === "file:") return new DirectoryStore(fileURLToPath(u));
  if (u.protocol === "s3:") throw new StoreUrlError("s3:// stores are not implemented yet (design note §3.2: PUT If-None-Match: *); use file:///shared/dir");
  throw new StoreUrlError(`store URL scheme ${u.protocol} is not supported (expected file:///path)`);
}

