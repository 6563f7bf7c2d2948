/**
 * Authenticates every RPC from its signed metadata and enforces the role the RPC requires.
 * Devices are looked up in the registry; operators and reviewers in principals.json. Nonces
 * are remembered in this process (replay-guard.ts), not in Redis: a Redis writer could delete
 * them and replay a captured request; restarts are covered by the guard's floor.
 */
import type * as grpc from "@grpc/grpc-js";
import type { KeyObject } from "node:crypto";
import { publicKeyFromRaw } from "../../shared/crypto/index.ts";
import { AuthError, checkFreshness, parseAuthMetadata, verifyAuth } from "../../shared/transport/request-auth.ts";
import type { DeviceRegistry } from "../state/registry.ts";
import type { Principal, Role } from "../state/state-dir.ts";
import { denied, exhausted } from "./request-errors.ts";
import { RateLimiter } from "./rate-limiter.ts";
import { ReplayGuard } from "./replay-guard.ts";

export interface Caller {
  role: Role;
  keyId: string;
}

/** Methods whose only credential is in the body (the enrollment token): admitted by address rate alone. */
export const TOKEN_METHODS: ReadonlySet<string> = new Set(["/tacit.v1.Enrollment/Enroll"]);

/**
 * One answer for an unknown key id and a bad signature, so that nobody learns from the error
 * whether a device id is enrolled.
 */
export const NOT_AUTHENTICATED = "request is not authenticated: unknown key id or a signature that does not verify";

export interface AddressLimits {
  /** Enroll calls per source address (each laptop enrolls once; a NAT'd office enrolls a fleet). */
  enroll: { burst: number; perSecond: number };
  /** Failed authentications per source address before the address is refused outright for a while. */
  failures: { burst: number; perSecond: number };
}

export const DEFAULT_ADDRESS_LIMITS: AddressLimits = { enroll: { burst: 100, perSecond: 10 }, failures: { burst: 100, perSecond: 10 } };

export class Authenticator {
  private readonly principals = new Map<string, { role: Role; key: KeyObject }>();
  private readonly deviceKeys = new Map<string, KeyObject>();
  private readonly limiter: RateLimiter;
  /** Operators enroll fleets of laptops and watch runs: a larger bucket than any one device. */
  private readonly principalLimiter: RateLimiter;
  private readonly enrollByAddress: RateLimiter;
  private readonly failuresByAddress: RateLimiter;
  /** Callers the request gate admitted, by their call's metadata object (the handler sees the same one). */
  private readonly admitted = new WeakMap<grpc.Metadata, Caller>();

  constructor(
    private readonly registry: DeviceRegistry,
    principals: Principal[],
    rateLimit?: { burst: number; perSecond: number },
    addressLimits: AddressLimits = DEFAULT_ADDRESS_LIMITS,
    private readonly replay: ReplayGuard = new ReplayGuard(),
  ) {
    this.enrollByAddress = new RateLimiter(addressLimits.enroll.burst, addressLimits.enroll.perSecond);
    this.failuresByAddress = new RateLimiter(addressLimits.failures.burst, addressLimits.failures.perSecond);
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

  /**
   * Runs in the request gate, from metadata only, before any body is read: a token method is
   * admitted within its per-address rate; any other call must carry a valid signature, and an
   * address that keeps failing is refused before its signatures are even checked.
   */
  /** This process starts serving (it took the active lease): nothing signed before now is admitted. */
  startServing(now = Date.now()): void {
    this.replay.raiseFloor(now);
  }

  async admit(metadata: grpc.Metadata, method: string, peerAddress: string): Promise<void> {
    if (TOKEN_METHODS.has(method)) {
      if (!this.enrollByAddress.take(peerAddress)) throw exhausted("too many enrollment attempts from this address: slow down and retry");
      return;
    }
    if (!this.failuresByAddress.available(peerAddress)) {
      throw exhausted("too many failed authentications from this address: retry later");
    }
    try {
      this.admitted.set(metadata, await this.verify(metadata, method));
    } catch (err) {
      if (err instanceof AuthError) this.failuresByAddress.take(peerAddress);
      throw err;
    }
  }

  /** Returns the caller or throws UNAUTHENTICATED / PERMISSION_DENIED. */
  async authenticate(metadata: grpc.Metadata, method: string, allowed: readonly Role[]): Promise<Caller> {
    const caller = this.admitted.get(metadata) ?? (await this.verify(metadata, method));
    if (!allowed.includes(caller.role)) {
      throw denied(`role ${caller.role} may not call ${method} (needs ${allowed.join(" or ")})`);
    }
    return caller;
  }

  private async verify(metadata: grpc.Metadata, method: string): Promise<Caller> {
    const parsed = parseAuthMetadata(metadata);
    checkFreshness(parsed);
    const entry = await this.keyFor(parsed.keyId);
    if (!entry) throw new AuthError(NOT_AUTHENTICATED);
    try {
      verifyAuth(parsed, method, entry.key);
    } catch (err) {
      if (err instanceof AuthError) throw new AuthError(NOT_AUTHENTICATED);
      throw err;
    }
    // Counted only after the signature verifies, so nobody can exhaust another caller's bucket.
    const limiter = entry.role === "device" ? this.limiter : this.principalLimiter;
    if (!limiter.take(parsed.keyId)) throw exhausted(`rate limit exceeded for ${parsed.keyId}: slow down and retry`);
    this.replay.admit(parsed.keyId, parsed.nonce, parsed.timestamp);
    return { role: entry.role, keyId: parsed.keyId };
  }
}
