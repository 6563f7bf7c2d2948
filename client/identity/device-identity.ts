/**
 * The device's identity on its own laptop: an ed25519 key generated locally (never sent
 * anywhere but its public half), and the enrollment record (device id, coordinator address,
 * pinned CA, coordinator public key). Key file 0600 in a 0700 dir.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { writeFileAtomic } from "../../shared/fs/write-file-atomic.ts";
import { join } from "node:path";
import { z } from "zod";
import { generateEd25519, privateKeyFromPem, privateKeyToPem, KeyFormatError, type Ed25519KeyPair } from "../../shared/crypto/index.ts";

export class IdentityError extends Error {
  override name = "IdentityError";
}

const enrollmentSchema = z
  .object({
    deviceId: z.string().regex(/^dev-[0-9a-f]{20}$/),
    coordinator: z.string().min(1),
    caFile: z.string().min(1),
    coordinatorPublicKey: z.string(),
    enrolledAt: z.number(),
  })
  .strict();
export type EnrollmentRecord = z.infer<typeof enrollmentSchema>;

export interface IdentityPaths {
  dir: string;
  key: string;
  enrollment: string;
  ca: string;
}

export function identityPaths(stateDir: string): IdentityPaths {
  const dir = join(stateDir, "identity");
  return { dir, key: join(dir, "device.key"), enrollment: join(dir, "enrollment.json"), ca: join(dir, "coordinator-ca.pem") };
}

function writeSecret(path: string, data: string): void {
  writeFileAtomic(path, data, 0o600);
}

/** Generates the identity key if none exists yet; returns it. */
export function ensureIdentity(stateDir: string): Ed25519KeyPair {
  const p = identityPaths(stateDir);
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  chmodSync(p.dir, 0o700);
  if (existsSync(p.key)) return loadIdentity(stateDir);
  const kp = generateEd25519();
  writeSecret(p.key, privateKeyToPem(kp.privateKey));
  return kp;
}

export function loadIdentity(stateDir: string): Ed25519KeyPair {
  const p = identityPaths(stateDir);
  if (!existsSync(p.key)) throw new IdentityError(`this laptop is not enrolled (no ${p.key}): run \`tacit client enroll\``);
  const mode = statSync(p.key).mode & 0o777;
  if (mode & 0o077) throw new IdentityError(`${p.key} is readable by other users (mode ${mode.toString(8)}): run \`chmod 600 ${p.key}\``);
  try {
    return privateKeyFromPem(readFileSync(p.key, "utf8"), p.key);
  } catch (err) {
    if (err instanceof KeyFormatError) throw new IdentityError(`the device key ${p.key} is corrupted: withdraw and enroll again (\`tacit client withdraw --local-only\`, then \`tacit client enroll\`)`);
    throw err;
  }
}

export function saveEnrollment(stateDir: string, rec: EnrollmentRecord, caPem: Buffer): void {
  const p = identityPaths(stateDir);
  writeSecret(p.ca, caPem.toString("utf8"));
  writeSecret(p.enrollment, JSON.stringify({ ...rec, caFile: p.ca }, null, 2) + "\n");
}

export function loadEnrollment(stateDir: string): EnrollmentRecord {
  const p = identityPaths(stateDir);
  if (!existsSync(p.enrollment)) throw new IdentityError(`this laptop is not enrolled: run \`tacit client enroll --coordinator HOST:PORT --token TOKEN --ca FILE\``);
  const parsed = enrollmentSchema.safeParse(JSON.parse(readFileSync(p.enrollment, "utf8")));
  if (!parsed.success) throw new IdentityError(`${p.enrollment} is damaged: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

export function deleteIdentity(stateDir: string): void {
  rmSync(identityPaths(stateDir).dir, { recursive: true, force: true });
}
