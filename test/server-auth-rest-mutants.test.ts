/**
 * Exact pins of the coordinator's request authentication and error boundary (issue #16, run
 * `server-rest`): mutants of these survived the other tests. All in process, on a controlled clock.
 *
 * - Authenticator: the default per-address limits (enroll and failed authentications: burst 100,
 *   10/s) and their refusal texts; the principals' bucket (50 × the device bucket, burst and rate);
 *   only an AuthError empties the failure bucket (a rate refusal of a signed caller does not);
 *   only a `dev-` key id is looked up in the registry, whose key is cached until forgetDevice;
 *   startServing raises the replay floor.
 * - ReplayGuard: a nonce whose timestamp is still fresh is never pruned, and the one second of slack
 *   kept past the window (its nonce count is a metric).
 * - RateLimiter: exactly one token is available; the bucket map is cleared only past 100 000 keys.
 * - request-errors / rpc-error / status-boundary: the already-exists refusal, the error names in a
 *   logged `String(err)`, the fixed public texts, no `internal` key when there is nothing internal,
 *   and toServiceError without a logger.
 * - server-limits: the session memory and Subscribe backlog defaults.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { generateEd25519, type Ed25519KeyPair } from "../shared/crypto/index.ts";
import { signedMetadata } from "../shared/transport/request-auth.ts";
import { MAX_MESSAGE_BYTES } from "../shared/transport/proto.ts";
import { SecAggError } from "../shared/secagg/index.ts";
import { LedgerClosedError } from "../coordinator/ledger/privacy-ledger.ts";
import { Authenticator, NOT_AUTHENTICATED, TOKEN_METHODS, type AddressLimits } from "../coordinator/server/authenticator.ts";
import { ReplayGuard } from "../coordinator/server/replay-guard.ts";
import { RateLimiter } from "../coordinator/server/rate-limiter.ts";
import { alreadyExists, denied, RequestRefused } from "../coordinator/server/request-errors.ts";
import { RpcError } from "../coordinator/server/rpc-error.ts";
import { INTERNAL_ERROR, publicStatus, SECAGG_REFUSED, toServiceError } from "../coordinator/server/status-boundary.ts";
import { DEFAULT_SERVER_LIMITS, grpcServerOptions } from "../coordinator/server/server-limits.ts";
import type { DeviceRegistry } from "../coordinator/state/registry.ts";

const S = grpc.status;
const T0 = 1_800_000_000_000;
const METHOD = "/tacit.v1.Ledger/GetPolicy";
const ENROLL = [...TOKEN_METHODS][0]!;
const b64 = (k: Ed25519KeyPair): string => Buffer.from(k.publicRaw).toString("base64");

/** What the request gate would send for admit(): OK or the status and public text. */
async function admitStatus(auth: Authenticator, md: grpc.Metadata, peer = "10.0.0.1", method = METHOD): Promise<{ code: grpc.status; details: string }> {
  try {
    await auth.admit(md, method, peer);
    return { code: S.OK, details: "" };
  } catch (err) {
    const e = toServiceError(err);
    return { code: e.code, details: e.details };
  }
}

/** A registry holding `devices` (id → key), recording every id it is asked about. */
function registry(devices: Map<string, Ed25519KeyPair> | ((id: string) => Ed25519KeyPair | undefined)) {
  const lookups: string[] = [];
  const find = typeof devices === "function" ? devices : (id: string) => devices.get(id);
  const reg = {
    get: async (id: string) => {
      lookups.push(id);
      const k = find(id);
      return k ? { deviceId: id, identityPublicKey: b64(k) } : undefined;
    },
  } as unknown as DeviceRegistry;
  return { reg, lookups };
}

const times = async (n: number, f: () => Promise<{ code: grpc.status }>): Promise<grpc.status[]> => {
  const out: grpc.status[] = [];
  for (let i = 0; i < n; i++) out.push((await f()).code);
  return out;
};
const all = (n: number, code: grpc.status): grpc.status[] => Array<grpc.status>(n).fill(code);

