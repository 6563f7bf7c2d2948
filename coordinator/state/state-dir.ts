/**
 * The coordinator's state dir (default ./tacit-state): its ed25519 signing key, the keys of
 * the principals allowed to call it (ML team operators, privacy reviewers), checkpoints, the
 * ledger and the embedded Redis data. Key files are 0600, the dir 0700.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { writeFileAtomic } from "../../shared/fs/write-file-atomic.ts";
import { join, resolve } from "node:path";
import { z } from "zod";
import { generateEd25519, privateKeyFromPem, privateKeyToPem, type Ed25519KeyPair } from "../../shared/crypto/index.ts";
import { ensureTls } from "./tls.ts";
import { weakIdentityKeyReason } from "./identity-key-check.ts";

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
 * A reviewer's public key as `tacit privacy keygen` writes it (reviewer.pub: base64 of the 32
 * raw ed25519 bytes), checked like an identity key: a small-order key would let anyone sign
 * policies as the reviewer.
 */
export function parseReviewerPublicKey(text: string, source: string): string {
  const raw = Buffer.from(text.trim(), "base64");
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text.trim())) throw new StateDirError(`${source}: expected the base64 public key that \`tacit privacy keygen\` writes to reviewer.pub`);
  const weak = weakIdentityKeyReason(raw);
  if (weak) throw new StateDirError(`${source}: ${weak.replace("identity public key", "reviewer public key")}`);
  return raw.toString("base64");
}

/**
 * Creates the state dir if needed: TLS CA and server certificate, the coordinator signing key,
 * and ML-team and admin key pairs whose private halves are written to keys/ for the operator to
 * hand out (and delete).
 *
 * The reviewer checks the operators, so the reviewer's private key should never exist on their
 * host: with `reviewerKeys` (public keys from `tacit privacy keygen`) only those are registered,
 * as reviewer-1, reviewer-2, …, also on an existing state dir (a key already registered is
 * skipped). Without them a reviewer key pair is generated into keys/ as for the other roles:
 * convenient for a development setup, and no separation of duties.
 */
export function initCoordinatorState(stateDir: string, extraTlsNames: string[] = [], reviewerKeys: readonly string[] = []): InitResult {
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
    const generated = reviewerKeys.length > 0 ? (["ml-team", "admin"] as const) : (["ml-team", "reviewer", "admin"] as const);
    for (const role of generated) {
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
  const principals = loadPrincipals(paths);
  const fresh = [...new Set(reviewerKeys)].filter((k) => !principals.some((p) => p.publicKey === k));
  if (fresh.length > 0) {
    let n = principals.filter((p) => p.role === "reviewer").length;
    for (const publicKey of fresh) {
      while (principals.some((p) => p.keyId === `reviewer-${n + 1}`)) n++;
      principals.push({ keyId: `reviewer-${++n}`, role: "reviewer", publicKey });
    }
    writeFileAtomic(paths.principals, JSON.stringify(principals, null, 2) + "\n");
    if (!created.includes(paths.principals)) created.push(paths.principals);
  }
  if (!existsSync(paths.registryKey)) {
    loadRegistryKey(paths);
    created.push(paths.registryKey);
  }
  created.push(...ensureTls(paths.root, extraTlsNames));
  return { paths, created };
}

/**
 * Checked each time a coordinator starts on an existing state dir (`init` sets 0700, but a dir
 * made by hand, restored from a backup or chmod-ed later never passed through it). Returns the
 * mode it had when it was wider than 0700 and has just been narrowed, for the caller to log.
 *
 * Two cases, on purpose. A root other users could only read or enter (0755, 0750) is fixed:
 * the private keys are 0600 files, so what was open to them is the ledger, checkpoints and
 * certificates, and refusing would only make the operator type the same chmod. A root other
 * users could write (0775, 0777) is refused, as sshd and PostgreSQL refuse theirs: anyone
 * could have replaced principals.json or a key file in it, so quietly tightening the mode and
 * then trusting what the dir holds would hide exactly the tampering the mode allowed.
 */
export function secureStateRoot(root: string): number | undefined {
  const mode = statSync(root).mode & 0o777;
  if ((mode & 0o077) === 0) return undefined;
  const shown = mode.toString(8).padStart(4, "0");
  if ((mode & 0o022) !== 0) {
    throw new StateDirError(
      `${root} is writable by other users (mode ${shown}): they could have replaced its keys or principals.json. Check its contents, then \`chmod 700 ${root}\``,
    );
  }
  try {
    chmodSync(root, mode & 0o700);
  } catch (err) {
    throw new StateDirError(`${root} is readable by other users (mode ${shown}) and cannot be made 0700: ${(err as Error).message}`);
  }
  return mode;
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
