/**
 * Finding L5 (part) of the 2026-11-30 security findings: nothing was rate-limited before
 * authentication. Now each source address has a bucket of failed authentications
 * (Authenticator.admit). Once it is empty, the address is refused with RESOURCE_EXHAUSTED
 * before its key is looked up or its signature checked. Other addresses are unaffected.
 *
 * First the rule itself, on the Authenticator (exact counts, a controllable clock). Then once
 * over live gRPC: the flood comes from 127.0.0.1, and a correctly signed caller comes through
 * a TCP proxy whose connections leave from another loopback address.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { generateEd25519, privateKeyFromPem, type Ed25519KeyPair } from "../shared/crypto/index.ts";
import { signedMetadata } from "../shared/transport/request-auth.ts";
import { Authenticator, DEFAULT_ADDRESS_LIMITS, NOT_AUTHENTICATED, type AddressLimits } from "../coordinator/server/authenticator.ts";
import { toServiceError } from "../coordinator/server/status-boundary.ts";
import type { DeviceRegistry } from "../coordinator/state/registry.ts";
import { CoordinatorClient, RpcCallError } from "../client/transport/coordinator-client.ts";
import { TestCluster } from "./support/cluster.ts";
import { TcpProxy } from "./support/tcp-proxy.ts";

const METHOD = "/tacit.v1.Ledger/GetPolicy";
const BURST = 5;
/** No token comes back during a test unless the clock is moved on purpose. */
const SLOW_REFILL: AddressLimits = { ...DEFAULT_ADDRESS_LIMITS, failures: { burst: BURST, perSecond: 0.001 } };

/** The gRPC status the request gate would send for what admit() did. */
async function admitStatus(auth: Authenticator, md: grpc.Metadata, peer: string): Promise<{ code: grpc.status; details: string }> {
  try {
    await auth.admit(md, METHOD, peer);
    return { code: grpc.status.OK, details: "" };
  } catch (err) {
    const e = toServiceError(err);
    return { code: e.code, details: e.details };
  }
}