describe("Authenticator", () => {
  afterEach(() => {
    vi.useRealTimers();
  });
  const dev = generateEd25519();
  const reviewer = generateEd25519();
  const principals = [{ keyId: "reviewer-1", role: "reviewer" as const, publicKey: b64(reviewer) }];

  it("admits Enroll by address alone, 100 per address then 10/s, with its own refusal text", async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: T0 });
    const auth = new Authenticator(registry(new Map()).reg, principals);
    const enroll = (peer = "10.0.0.1") => admitStatus(auth, new grpc.Metadata(), peer, ENROLL);
    expect(await times(100, () => enroll())).toEqual(all(100, S.OK));
    expect(await enroll()).toEqual({ code: S.RESOURCE_EXHAUSTED, details: "too many enrollment attempts from this address: slow down and retry" });
    expect((await enroll("10.0.0.2")).code).toBe(S.OK);
    vi.advanceTimersByTime(100); // one token at 10/s
    expect(await times(2, () => enroll())).toEqual([S.OK, S.RESOURCE_EXHAUSTED]);
  });

  it("refuses an address after 100 failed authentications, then lets one more fail per 100 ms", async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: T0 });
    const auth = new Authenticator(registry(new Map()).reg, principals);
    const unknown = () => admitStatus(auth, signedMetadata({ keyId: "dev-unknown", privateKey: dev.privateKey }, METHOD));
    expect(await times(100, unknown)).toEqual(all(100, S.UNAUTHENTICATED));
    expect(await unknown()).toEqual({ code: S.RESOURCE_EXHAUSTED, details: "too many failed authentications from this address: retry later" });
    vi.advanceTimersByTime(100);
    expect(await times(2, unknown)).toEqual([S.UNAUTHENTICATED, S.RESOURCE_EXHAUSTED]);
  });

  it("gives a principal 50 times a device's bucket: burst and refill rate", async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: T0 });
    const devices = new Map([["dev-a", dev]]);
    const auth = new Authenticator(registry(devices).reg, principals, { burst: 2, perSecond: 1 });
    const asDevice = () => admitStatus(auth, signedMetadata({ keyId: "dev-a", privateKey: dev.privateKey }, METHOD));
    const asReviewer = () => admitStatus(auth, signedMetadata({ keyId: "reviewer-1", privateKey: reviewer.privateKey }, METHOD));
    expect(await times(2, asDevice)).toEqual(all(2, S.OK));
    expect(await asDevice()).toEqual({ code: S.RESOURCE_EXHAUSTED, details: "rate limit exceeded for dev-a: slow down and retry" });
    expect(await times(100, asReviewer)).toEqual(all(100, S.OK));
    expect(await asReviewer()).toEqual({ code: S.RESOURCE_EXHAUSTED, details: "rate limit exceeded for reviewer-1: slow down and retry" });
    vi.advanceTimersByTime(100); // 50/s: five tokens for the reviewer, 0.1 for the device
    expect(await times(6, asReviewer)).toEqual([...all(5, S.OK), S.RESOURCE_EXHAUSTED]);
    expect((await asDevice()).code).toBe(S.RESOURCE_EXHAUSTED);
  });

  it("counts only failed authentications against the address, not a signed caller's rate refusals", async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: T0 });
    const limits: AddressLimits = { enroll: { burst: 1, perSecond: 0.001 }, failures: { burst: 1, perSecond: 0.001 } };
    const auth = new Authenticator(registry(new Map([["dev-a", dev]])).reg, principals, { burst: 1, perSecond: 0.001 }, limits);
    const asDevice = () => admitStatus(auth, signedMetadata({ keyId: "dev-a", privateKey: dev.privateKey }, METHOD));
    expect((await asDevice()).code).toBe(S.OK);
    for (let i = 0; i < 3; i++) expect((await asDevice()).details).toBe("rate limit exceeded for dev-a: slow down and retry");
    // The failure bucket is still full: one bad signature is answered as such, the next refused on the address.
    const forged = () => admitStatus(auth, signedMetadata({ keyId: "dev-a", privateKey: generateEd25519().privateKey }, METHOD));
    expect(await forged()).toEqual({ code: S.UNAUTHENTICATED, details: NOT_AUTHENTICATED });
    expect((await forged()).code).toBe(S.RESOURCE_EXHAUSTED);
  });

  it("looks up only dev- key ids in the registry: a registry entry never authenticates another key id", async () => {
    // A registry that would answer any id with the device's key.
    const { reg, lookups } = registry(() => dev);
    const auth = new Authenticator(reg, principals);
    for (const keyId of ["admin-1", "reviewer-2", "x-dev-a"]) {
      expect(await admitStatus(auth, signedMetadata({ keyId, privateKey: dev.privateKey }, METHOD), "10.0.0.9")).toEqual({ code: S.UNAUTHENTICATED, details: NOT_AUTHENTICATED });
    }
    expect(lookups).toEqual([]);
    const md = signedMetadata({ keyId: "dev-b", privateKey: dev.privateKey }, METHOD);
    expect(await auth.authenticate(md, METHOD, ["device"])).toEqual({ role: "device", keyId: "dev-b" });
    expect(lookups).toEqual(["dev-b"]);
  });

  it("caches a device's key until forgetDevice, then asks the registry again", async () => {
    const devices = new Map([["dev-a", dev]]);
    const { reg, lookups } = registry(devices);
    const auth = new Authenticator(reg, principals);
    const asDevice = () => admitStatus(auth, signedMetadata({ keyId: "dev-a", privateKey: dev.privateKey }, METHOD));
    expect(await times(3, asDevice)).toEqual(all(3, S.OK));
    expect(lookups).toEqual(["dev-a"]);
    devices.delete("dev-a");
    auth.forgetDevice("dev-a");
    expect(await asDevice()).toEqual({ code: S.UNAUTHENTICATED, details: NOT_AUTHENTICATED });
    expect(lookups).toEqual(["dev-a", "dev-a"]);
  });

  it("startServing refuses every request signed before it, even one never seen", async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: T0 + 1_000 });
    const auth = new Authenticator(registry(new Map([["dev-a", dev]])).reg, principals, undefined, undefined, new ReplayGuard(T0));
    const signedAt = (t: number) => signedMetadata({ keyId: "dev-a", privateKey: dev.privateKey }, METHOD, t);
    expect((await admitStatus(auth, signedAt(T0 + 100))).code).toBe(S.OK);
    auth.startServing(T0 + 500);
    const before = await admitStatus(auth, signedAt(T0 + 200));
    expect(before.code).toBe(S.UNAUTHENTICATED);
    expect(before.details).toMatch(/replay floor/);
    expect((await admitStatus(auth, signedAt(T0 + 500))).code).toBe(S.OK);
  });
});

