/**
 * Device enrollment in Redis: single-use enrollment tokens (stored only as their SHA-256,
 * with a TTL; consumed atomically with GETDEL so a token can never enroll twice) and the
 * registered devices with their ed25519 identity keys.
 */
import { createHash, randomBytes } from "node:crypto";
import type { Redis } from "ioredis";

const TOKEN_PREFIX = "tacit:enroll-token:";
const DEVICES = "tacit:devices";

export interface DeviceRecord {
  deviceId: string;
  identityPublicKey: string; // base64 raw ed25519
  label: string;
  enrolledAt: number;
}

export class EnrollmentError extends Error {
  override name = "EnrollmentError";
  constructor(
    readonly code: "TOKEN_INVALID" | "ALREADY_ENROLLED" | "BAD_KEY",
    message: string,
  ) {
    super(message);
  }
}

function tokenKey(token: string): string {
  return TOKEN_PREFIX + createHash("sha256").update(token).digest("hex");
}

export function deviceIdFor(identityPublicKey: Uint8Array): string {
  return "dev-" + createHash("sha256").update(identityPublicKey).digest("hex").slice(0, 20);
}

export class DeviceRegistry {
  constructor(private readonly redis: Redis) {}

  async createToken(ttlSeconds: number, label: string): Promise<{ token: string; expiresAt: number }> {
    const token = "tt_" + randomBytes(24).toString("base64url");
    await this.redis.set(tokenKey(token), JSON.stringify({ label, createdAt: Date.now() }), "EX", ttlSeconds);
    return { token, expiresAt: Date.now() + ttlSeconds * 1000 };
  }

  async enroll(token: string, identityPublicKey: Uint8Array, label: string): Promise<DeviceRecord> {
    if (identityPublicKey.length !== 32) throw new EnrollmentError("BAD_KEY", "identity public key must be 32 raw ed25519 bytes");
    const consumed = await this.redis.getdel(tokenKey(token));
    if (consumed === null) {
      throw new EnrollmentError("TOKEN_INVALID", "enrollment token is unknown, expired or already used: ask the admin for a new one (`tacit coordinator token create`)");
    }
    const deviceId = deviceIdFor(identityPublicKey);
    const record: DeviceRecord = {
      deviceId,
      identityPublicKey: Buffer.from(identityPublicKey).toString("base64"),
      label: label.slice(0, 100),
      enrolledAt: Date.now(),
    };
    const added = await this.redis.hsetnx(DEVICES, deviceId, JSON.stringify(record));
    if (added === 0) throw new EnrollmentError("ALREADY_ENROLLED", `device ${deviceId} is already enrolled`);
    return record;
  }

  async get(deviceId: string): Promise<DeviceRecord | undefined> {
    const raw = await this.redis.hget(DEVICES, deviceId);
    return raw ? (JSON.parse(raw) as DeviceRecord) : undefined;
  }

  async remove(deviceId: string): Promise<boolean> {
    return (await this.redis.hdel(DEVICES, deviceId)) === 1;
  }

  async count(): Promise<number> {
    return this.redis.hlen(DEVICES);
  }
}