describe("the failed-authentication bucket of each source address", () => {
  let reviewer: Ed25519KeyPair;
  let lookups: string[];
  /** A registry that knows no device, and records which ids the authenticator looked up. */
  let registry: DeviceRegistry;
  const good = (): grpc.Metadata => signedMetadata({ keyId: "reviewer-1", privateKey: reviewer.privateKey }, METHOD);
  /** Signed with a key nobody registered: the signature check fails. */
  const forged = (): grpc.Metadata => signedMetadata({ keyId: "reviewer-1", privateKey: generateEd25519().privateKey }, METHOD);
  /** An unknown device id: the authenticator must ask the registry before it can refuse it. */
  const unknownDevice = (): grpc.Metadata => signedMetadata({ keyId: "dev-unknown00000000000", privateKey: generateEd25519().privateKey }, METHOD);
  const authenticator = (limits: AddressLimits): Authenticator =>
    new Authenticator(registry, [{ keyId: "reviewer-1", role: "reviewer", publicKey: Buffer.from(reviewer.publicRaw).toString("base64") }], undefined, limits);

  beforeAll(() => {
    reviewer = generateEd25519();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("refuses an address once BURST authentications from it failed, before looking up a key or checking a signature", async () => {
    lookups = [];
    registry = { get: async (id: string) => void lookups.push(id) } as unknown as DeviceRegistry;
    const auth = authenticator(SLOW_REFILL);
    for (let i = 0; i < BURST; i++) {
      expect(await admitStatus(auth, i % 2 === 0 ? forged() : unknownDevice(), "10.0.0.1")).toEqual({ code: grpc.status.UNAUTHENTICATED, details: NOT_AUTHENTICATED });
    }
    const lookupsBefore = lookups.length;
    expect(lookupsBefore).toBeGreaterThan(0);
    const refused = await admitStatus(auth, unknownDevice(), "10.0.0.1");
    expect(refused.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(refused.details).toMatch(/too many failed authentications/);
    // Refused on the address alone: the registry was not asked about the id.
    expect(lookups.length).toBe(lookupsBefore);
    // Even a correct signature from that address is refused now: nothing is checked for it.
    expect((await admitStatus(auth, good(), "10.0.0.1")).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    // Another address has its own bucket: the same caller, correctly signed, is admitted.
    expect((await admitStatus(auth, good(), "10.0.0.2")).code).toBe(grpc.status.OK);
    expect((await admitStatus(auth, forged(), "10.0.0.2")).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it("counts only failures: an address of honest callers never empties it", async () => {
    registry = { get: async () => undefined } as unknown as DeviceRegistry;
    const auth = authenticator(SLOW_REFILL);
    for (let i = 0; i < 4 * BURST; i++) expect((await admitStatus(auth, good(), "10.0.0.3")).code).toBe(grpc.status.OK);
    // The next failure is answered as a failure, not refused for a rate.
    expect((await admitStatus(auth, forged(), "10.0.0.3")).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it("refills at its rate: an address that stops failing is served again", async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: Date.parse("2026-12-01T12:00:00Z") });
    registry = { get: async () => undefined } as unknown as DeviceRegistry;
    const auth = authenticator({ ...DEFAULT_ADDRESS_LIMITS, failures: { burst: BURST, perSecond: 1 } });
    for (let i = 0; i < BURST; i++) await admitStatus(auth, forged(), "10.0.0.4");
    expect((await admitStatus(auth, good(), "10.0.0.4")).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    vi.advanceTimersByTime(1000); // one token back
    expect((await admitStatus(auth, good(), "10.0.0.4")).code).toBe(grpc.status.OK);
  });
});

describe("failed authentications over live gRPC", () => {
  let cluster: TestCluster;
  let proxy: TcpProxy;
  beforeAll(async () => {
    cluster = await TestCluster.start({ addressLimits: SLOW_REFILL });
    // Its connections to the coordinator leave from 127.1.x.y: a second source address.
    proxy = await TcpProxy.start(async () => cluster.coordinator.port, { spreadSources: true });
  });
  afterAll(async () => {
    await proxy?.close();
    await cluster?.stop();
  });

  it("answers a flood of badly signed requests with RESOURCE_EXHAUSTED, while a signed caller from another address is served", async () => {
    const codeOf = (p: Promise<unknown>): Promise<{ code: grpc.status; message: string }> =>
      p.then(
        () => ({ code: grpc.status.OK, message: "" }),
        (err: unknown) => ({ code: (err as RpcCallError).code, message: (err as Error).message }),
      );
    const impostor = new CoordinatorClient({ address: cluster.address, caFile: cluster.caFile, credentials: { keyId: "admin-1", privateKey: generateEd25519().privateKey } });
    const createToken = (c: CoordinatorClient) => c.unary<object, { token: string }>("Enrollment", "CreateToken", { ttlSeconds: 60, label: "probe" });
    try {
      const codes: grpc.status[] = [];
      for (let i = 0; i < BURST + 3; i++) codes.push((await codeOf(createToken(impostor))).code);
      expect(codes).toEqual([...Array<grpc.status>(BURST).fill(grpc.status.UNAUTHENTICATED), ...Array<grpc.status>(3).fill(grpc.status.RESOURCE_EXHAUSTED)]);
      expect((await codeOf(createToken(impostor))).message).toMatch(/too many failed authentications/);
      // The admin's own key, from the flooded address: refused with it.
      expect((await codeOf(createToken(cluster.admin))).code).toBe(grpc.status.RESOURCE_EXHAUSTED);

      const adminKey = privateKeyFromPem(readFileSync(join(cluster.coordinator.paths.keysOut, "admin-1.key"), "utf8"));
      const elsewhere = new CoordinatorClient({ address: `localhost:${proxy.port}`, caFile: cluster.caFile, credentials: { keyId: "admin-1", privateKey: adminKey.privateKey } });
      try {
        expect((await createToken(elsewhere)).token).toMatch(/^tt_/);
      } finally {
        elsewhere.close();
      }
    } finally {
      impostor.close();
    }
  });
});