describe("ReplayGuard pruning", () => {
  it("never forgets a nonce whose timestamp is still inside the freshness window", () => {
    const g = new ReplayGuard(T0, 1_000, 10_000);
    g.admit("dev-a", "a".repeat(32), T0 + 500, T0 + 500);
    // 9.9 s later the timestamp is still fresh (the window is 10 s): the replay must be refused.
    expect(() => g.admit("dev-a", "a".repeat(32), T0 + 500, T0 + 10_400)).toThrow(/replayed/);
    expect(g.stats.nonces).toBe(1);
  });

  it("keeps one second past the window, and drops a second once it is two seconds past", () => {
    const g = new ReplayGuard(T0, 1_000, 10_000);
    g.admit("dev-a", "a".repeat(32), T0 + 500, T0 + 500); // second T0/1000
    // now − window = T0 + 1 s: second T0/1000 is one second past the window and still kept.
    g.admit("dev-a", "b".repeat(32), T0 + 11_000, T0 + 11_000);
    expect(g.stats.nonces).toBe(2);
    expect(() => g.admit("dev-a", "a".repeat(32), T0 + 500, T0 + 11_999)).toThrow(/replayed/);
    // now − window = T0 + 2 s: it goes.
    g.admit("dev-a", "c".repeat(32), T0 + 12_000, T0 + 12_000);
    expect(g.stats.nonces).toBe(2);
  });
});

