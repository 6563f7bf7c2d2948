/**
 * The coordinator's state dir (default ./tacit-state): its ed25519 signing key, the keys of
 * the principals allowed to call it (ML team operators, privacy reviewers), checkpoints, the
 * ledger and the embedded Redis data. Key files are 0600, the dir 0700.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { writeFileAtomic } from "../../shared/fs/write-file-atomic.ts";
import { join, resolve } from "node:path";
import { z } from "zod";
import { generateEd25519, privateKeyFromPem, privateKeyToPem, type Ed25519KeyPair } from "../../shared/crypto/index.ts";
import { ensureTls } from "./tls.ts";

export const DEFAULT_COORDINATOR_STATE_DIR = "./tacit-state";

export type Role = "device" | "ml-team" | "reviewer" | "admin";

const principalsSchema = z.array(
  z.object({ keyId: z.string().regex(/^[\w.:-]{1,128}$/), role: z.enum(["ml-team", "reviewer", "admin"]), publicKey: z.string() }).strict(),
);
export type Principal = z.infer<typeof principalsSchema>[number];

export class StateDirError extends Error {
  override name = "StateDirError";
}

export interface CoordinatorPaths {
  root: string;
  signingKey: string;
  principals: string;
  checkpoints: string;
  ledger: string;
  policy: string;
  redisData: string;
  keysOut: string;
  /** HMAC key that seals enrollment tokens and device records stored in Redis (never stored there). */
  registryKey: string;
}

export function coordinatorPaths(stateDir: string): CoordinatorPaths {
  const root = resolve(stateDir);
  return {
    root,
    signingKey: join(root, "coordinator.key"),
    principals: join(root, "principals.json"),
    checkpoints: join(root, "checkpoints"),
    ledger: join(root, "ledger.jsonl"),
    policy: join(root, "policy.json"),
    redisData: join(root, "redis"),
    keysOut: join(root, "keys"),
    registryKey: join(root, "registry.key"),
  };
}

/** The coordinator's files are replaced the one atomic, durable way (shared/fs). */
export { writeFileAtomic };

export interface InitResult {
  paths: CoordinatorPaths;
  created: string[];
}

/**
 * Creates the state dir if needed: TLS CA and server certificate, the coordinator signing key,
 * and one ML-team, reviewer and admin key pair whose private halves are written to keys/ for
 * the operator to hand out (and delete).
 */
export function initCoordinatorState(stateDir: string, extraTlsNames: string[] = []): InitResult {
  const paths = coordinatorPaths(stateDir);
  const created: string[] = [];
  mkdirSync(paths.root, { recursive: true, mode: 0o700 });
  chmodSync(paths.root, 0o700);
  mkdirSync(paths.checkpoints, { recursive: true, mode: 0o700 });
  mkdirSync(paths.keysOut, { recursive: true, mode: 0o700 });
  if (!existsSync(paths.signingKey)) {
    writeFileAtomic(paths.signingKey, privateKeyToPem(generateEd25519().privateKey));
    created.push(paths.signingKey);
  }
  if (!existsSync(paths.principals)) {
    const principals: Principal[] = [];
    for (const role of ["ml-team", "reviewer", "admin"] as const) {
      const kp = generateEd25519();
      const keyId = `${role}-1`;
      const file = join(paths.keysOut, `${keyId}.key`);
      writeFileAtomic(file, privateKeyToPem(kp.privateKey));
      created.push(file);
      principals.push({ keyId, role, publicKey: Buffer.from(kp.publicRaw).toString("base64") });
    }
    writeFileAtomic(paths.principals, JSON.stringify(principals, null, 2) + "\n");
    created.push(paths.principals);
  }
  if (!existsSync(paths.registryKey)) {
    loadRegistryKey(paths);
    created.push(paths.registryKey);
  }
  created.push(...ensureTls(paths.root, extraTlsNames));
  return { paths, created };
}

export function loadSigningKey(paths: CoordinatorPaths): Ed25519KeyPair {
  if (!existsSync(paths.signingKey)) {
    throw new StateDirError(`no coordinator key at ${paths.signingKey}: run \`tacit coordinator init --state-dir ${paths.root}\` first`);
  }
  return privateKeyFromPem(readFileSync(paths.signingKey, "utf8"), `coordinator key ${paths.signingKey}`);
}

/** The registry's HMAC key; created (0600) on first use, so state dirs from older versions get one. */
export function loadRegistryKey(paths: CoordinatorPaths): Uint8Array {
  if (!existsSync(paths.registryKey)) writeFileAtomic(paths.registryKey, randomBytes(32).toString("base64") + "\n");
  const key = Buffer.from(readFileSync(paths.registryKey, "utf8").trim(), "base64");
  if (key.length < 32) throw new StateDirError(`${paths.registryKey} must hold at least 32 random bytes (base64)`);
  return key;
}

export function loadPrincipals(paths: CoordinatorPaths): Principal[] {
  if (!existsSync(paths.principals)) return [];
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(paths.principals, "utf8"));
  } catch (err) {
    throw new StateDirError(`${paths.principals} is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = principalsSchema.safeParse(raw);
  if (!parsed.success) throw new StateDirError(`${paths.principals}: ${parsed.error.issues[0]?.message ?? "invalid"}`);
  return parsed.data;
}
