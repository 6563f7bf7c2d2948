/**
 * H2 and M3 of the 2026-11-30 security findings, against a live coordinator:
 * - whoever can write to the coordinator's Redis (here: its own connection, i.e. more than a
 *   local user holding only the port has) cannot enroll a device, impersonate one, or change a
 *   launched run's noise: tokens and device records carry an HMAC whose key is not in Redis, and
 *   run specs are checked against their signed launch entry in the ledger;
 * - only the admin creates enrollment tokens, and every token and enrollment is a ledger entry
 *   that `verify` counts per creator.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { generateEd25519 } from "../shared/crypto/index.ts";
import { verifyLedger } from "../shared/ledger/index.ts";
import type { RoundConfig } from "../shared/run/index.ts";
import { deviceIdFor } from "../coordinator/state/registry.ts";
import { CoordinatorClient, RpcCallError } from "../client/transport/coordinator-client.ts";
import { TestCluster, tinyRunSpec } from "./support/cluster.ts";
import { ledgerText } from "./support/ledger-text.ts";

function constantDelta(value: number) {
  return async (cfg: RoundConfig) => ({ delta: new Float32Array(cfg.parameterCount).fill(value), loss: 1, examples: 1 });
}

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return grpc.status.OK;
  } catch (err) {
    return (err as RpcCallError).code;
  }
}

function ledgerEntries(cluster: TestCluster): { type: string; body: Record<string, unknown> }[] {
  return ledgerText(cluster.stateDir).trim().split("\n").map((l) => JSON.parse(l) as { type: string; body: Record<string, unknown> });
}

describe("Redis is not a side door (H2)", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start();
  });
  afterAll(async () => cluster?.stop());

  it("a token or device planted in Redis enrolls nothing and authenticates nobody", async () => {
    const redis = cluster.coordinator.redis;
    const token = "tt_injected_by_a_redis_writer";
    const hash = createHash("sha256").update(token).digest("hex");
    await redis.set(`tacit:enroll-token:${hash}`, JSON.stringify({ label: "injected", createdAt: Date.now() }), "EX", 600);
    const anon = new CoordinatorClient({ address: cluster.address, caFile: cluster.caFile });
    const kp = generateEd25519();
    expect(await status(anon.unary("Enrollment", "Enroll", { token, identityPublicKey: Buffer.from(kp.publicRaw), deviceLabel: "sybil" }))).toBe(grpc.status.PERMISSION_DENIED);
    anon.close();

    const planted = generateEd25519();
    const id = deviceIdFor(planted.publicRaw);
    await redis.hset("tacit:devices", id, JSON.stringify({ deviceId: id, identityPublicKey: Buffer.from(planted.publicRaw).toString("base64"), label: "planted", enrolledAt: Date.now() }));
    const asPlanted = new CoordinatorClient({ address: cluster.address, caFile: cluster.caFile, credentials: { keyId: id, privateKey: planted.privateKey } });
    expect(await status(asPlanted.unary("Ledger", "GetPolicy", {}))).toBe(grpc.status.UNAUTHENTICATED);
    asPlanted.close();
  });

  it("a run's noise rewritten in Redis is not used: the round runs with the signed launch spec", async () => {
    const spec = tinyRunSpec({ rounds: 1, cohortSize: 3, minSurvivors: 3, populationSize: 3, clip: 100, noiseMultiplier: 1, deadlines: { ...tinyRunSpec().deadlines, selectionMs: 1500 } });
    const runId = await cluster.launch(spec);
    // As in the finding: attempt 0 waits for devices that are not there, and the next attempt re-reads the run.
    await cluster.coordinator.redis.hset(`tacit:run:${runId}`, "spec", JSON.stringify({ ...spec, noiseMultiplier: 0 }));
    for (let i = 0; i < 3; i++) await cluster.addDevice(`d${i}`, { train: constantDelta(0.01) });
    const st = await cluster.waitRun(runId, 60_000);
    expect(st.state).toBe("completed");
    const rounds = ledgerEntries(cluster).filter((e) => e.type === "round" && e.body.runId === runId && e.body.status === "completed");
    expect(rounds.length).toBe(1);
    expect((rounds[0]!.body.dp as { noiseMultiplier: number }).noiseMultiplier).toBe(1);
    expect((rounds[0]!.body.mechanism as { perDeviceVariance: number }).perDeviceVariance).toBeGreaterThan(0);
    // The status the ML team reads is the signed spec too.
    expect(JSON.parse(st.specJson).noiseMultiplier).toBe(1);
  }, 90_000);

  it("a run planted in Redis without a launch entry does not exist for the coordinator", async () => {
    await cluster.coordinator.redis.hset("tacit:run:run-planted", { runId: "run-planted", spec: JSON.stringify(tinyRunSpec()), state: "queued", roundsDone: "0", createdAt: String(Date.now()) });
    expect(await status(cluster.mlTeam.unary("RunControl", "GetRun", { runId: "run-planted" }))).toBe(grpc.status.NOT_FOUND);
  });
});

describe("roles and accountability of enrollment (M3)", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start();
  });
  afterAll(async () => cluster?.stop());

  it("only the admin creates tokens; tokens and enrollments are ledger entries that verify counts per creator", async () => {
    expect(await status(cluster.mlTeam.unary("Enrollment", "CreateToken", { ttlSeconds: 600, label: "sybil" }))).toBe(grpc.status.PERMISSION_DENIED);
    const a = await cluster.enroll("laptop-a");
    const b = await cluster.enroll("laptop-b");
    const entries = ledgerEntries(cluster);
    const tokens = entries.filter((e) => e.type === "enrollment-token");
    const enrolls = entries.filter((e) => e.type === "enrollment");
    expect(tokens.map((t) => [t.body.creator, t.body.label])).toEqual([["admin-1", "laptop-a"], ["admin-1", "laptop-b"]]);
    expect(enrolls.map((e) => e.body.deviceId)).toEqual([a.deviceId, b.deviceId]);
    expect(enrolls[0]!.body).toMatchObject({ creator: "admin-1", tokenLabel: "laptop-a", label: "laptop-a", keyFingerprint: createHash("sha256").update(a.identity.publicRaw).digest("hex") });
    // The token itself is never written to the ledger.
    expect(ledgerText(cluster.stateDir)).not.toMatch(/tt_/);
    const findings = verifyLedger(ledgerText(cluster.stateDir));
    expect(findings.ok).toBe(true);
    expect(findings.enrollments).toEqual([{ creator: "admin-1", tokens: 2, devices: 2 }]);
  });
});