describe("RateLimiter edges", () => {
  it("has a token available at exactly one token", () => {
    const r = new RateLimiter(2, 0);
    expect(r.take("a", 0)).toBe(true);
    expect(r.available("a", 0)).toBe(true); // exactly 1 left
    const s = new RateLimiter(1, 2);
    expect(s.take("a", 0)).toBe(true);
    expect(s.available("a", 499)).toBe(false);
    expect(s.available("a", 500)).toBe(true); // 0.5 s × 2/s = exactly 1
  });

  it("forgets the buckets only once there are more than 100 000 keys", () => {
    const r = new RateLimiter(1, 0);
    expect(r.take("first", 0)).toBe(true);
    for (let i = 1; i < 99_999; i++) r.take(`k${i}`, 0);
    expect(r.take("last", 0)).toBe(true); // 100 000 keys: kept
    expect(r.take("first", 0)).toBe(false);
    expect(r.take("one-more", 0)).toBe(true); // 100 001: cleared
    expect(r.take("first", 0)).toBe(true);
  });
});

describe("errors and the status boundary", () => {
  it("maps an already-exists refusal, and names the error classes in what a log prints", () => {
    const e = alreadyExists("device dev-a is already enrolled");
    expect(e).toBeInstanceOf(RequestRefused);
    expect(e.kind).toBe("already-exists");
    expect(publicStatus(e)).toStrictEqual({ code: S.ALREADY_EXISTS, details: "device dev-a is already enrolled" });
    expect(String(denied("no"))).toBe("RequestRefused: no");
    expect(String(new RpcError(S.NOT_FOUND, "gone"))).toBe("RpcError: gone");
  });

  it("adds no internal key when a refusal has no internal reason", () => {
    const s = publicStatus(new RequestRefused("not-found", "no run x"));
    expect(s).toStrictEqual({ code: S.NOT_FOUND, details: "no run x" });
    expect(Object.keys(s)).toEqual(["code", "details"]);
  });

  it("sends these fixed public texts", () => {
    expect(publicStatus(new SecAggError("BAD_SIGNATURE", "keys of 3")).details).toBe("secure aggregation refused the message");
    expect(SECAGG_REFUSED).toBe("secure aggregation refused the message");
    expect(publicStatus(new Error("boom")).details).toBe("internal error");
    expect(INTERNAL_ERROR).toBe("internal error");
    expect(publicStatus(new LedgerClosedError("run r ended at seq 4"))).toStrictEqual({
      code: S.FAILED_PRECONDITION,
      details: "the run has ended: its ledger takes no more entries",
      internal: "run r ended at seq 4",
    });
  });

  it("builds the error without a logger when there is an internal reason", () => {
    const e = toServiceError(new Error("ENOSPC /var/lib/tacit"));
    expect([e.code, e.details, e.message]).toEqual([S.INTERNAL, "internal error", "internal error"]);
  });
});

describe("server limits", () => {
  it("lets a session hold three largest messages and a Subscribe backlog one largest message plus 1 MiB", () => {
    expect(MAX_MESSAGE_BYTES).toBe(16 * 1024 * 1024);
    expect(DEFAULT_SERVER_LIMITS.maxSessionMemoryMiB).toBe(48);
    expect(DEFAULT_SERVER_LIMITS.maxSubscribeBacklogBytes).toBe(17 * 1024 * 1024);
    expect(grpcServerOptions(DEFAULT_SERVER_LIMITS, [])["grpc-node.max_session_memory"]).toBe(48);
  });
});
