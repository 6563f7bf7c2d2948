/**
 * Replay protection does not live in Redis (finding H2: a Redis writer "lets the attacker delete
 * nonces (enabling replay)"). Nonces are kept in the coordinator process, bounded in memory by a
 * floor that rises past whatever it forgets, and a request signed before the process started is
 * refused, so a restart does not reopen replays either.
 */
import { describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { privateKeyFromPem } from "../shared/crypto/index.ts";
import { signedMetadata, AuthError } from "../shared/transport/request-auth.ts";
import { pinnedCaCredentials } from "../shared/transport/channel-credentials.ts";
import { ReplayGuard } from "../coordinator/server/replay-guard.ts";
import { useSuiteCluster } from "./support/suite-cluster.ts";

const T0 = 1_800_000_000_000;
const nonce = (i: number): string => i.toString(16).padStart(32, "0");

describe("the in-process replay guard", () => {
  it("refuses a nonce it has seen for the same key, and only for that key", () => {
    const g = new ReplayGuard(T0);
    g.admit("dev-a", nonce(1), T0 + 10, T0 + 20);
    expect(() => g.admit("dev-a", nonce(1), T0 + 10, T0 + 30)).toThrow(/replayed/);
    g.admit("dev-b", nonce(1), T0 + 10, T0 + 30);
  });

  it("refuses a request signed before the process started (a capture from before a restart)", () => {
    const before = new ReplayGuard(T0);
    before.admit("dev-a", nonce(7), T0 + 5_000, T0 + 5_000);
    // The coordinator restarts at T0 + 6 s: the new process has no memory of nonce 7.
    const after = new ReplayGuard(T0 + 6_000);
    expect(() => after.admit("dev-a", nonce(7), T0 + 5_000, T0 + 7_000)).toThrow(AuthError);
    after.admit("dev-a", nonce(8), T0 + 6_500, T0 + 7_000);
  });

  it("a standby taking over refuses what the previous active coordinator admitted, and the floor never falls", () => {
    // The standby's process started at T0; the active served nonce 9 at T0 + 5 s; the standby took over at T0 + 6 s.
    const standby = new ReplayGuard(T0);
    standby.raiseFloor(T0 + 6_000);
    expect(() => standby.admit("dev-a", nonce(9), T0 + 5_000, T0 + 6_100)).toThrow(/replay floor/);
    standby.raiseFloor(T0 + 1_000);
    expect(() => standby.admit("dev-a", nonce(10), T0 + 5_500, T0 + 6_200)).toThrow(/replay floor/);
    standby.admit("dev-a", nonce(11), T0 + 6_050, T0 + 6_200);
  });

  it("stays bounded: when full it forgets the oldest second and refuses everything signed up to it", () => {
    const g = new ReplayGuard(T0, 100);
    for (let i = 0; i < 100; i++) g.admit("dev-a", nonce(i), T0 + i * 100, T0 + i * 100); // seconds 0..9
    expect(g.stats.nonces).toBe(100);
    g.admit("dev-a", nonce(1000), T0 + 10_000, T0 + 10_000); // one over: second 0 is dropped
    expect(g.stats.nonces).toBeLessThanOrEqual(100);
    expect(g.stats.floorMs).toBe(T0 + 1_000);
    // A replay of a forgotten nonce is refused by the floor, not let through.
    expect(() => g.admit("dev-a", nonce(3), T0 + 300, T0 + 10_100)).toThrow(AuthError);
    // Nonces still remembered are still refused.
    expect(() => g.admit("dev-a", nonce(50), T0 + 5_000, T0 + 10_100)).toThrow(/replayed/);
  });

  it("drops nonces once the freshness window has passed them (the timestamp check refuses those)", () => {
    const g = new ReplayGuard(T0, 1_000, 10_000);
    for (let i = 0; i < 50; i++) g.admit("dev-a", nonce(i), T0 + i, T0 + i);
    g.admit("dev-a", nonce(99), T0 + 30_000, T0 + 30_000);
    expect(g.stats.nonces).toBe(1);
    expect(g.stats.floorMs).toBe(T0);
  });
});

describe("replays against a live coordinator whose Redis is wiped", () => {
  const cluster = useSuiteCluster();

  it("a replayed request is refused even after FLUSHALL", async () => {
    const path = "/tacit.v1.RunControl/ListRuns";
    const key = privateKeyFromPem(readFileSync(join(cluster().coordinator.paths.keysOut, "ml-team-1.key"), "utf8"));
    const md = signedMetadata({ keyId: "ml-team-1", privateKey: key.privateKey }, path);
    const raw = new grpc.Client(cluster().address, pinnedCaCredentials(cluster().caFile));
    const call = (): Promise<grpc.ServiceError | null> =>
      new Promise((resolve) => raw.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), md.clone(), (err) => resolve(err)));
    try {
      expect(await call()).toBeNull();
      // A Redis writer erases everything (the nonces it would have to delete included).
      await cluster().coordinator.redis.flushall();
      const replay = await call();
      expect(replay?.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(replay?.details).toMatch(/replayed/);
    } finally {
      raw.close();
    }
  });
});
