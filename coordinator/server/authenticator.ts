/**
 * Authenticates every RPC from its signed metadata and enforces the role the RPC requires.
 * Devices are looked up in the registry; operators and reviewers in principals.json. Nonces
 * are remembered in Redis for twice the freshness window, so a replayed request is refused
 * even across coordinator restarts.
 */
import * as grpc from "@grpc/grpc-js";
import type { KeyObject } from "node:crypto";
import type { Redis } from "ioredis";
import { publicKeyFromRaw } from "../../shared/crypto/index.ts";
import { AUTH_MAX_SKEW_MS, AuthError, parseAuthMetadata, verifyAuth } from "../../shared/transport/request-auth.ts";
import type { DeviceRegistry } from "../state/registry.ts";
import type { Principal, Role } from "../state/state-dir.ts";
import { RpcError } from "./rpc-error.ts";
import { RateLimiter } from "./rate-limiter.ts";

export interface Caller {
  role: Role;
  keyId: string;
}

export class Authenticator {
  private readonly principals = new Map<string, { role: Role; key: KeyObject }>();
  private readonly deviceKeys = new Map<string, KeyObject>();
  private readonly limiter: RateLimiter;
  /** Operators enroll fleets of laptops and watch runs: a larger bucket than any one device. */
  private readonly principalLimiter: RateLimiter;

  constructor(
    private readonly redis: Redis,
    private readonly registry: DeviceRegistry,
    principals: Principal[],
    rateLimit?: { burst: number; perSecond: number },
  ) {
    this.limiter = new RateLimiter(rateLimit?.burst, rateLimit?.perSecond);
    this.principalLimiter = new RateLimiter((rateLimit?.burst ?? 60) * 50, (rateLimit?.perSecond ?? 20) * 50);
    for (const p of principals) this.principals.set(p.keyId, { role: p.role, key: publicKeyFromRaw(Buffer.from(p.publicKey, "base64")) });
  }

  forgetDevice(deviceId: string): void {
    this.deviceKeys.delete(deviceId);
  }

  private async keyFor(keyId: string): Promise<{ role: Role; key: KeyObject } | undefined> {
    const p = this.principals.get(keyId);
    if (p) return p;
    if (!keyId.startsWith("dev-")) return undefined;
    let key = this.deviceKeys.get(keyId);
    if (!key) {
      const rec = await this.registry.get(keyId);
      if (!rec) return undefined;
      key = publicKeyFromRaw(Buffer.from(rec.identityPublicKey, "base64"));
      this.deviceKeys.set(keyId, key);
    }
    return { role: "device", key };
  }

  /** Returns the caller or throws UNAUTHENTICATED / PERMISSION_DENIED. */
  async authenticate(metadata: grpc.Metadata, method: string, allowed: readonly Role[]): Promise<Caller> {
    const parsed = parseAuthMetadata(metadata);
    const entry = await this.keyFor(parsed.keyId);
    if (!entry) throw new AuthError(`unknown key id ${parsed.keyId}: enroll the device or register the key with the coordinator`);
    verifyAuth(parsed, method, entry.key);
    // Counted only after the signature verifies, so nobody can exhaust another caller's bucket.
    const limiter = entry.role === "device" ? this.limiter : this.principalLimiter;
    if (!limiter.take(parsed.keyId)) throw new RpcError(grpc.status.RESOURCE_EXHAUSTED, `rate limit exceeded for ${parsed.keyId}: slow down and retry`);
    const fresh = await this.redis.set(`tacit:nonce:${parsed.keyId}:${parsed.nonce}`, "1", "PX", 2 * AUTH_MAX_SKEW_MS, "NX");
    if (fresh === null) throw new AuthError("replayed request: this nonce was already used");
    if (!allowed.includes(entry.role)) {
      throw new RpcError(grpc.status.PERMISSION_DENIED, `role ${entry.role} may not call ${method} (needs ${allowed.join(" or ")})`);
    }
    return { role: entry.role, keyId: parsed.keyId };
  }
}
