/**
 * Issue #16: the admin, ML-team and reviewer paths of coordinator/server/handlers.ts over real
 * gRPC/TLS against a coordinator in this process (TestCluster), so that the handlers run in the
 * test worker: tokens, Enroll's credential rule, Deregister, a run launched, watched and
 * cancelled (WatchRun ending with the run), the ledger as a reviewer and as a device reads it,
 * and the policy installed and read. Exact codes and texts throughout; the per-handler unit
 * checks are in handlers-{roles,admin,rounds,reviewer,watchrun}.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { generateEd25519, privateKeyFromPem } from "../shared/crypto/index.ts";
import { signPolicy } from "../shared/dp/index.ts";
import { CoordinatorClient, type RpcCallError, type RunStatus } from "../client/transport/coordinator-client.ts";
import { NOT_AUTHENTICATED } from "../coordinator/server/authenticator.ts";
import { TestCluster, tinyRunSpec } from "./support/cluster.ts";

async function outcome<T>(p: Promise<T>): Promise<{ code: grpc.status; message: string; value?: T }> {
  try {
    return { code: grpc.status.OK, message: "", value: await p };
  } catch (err) {
    // RpcCallError prefixes the method; what the coordinator sent is the rest.
    const e = err as RpcCallError;
    return { code: e.code, message: e.method && e.message.startsWith(`${e.method}: `) ? e.message.slice(e.method.length + 2) : e.message };
  }
}

describe("admin, ML team and reviewer RPCs against a live coordinator", () => {
  let cluster: TestCluster;
  let reviewer: CoordinatorClient;
  beforeAll(async () => {
    cluster = await TestCluster.start();
    reviewer = cluster.principal("reviewer-1");
  });
  afterAll(async () => {
    reviewer?.close();
    await cluster?.stop();
  });

  it("CreateToken: the admin gets a token expiring ttl seconds from now; nobody else may mint one; 30 days is the most", async () => {
    const before = Date.now();
    const t = await cluster.admin.unary<object, { token: string; expiresAtMs: string }>("Enrollment", "CreateToken", { ttlSeconds: 120, label: "live-label" });
    expect(t.token).toMatch(/^tt_/);
    expect(Number(t.expiresAtMs)).toBeGreaterThanOrEqual(before + 120_000);
    expect(Number(t.expiresAtMs)).toBeLessThanOrEqual(Date.now() + 120_000);
    const long = await outcome(cluster.admin.unary("Enrollment", "CreateToken", { ttlSeconds: 30 * 86_400 + 1 }));
    expect([long.code, long.message]).toEqual([grpc.status.INVALID_ARGUMENT, "ttl_seconds must be at most 30 days"]);
    for (const [client, role] of [[cluster.mlTeam, "ml-team"], [reviewer, "reviewer"]] as const) {
      const r = await outcome(client.unary("Enrollment", "CreateToken", { ttlSeconds: 60 }));
      expect([r.code, r.message]).toEqual([grpc.status.PERMISSION_DENIED, `role ${role} may not call /tacit.v1.Enrollment/CreateToken (needs admin)`]);
    }
    // The token is in the ledger, by its label and creator (never the token itself).
    const lines = await reviewer.readLedger(0);
    const entry = lines.map((l) => JSON.parse(l) as { type: string; body: Record<string, unknown> }).find((e) => e.body.label === "live-label");
    expect(entry?.body.creator).toBe("admin-1");
    expect(lines.join("\n")).not.toContain(t.token);
  });

  it("Enroll: refused with credentials, refused without a token, and the enrolled device may deregister itself", async () => {
    const { token } = await cluster.admin.unary<object, { token: string }>("Enrollment", "CreateToken", { ttlSeconds: 60 });
    const signed = await outcome(cluster.admin.unary("Enrollment", "Enroll", { token, identityPublicKey: Buffer.alloc(32, 3), deviceLabel: "x" }));
    expect([signed.code, signed.message]).toEqual([grpc.status.PERMISSION_DENIED, "Enroll is authorized by the enrollment token alone: call it without request credentials"]);
    const anon = new CoordinatorClient({ address: cluster.address, caFile: cluster.caFile });
    try {
      const none = await outcome(anon.unary("Enrollment", "Enroll", { identityPublicKey: Buffer.alloc(32, 3) }));
      expect([none.code, none.message]).toEqual([grpc.status.UNAUTHENTICATED, "Enroll needs a single-use enrollment token (`tacit coordinator token create`)"]);
      const long = await outcome(anon.unary("Enrollment", "Enroll", { token: "t".repeat(201), identityPublicKey: Buffer.alloc(32, 3) }));
      expect([long.code, long.message]).toEqual([grpc.status.INVALID_ARGUMENT, "malformed enrollment token"]);
      // The signed call was refused before the token was looked at: it is still unspent.
      const enrolled = await anon.unary<object, { deviceId: string }>("Enrollment", "Enroll", { token, identityPublicKey: Buffer.from(generateEd25519().publicRaw), deviceLabel: "after-refusal" });
      expect(enrolled.deviceId).toMatch(/^dev-[0-9a-f]{20}$/);
    } finally {
      anon.close();
    }
    const dev = await cluster.enroll("leaver");
    expect(await dev.client.unary("Enrollment", "Deregister", {})).toEqual({});
    const after = await outcome(dev.client.unary("Ledger", "GetPolicy", {}));
    expect([after.code, after.message]).toEqual([grpc.status.UNAUTHENTICATED, NOT_AUTHENTICATED]);
    dev.client.close();
  });

  it("a launched run is watched until it is cancelled: WatchRun ends with the cancelled status; cancelling again or an unknown run is refused", async () => {
    const deadlines = { ...tinyRunSpec().deadlines, selectionMs: 120_000 };
    const runId = await cluster.launch(tinyRunSpec({ rounds: 1, deadlines }));
    expect(runId).toMatch(/^run-\d{8}-[0-9a-f]{8}$/);
    const watch = reviewer.watchRun(runId);
    const seen: RunStatus[] = [];
    const ended = new Promise<string>((resolve) => {
      watch.on("data", (st: RunStatus) => seen.push(st));
      watch.on("end", () => resolve("end"));
      watch.on("error", (e: grpc.ServiceError) => resolve(`error ${e.code} ${e.details}`));
    });
    await new Promise<void>((resolve) => watch.once("data", () => resolve()));
    expect(seen[0]!.runId).toBe(runId);
    expect(["queued", "running"]).toContain(seen[0]!.state);
    const cancelled = await cluster.mlTeam.unary<object, RunStatus>("RunControl", "CancelRun", { runId });
    expect([cancelled.runId, cancelled.state]).toEqual([runId, "cancelled"]);
    expect(await ended).toBe("end");
    expect(seen.at(-1)!.state).toBe("cancelled");
    // Each status written once: no two consecutive ones alike.
    for (let i = 1; i < seen.length; i++) expect(JSON.stringify(seen[i])).not.toBe(JSON.stringify(seen[i - 1]));
    const again = await outcome(cluster.mlTeam.unary("RunControl", "CancelRun", { runId }));
    expect([again.code, again.message]).toEqual([grpc.status.FAILED_PRECONDITION, `run ${runId} is already cancelled`]);
    const unknown = await outcome(cluster.mlTeam.unary("RunControl", "CancelRun", { runId: "run-nope" }));
    expect([unknown.code, unknown.message]).toEqual([grpc.status.NOT_FOUND, "no run run-nope"]);
    const byReviewer = await outcome(reviewer.unary("RunControl", "CancelRun", { runId }));
    expect([byReviewer.code, byReviewer.message]).toEqual([grpc.status.PERMISSION_DENIED, "role reviewer may not call /tacit.v1.RunControl/CancelRun (needs ml-team)"]);
    // Both readers see it; ListRuns includes it.
    expect((await reviewer.unary<object, RunStatus>("RunControl", "GetRun", { runId })).state).toBe("cancelled");
    const list = await cluster.mlTeam.unary<object, { runs: RunStatus[] }>("RunControl", "ListRuns", {});
    expect(list.runs.map((r) => r.runId)).toContain(runId);
    const missing = await outcome(reviewer.unary("RunControl", "GetRun", {}));
    expect([missing.code, missing.message]).toEqual([grpc.status.INVALID_ARGUMENT, "missing run_id"]);
  });

  it("WatchRun of an unknown run ends with NOT_FOUND and gives its slot back", async () => {
    const watch = reviewer.watchRun("run-unknown");
    const r = await new Promise<{ code: number; details: string }>((resolve) => {
      watch.on("data", () => undefined);
      watch.on("error", (e: grpc.ServiceError) => resolve({ code: e.code, details: e.details }));
      watch.on("end", () => resolve({ code: -1, details: "ended" }));
    });
    expect(r).toEqual({ code: grpc.status.NOT_FOUND, details: "no run run-unknown" });
    expect(cluster.coordinator.watchSlots.open("reviewer-1")).toBe(0);
  });

  it("ReadLedger: a reviewer reads every entry; a device only those about itself, and not another device's", async () => {
    const a = await cluster.enroll("reader-a");
    const b = await cluster.enroll("reader-b");
    const all = await reviewer.readLedger(0);
    const entries = all.map((l) => JSON.parse(l) as { seq: number; body: Record<string, unknown> });
    expect(entries.some((e) => e.body.deviceId === a.deviceId)).toBe(true);
    expect(entries.some((e) => e.body.deviceId === b.deviceId)).toBe(true);
    const mine = await a.client.readLedger(0);
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.length).toBeLessThan(all.length);
    for (const l of mine) expect(l).not.toContain(b.deviceId);
    expect(mine.some((l) => l.includes(a.deviceId))).toBe(true);
    const theirs = await outcome(a.client.readLedger(0, b.deviceId));
    expect([theirs.code, theirs.message]).toEqual([grpc.status.PERMISSION_DENIED, "a device may read only the ledger entries about itself"]);
    const admin = await outcome(cluster.admin.readLedger(0));
    expect([admin.code, admin.message]).toEqual([grpc.status.PERMISSION_DENIED, "role admin may not call /tacit.v1.Ledger/ReadLedger (needs reviewer or device)"]);
    a.client.close();
    b.client.close();
  });

  it("the policy: none at first (NOT_FOUND); the reviewer installs one, and the ML team and a device read it back", async () => {
    const none = await outcome(cluster.mlTeam.unary("Ledger", "GetPolicy", {}));
    expect([none.code, none.message]).toEqual([grpc.status.NOT_FOUND, "no privacy policy is installed on this coordinator"]);
    const key = privateKeyFromPem(readFileSync(join(cluster.coordinator.paths.keysOut, "reviewer-1.key"), "utf8"));
    const json = JSON.stringify(signPolicy({ version: 1, minNoiseMultiplier: 0, maxDeviceEpsilon: 1e6, delta: 1e-6, minSurvivors: 2, allowedSignals: ["commit", "file-change"] }, key.privateKey, key.publicKey));
    const ml = await outcome(cluster.mlTeam.unary("Ledger", "SetPolicy", { json }));
    expect([ml.code, ml.message]).toEqual([grpc.status.PERMISSION_DENIED, "role ml-team may not call /tacit.v1.Ledger/SetPolicy (needs reviewer)"]);
    expect(await reviewer.unary("Ledger", "SetPolicy", { json })).toEqual({ ok: true, detail: "" });
    expect(await cluster.mlTeam.unary("Ledger", "GetPolicy", {})).toEqual({ json });
    const dev = await cluster.enroll("policy-reader");
    expect(await dev.client.unary("Ledger", "GetPolicy", {})).toEqual({ json });
    const admin = await outcome(cluster.admin.unary("Ledger", "GetPolicy", {}));
    expect([admin.code, admin.message]).toEqual([grpc.status.PERMISSION_DENIED, "role admin may not call /tacit.v1.Ledger/GetPolicy (needs reviewer or ml-team or device)"]);
    dev.client.close();
  });
});
