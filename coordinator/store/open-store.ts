/** Picks the DurableStore implementation named by a URL (TACIT_STORE_URL or the state dir default). */
import { fileURLToPath, pathToFileURL } from "node:url";
import { join, resolve } from "node:path";
import { DirectoryStore } from "./directory-store.ts";
import type { DurableStore } from "./durable-store.ts";
import { S3Store, s3LocationFromUrl } from "./s3-store.ts";

export class StoreUrlError extends Error {
  override name = "StoreUrlError";
}

/**
 * The embedded default: a directory inside the state dir, so one coordinator (and
 * `npm run simulate`) needs no setup. Several coordinators share one store by URL instead.
 */
export const defaultStoreUrl = (stateDir: string): string => pathToFileURL(join(resolve(stateDir), "store")).href;

/**
 * The store named by `url` (TACIT_STORE_URL): `file:///dir` or `s3://bucket/prefix` (S3's
 * endpoint, region and credentials from `env`, see s3-store.ts). Opening contacts nothing;
 * `openCheckedStore` also proves the store fences writers before it is used.
 */
export function openDurableStore(url: string, env: NodeJS.ProcessEnv = process.env): DurableStore {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new StoreUrlError(`store URL ${JSON.stringify(url)} is not a URL (expected file:///path or s3://bucket/prefix)`);
  }
  if (u.protocol === "file:") return new DirectoryStore(fileURLToPath(u));
  if (u.protocol === "s3:") return new S3Store(s3LocationFromUrl(u, env));
  throw new StoreUrlError(`store URL scheme ${u.protocol} is not supported (expected file:///path or s3://bucket/prefix)`);
}

/** `openDurableStore`, then the store's own probe (S3: a server without conditional writes is refused). */
export async function openCheckedStore(url: string, env: NodeJS.ProcessEnv = process.env): Promise<DurableStore> {
  const store = openDurableStore(url, env);
  try {
    await store.probe?.();
  } catch (err) {
    store.close?.();
    throw err;
  }
  return store;
}
