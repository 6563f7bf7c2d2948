/**
 * Device enrollment in Redis: single-use enrollment tokens (stored only as their SHA-256,
 * with a TTL; consumed atomically with GETDEL so a token can never enroll twice) and the
 * registered devices with their ed25519 identity keys.
 *
 * Redis is not trusted with admission: every token and device record carries an HMAC under a
 * key kept in the coordinator's state dir (registry.key, 0600), never in Redis. Whoever can
 * write to Redis can delete records (stop enrollments and devices), but cannot plant a token
 * or a device the coordinator will accept.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Redis } from "ioredis";
import { canonicalJson } from "../../shared/crypto/index.ts";
import { weakIdentityKeyReason } from "./identity-key-check.ts";

const TOKEN_PREFIX = "tacit:enroll-token:";
const DEVICES = "tacit:devices";

export interface DeviceRecord {
  deviceId: string;
  identityPublicKey: string; // base64 raw ed25519
  label: string;
  enrolledAt: number;
  /** The principal whose token enrolled this device, and that token's label. */
  creator: string;
  tokenLabel: string;
}

export interface TokenRecord {
  /** First 16 hex digits of the token's SHA-256: names it in the ledger without revealing it. */
  tokenId: string;
  label: string;
  creator: string;
  createdAt: number;
  expiresAt: number;
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

const TOKEN_INVALID = "enrollment token is unknown, expired or already used: ask the admin for a new one (`tacit coordinator token create`)";

function tokenHash(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

export function deviceIdFor(identityPublicKey: Uint8Array): string {
  return "dev-" + createHash("sha256").update(identityPublicKey).digest("hex").slice(0, 20);
}

/** SHA-256 of the raw identity key, hex: the fingerprint the ledger records at enrollment. */
export function keyFingerprint(identityPublicKey: Uint8Array): string {
  return createHash("sha256").update(identityPublicKey).digest("hex");
}

export class DeviceRegistry {
  constructor(
    private readonly redis: Redis,
    private readonly macKey: Uint8Array,
  ) {
    if (macKey.length < 32) throw new Error("registry MAC key must be at least 32 bytes");
  }

  private mac(kind: string, value: object): string {
    return createHmac("sha256", this.macKey).update(`tacit-registry-v1\n${kind}\n${canonicalJson(value)}`).digest("base64");
  }

  /** Parses a stored `{ ...record, mac }` and returns the record only if its MAC verifies. */
  private open<T extends object>(kind: string, raw: string | null): T | undefined {
    if (!raw) return undefined;
    let parsed: (T & { mac?: unknown }) | undefined;
    try {
      parsed = JSON.parse(raw) as T & { mac?: unknown };
    } catch {
      return undefined;
    }
    const { mac, ...rec } = parsed;
    if (typeof mac !== "string") return undefined;
    const want = Buffer.from(this.mac(kind, rec));
    const got = Buffer.from(mac);
    return want.length === got.length && timingSafeEqual(want, got) ? (rec as T) : undefined;
  }

  private seal(kind: string, rec: object): string {
    return JSON.stringify({ ...rec, mac: this.mac(kind, rec) });
  }

  async createToken(ttlSeconds: number, label: string, creator: string): Promise<{ token: string; record: TokenRecord }> {
    const token = "tt_" + randomBytes(24).toString("base64url");
    const hash = tokenHash(token);
    const now = Date.now();
    const record: TokenRecord = { tokenId: hash.slice(0, 16), label, creator, createdAt: now, expiresAt: now + ttlSeconds * 1000 };
    await this.redis.set(TOKEN_PREFIX + hash, this.seal(`token:${hash}`, record), "EX", ttlSeconds);
    return { token, record };
  }

  async enroll(token: string, identityPublicKey: Uint8Array, label: string): Promise<{ device: DeviceRecord; token: TokenRecord }> {
    const weak = weakIdentityKeyReason(identityPublicKey);
    if (weak) throw new EnrollmentError("BAD_KEY", weak);
    const deviceId = deviceIdFor(identityPublicKey);
    // Checked before the token is consumed, so a refused re-enrollment keeps its token.
    if (await this.get(deviceId)) {
      throw new EnrollmentError("ALREADY_ENROLLED", `device ${deviceId} is already enrolled`);
    }
    const hash = tokenHash(token);
    const raw = await this.redis.getdel(TOKEN_PREFIX + hash);
    const tok = this.open<TokenRecord>(`token:${hash}`, raw);
    if (!tok || tok.expiresAt < Date.now()) throw new EnrollmentError("TOKEN_INVALID", TOKEN_INVALID);
    const device: DeviceRecord = {
      deviceId,
      identityPublicKey: Buffer.from(identityPublicKey).toString("base64"),
      label: label.slice(0, 100),
      enrolledAt: Date.now(),
      creator: tok.creator,
      tokenLabel: tok.label,
    };
    const sealed = this.seal(`device:${deviceId}`, device);
    if ((await this.redis.hsetnx(DEVICES, deviceId, sealed)) === 0) {
      if (await this.get(deviceId)) {
        // Lost a race with a concurrent enrollment of the same key: give the token back.
        await this.redis.set(TOKEN_PREFIX + hash, raw!, "PXAT", tok.expiresAt);
        throw new EnrollmentError("ALREADY_ENROLLED", `device ${deviceId} is already enrolled`);
      }
      await this.redis.hset(DEVICES, deviceId, sealed); // replaces a record planted through Redis
    }
    return { device, token: tok };
  }

  /** The enrolled device, or undefined when unknown or when its record was not written by this coordinator. */
  async get(deviceId: string): Promise<DeviceRecord | undefined> {
    const rec = this.open<DeviceRecord>(`device:${deviceId}`, await this.redis.hget(DEVICES, deviceId));
    return rec && rec.deviceId === deviceId ? rec : undefined;
  }

  async remove(deviceId: string): Promise<boolean> {
    return (await this.redis.hdel(DEVICES, deviceId)) === 1;
  }

  async count(): Promise<number> {
    return this.redis.hlen(DEVICES);
  }
}
