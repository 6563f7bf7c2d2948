/**
 * Malformed, oversized, unauthenticated, replayed and out-of-place messages against a live
 * coordinator: each is refused with a specific gRPC status and a message naming the problem,
 * and nothing is lost (the coordinator keeps serving).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pinnedCaCredentials } from "../shared/transport/channel-credentials.ts";
import { signedMetadata } from "../shared/transport/request-auth.ts";
import { privateKeyFromPem, signBytes } from "../shared/crypto/index.ts";
import { MAX_MESSAGE_BYTES } from "../shared/transport/proto.ts";
import { requestCap } from "../coordinator/server/message-caps.ts";
import { CoordinatorClient, RpcCallError } from "../client/transport/coordinator-client.ts";
import { TestCluster, tinyRunSpec } from "./support/cluster.ts";

async function code(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
    return { code: grpc.status.OK, message: "" };
  } catch (err) {
    const e = err as RpcCallError;
    return { code: e.code, message: e.message };
  }
}

describe("bad input against a live coordinator", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start();
  });
  afterAll(async () => cluster?.stop());

  it("refuses a garbled protobuf with INVALID_ARGUMENT naming the problem", async () => {
    const raw = new grpc.Client(cluster.address, pinnedCaCredentials(cluster.caFile));
    const key = privateKeyFromPem(readFileSync(join(cluster.coordinator.paths.keysOut, "ml-team-1.key"), "utf8"));
    const path = "/tacit.v1.RunControl/GetRun";
    const res = await new Promise<grpc.ServiceError | null>((resolve) =>
      raw.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]), signedMetadata({ keyId: "ml-team-1", privateKey: key.privateKey }, path), (err) => resolve(err)),
    );
    expect(res?.code).toBe(grpc.status.INVALID_ARGUMENT);
    // protobufjs decodes leniently, so garbage surfaces as a missing field — or, when it cannot
    // be decoded at all, as "malformed GetRun message"; either way a specific refusal.
    expect(res?.details).toMatch(/malformed GetRun message|missing run_id/);
    raw.close();
  });

  it("refuses an oversized request at the coordinator with RESOURCE_EXHAUSTED, and keeps serving", async () => {
    // A raw client with no send cap, so the body really reaches the coordinator
    // (CoordinatorClient caps what it sends and would refuse the message itself).
    const raw = new grpc.Client(cluster.address, pinnedCaCredentials(cluster.caFile), { "grpc.max_send_message_length": -1 });
    const key = privateKeyFromPem(readFileSync(join(cluster.coordinator.paths.keysOut, "ml-team-1.key"), "utf8"));
    const call = (path: string, body: Buffer): Promise<grpc.ServiceError | null> =>
      new Promise((resolve) => raw.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, body, signedMetadata({ keyId: "ml-team-1", privateKey: key.privateKey }, path), (err) => resolve(err)));
    const path = "/tacit.v1.RunControl/LaunchRun";
    const cap = requestCap(path, []);
    // A well-formed LaunchRunRequest whose spec_json (field 1) makes the message `size` bytes.
    const launchOf = (size: number): Buffer => {
      const lenBytes = size < 2 ** 21 ? 3 : 4;
      const spec = Buffer.alloc(size - 1 - lenBytes, 0x20);
      const len: number[] = [];
      for (let n = spec.length; ; n >>>= 7) {
        if (n < 0x80) { len.push(n); break; }
        len.push((n & 0x7f) | 0x80);
      }
      expect(len).toHaveLength(lenBytes);
      return Buffer.concat([Buffer.from([0x0a, ...len]), spec]);
    };
    for (const size of [cap + 1, MAX_MESSAGE_BYTES + 1024]) {
      const err = await call(path, launchOf(size));
      expect(err?.code, `${size} bytes`).toBe(grpc.status.RESOURCE_EXHAUSTED);
      // The coordinator's own refusal, naming the method's cap (not the client's send limit).
      expect(err?.details).toBe(`Received message larger than max (${size} vs ${cap})`);
    }
    // It keeps serving, on the same connection and to other callers.
    expect(await call("/tacit.v1.RunControl/ListRuns", Buffer.alloc(0))).toBeNull();
    expect((await cluster.mlTeam.unary<object, { runs: unknown[] }>("RunControl", "ListRuns", {})).runs).toBeDefined();
    raw.close();
  });

  it("refuses a run spec that is invalid or not signed by the ML team", async () => {
    const bad = await code(cluster.mlTeam.unary("RunControl", "LaunchRun", { specJson: JSON.stringify({ ...tinyRunSpec(), rounds: -1 }), requestSignature: Buffer.alloc(64) }));
    expect(bad.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad.message).toMatch(/rounds/);
    const specJson = JSON.stringify(tinyRunSpec());
    const unsigned = await code(cluster.mlTeam.unary("RunControl", "LaunchRun", { specJson, requestSignature: Buffer.alloc(64) }));
    expect(unsigned.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(unsigned.message).toMatch(/request_signature does not verify/);
    const notJson = await code(cluster.mlTeam.unary("RunControl", "LaunchRun", { specJson: "{nope", requestSignature: Buffer.from(signBytes(cluster.mlTeamKey.privateKey, "{nope")) }));
    expect(notJson.message).toMatch(/not valid JSON/);
  });

  it("refuses unsigned calls, unknown keys, wrong roles and replays", async () => {
    const anon = new CoordinatorClient({ address: cluster.address, caFile: cluster.caFile });
    const r1 = await code(anon.unary("RunControl", "ListRuns", {}));
    expect(r1.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(r1.message).toMatch(/not signed/);
    const dev = await cluster.enroll("role-test");
    const r2 = await code(dev.client.unary("RunControl", "ListRuns", {}));
    expect(r2.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(r2.message).toMatch(/role device may not call/);
    // Replay: the same signed metadata twice.
    const path = "/tacit.v1.RunControl/ListRuns";
    const key = privateKeyFromPem(readFileSync(join(cluster.coordinator.paths.keysOut, "ml-team-1.key"), "utf8"));
    const md = signedMetadata({ keyId: "ml-team-1", privateKey: key.privateKey }, path);
    const raw = new grpc.Client(cluster.address, pinnedCaCredentials(cluster.caFile));
    const call = (): Promise<grpc.ServiceError | null> =>
      new Promise((resolve) => raw.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), md.clone(), (err) => resolve(err)));
    expect(await call()).toBeNull();
    const replay = await call();
    expect(replay?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(replay?.details).toMatch(/replayed/);
    raw.close();
    anon.close();
  });

  it("rate-limits a caller that floods the coordinator with RESOURCE_EXHAUSTED", async () => {
    const dev = await cluster.enroll("flooder");
    const results = await Promise.all(Array.from({ length: 150 }, () => code(dev.client.unary("Rounds", "Decline", { ref: { runId: "run-x", round: 0 }, reason: "x" }))));
    const exhausted = results.filter((r) => r.code === grpc.status.RESOURCE_EXHAUSTED);
    expect(exhausted.length).toBeGreaterThan(0);
    expect(exhausted[0]!.message).toMatch(/rate limit exceeded/);
    // Another caller is unaffected.
    expect((await cluster.mlTeam.unary<object, { runs: unknown[] }>("RunControl", "ListRuns", {})).runs).toBeDefined();
  });

  it("refuses round messages for rounds that are not running, and reused enrollment tokens", async () => {
    const dev = await cluster.enroll("round-test");
    const r = await code(dev.client.unary("Rounds", "SubmitMaskedInput", { ref: { runId: "run-none", round: 0 }, bits: 32, length: 4, data: Buffer.alloc(16) }));
    expect(r.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(r.message).toMatch(/no active round/);
    const noRef = await code(dev.client.unary("Rounds", "Decline", { reason: "x" }));
    expect(noRef.code).toBe(grpc.status.INVALID_ARGUMENT);
    const { token } = await cluster.admin.unary<object, { token: string }>("Enrollment", "CreateToken", { ttlSeconds: 60 });
    const c = new CoordinatorClient({ address: cluster.address, caFile: cluster.caFile });
    const ok = await code(c.unary("Enrollment", "Enroll", { token, identityPublicKey: Buffer.alloc(32, 1), deviceLabel: "a" }));
    expect(ok.code).toBe(grpc.status.OK);
    const again = await code(c.unary("Enrollment", "Enroll", { token, identityPublicKey: Buffer.alloc(32, 2), deviceLabel: "b" }));
    expect(again.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(again.message).toMatch(/already used/);
    const shortKey = await code(c.unary("Enrollment", "Enroll", { token: "tt_x", identityPublicKey: Buffer.alloc(31), deviceLabel: "c" }));
    expect(shortKey.code).toBe(grpc.status.INVALID_ARGUMENT);
    c.close();
    // Still serving.
    expect((await cluster.mlTeam.unary<object, { runs: unknown[] }>("RunControl", "ListRuns", {})).runs).toBeDefined();
  });
});
