/**
 * H1 of the 2026-11-30 security findings: nobody without credentials can make the coordinator
 * hold memory. 48 stalled near-limit SubmitMaskedInput streams and 150 idle connections, all
 * unauthenticated and from other loopback addresses, grow the process RSS by < 100 MiB; the idle
 * ones are closed within the idle limit; a legitimate round completes meanwhile. Also: a
 * per-address connection cap, compressed requests refused, and per-method body caps that apply
 * even to a signed caller.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import http2 from "node:http2";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { readFileSync } from "node:fs";
import { pinnedCaCredentials } from "../shared/transport/channel-credentials.ts";
import { signedMetadata } from "../shared/transport/request-auth.ts";
import { MAX_MESSAGE_BYTES } from "../shared/transport/proto.ts";
import type { RoundConfig } from "../shared/run/index.ts";
import { TestCluster, tinyRunSpec } from "./support/cluster.ts";

const IDLE_MS = 3000;
const MiB = 1024 * 1024;

function constantDelta(value: number) {
  return async (cfg: RoundConfig) => ({ delta: new Float32Array(cfg.parameterCount).fill(value), loss: 1, examples: 1 });
}

const connected = new WeakMap<http2.ClientHttp2Session, Promise<void>>();

function h2From(port: number, ca: Buffer, localAddress: string): http2.ClientHttp2Session {
  const s = http2.connect(`https://localhost:${port}`, {
    createConnection: () => tlsConnect({ socket: netConnect({ host: "127.0.0.1", port, localAddress }), ca, servername: "localhost", ALPNProtocols: ["h2"] }),
  });
  s.on("error", () => undefined);
  connected.set(s, new Promise<void>((r) => s.once("connect", () => r())));
  return s;
}

/** Opens a SubmitMaskedInput stream that declares a 16 MiB message and sends all of it but the last byte. */
function stalledStream(session: http2.ClientHttp2Session, body: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const st = session.request({ ":method": "POST", ":path": "/tacit.v1.Rounds/SubmitMaskedInput", "content-type": "application/grpc", te: "trailers" });
    let status = "none";
    // The coordinator answers before reading the body and then resets the stream the attacker keeps writing to.
    st.on("error", (e) => resolve(status === "none" ? `reset ${e.message}` : status));
    st.on("response", (h) => (status = String(h["grpc-status"] ?? status)));
    st.on("trailers", (h) => (status = String(h["grpc-status"] ?? status)));
    st.on("close", () => resolve(status));
    st.resume();
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(MAX_MESSAGE_BYTES, 1);
    st.write(prefix);
    for (let off = 0; off < body.length; off += MiB) st.write(body.subarray(off, Math.min(body.length, off + MiB)));
  });
}

describe("coordinator bounds before authentication (H1)", () => {
  let cluster: TestCluster;
  let ca: Buffer;
  beforeAll(async () => {
    cluster = await TestCluster.start({ limits: { idleTimeoutMs: IDLE_MS, maxConnectionsPerPeer: 60, requestTimeoutMs: 5000 } });
    ca = readFileSync(cluster.caFile);
  });
  afterAll(async () => cluster?.stop());

  it("48 stalled streams and 150 idle connections without credentials grow RSS < 100 MiB, idle ones close in time, and a round completes meanwhile", async () => {
    for (let i = 0; i < 3; i++) await cluster.addDevice(`honest-${i}`, { train: constantDelta(0.01) });
    await cluster.waitConnected(3);
    global.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
    const port = cluster.coordinator.port;

    const runId = await cluster.launch(tinyRunSpec({ rounds: 1, cohortSize: 3, minSurvivors: 3, populationSize: 3, clip: 100 }));

    // 150 idle TLS+HTTP/2 sessions from three other loopback addresses (50 each, under the cap).
    const idle: { closedAt?: number }[] = [];
    const idleSessions: http2.ClientHttp2Session[] = [];
    for (let i = 0; i < 150; i++) {
      const rec: { closedAt?: number } = {};
      const s = h2From(port, ca, `127.0.0.${2 + (i % 3)}`);
      s.on("close", () => (rec.closedAt = Date.now()));
      idle.push(rec);
      idleSessions.push(s);
    }
    await Promise.all(idleSessions.map((s) => connected.get(s)));
    const idleSince = Date.now();

    // 48 stalled near-limit streams on 4 connections from a fifth address, no metadata at all.
    const body = Buffer.alloc(MAX_MESSAGE_BYTES - 1, 7);
    const attackers = [0, 1, 2, 3].map(() => h2From(port, ca, "127.0.0.5"));
    const statuses = await Promise.all(attackers.flatMap((s) => Array.from({ length: 12 }, () => stalledStream(s, body))));

    const st = await cluster.waitRun(runId, 60_000);
    // The idle limit, plus scheduling slack: CI runs this beside 49 other files on 2 cores, and
    // this test itself pushes 48 × 16 MiB through the same event loop (5.56 s was seen for a
    // 3 s limit). Without the limit gRPC never closes an idle connection, so any finite bound
    // still tells the guard's absence apart.
    const slackMs = 3 * IDLE_MS;
    while (idle.some((x) => x.closedAt === undefined) && Date.now() - idleSince < IDLE_MS + slackMs) await new Promise((r) => setTimeout(r, 100));
    clearInterval(sampler);
    const grewMiB = (peak - before) / MiB;
    const stillOpen = idle.filter((x) => x.closedAt === undefined).length;
    const latestClose = Math.max(...idle.map((x) => (x.closedAt ?? Infinity) - idleSince));
    console.log(`exhaustion: RSS +${grewMiB.toFixed(1)} MiB at peak; ${statuses.filter((x) => x === String(grpc.status.UNAUTHENTICATED)).length}/48 stalled streams answered UNAUTHENTICATED, the rest reset by the server's HTTP/2 limits (${[...new Set(statuses)].join(", ")}); idle sessions open after ${IDLE_MS + slackMs} ms: ${stillOpen}/150 (last closed ${latestClose} ms after connecting); run ${st.state}`);
    for (const s of [...idleSessions, ...attackers]) s.destroy();

    expect(st.state).toBe("completed");
    // Every stalled stream was ended by the coordinator: refused from its metadata, or reset by
    // the session's memory bound (NGHTTP2_ENHANCE_YOUR_CALM) — never buffered to completion.
    for (const x of statuses) expect(x).toMatch(new RegExp(`^(${grpc.status.UNAUTHENTICATED}|reset .*NGHTTP2_(ENHANCE_YOUR_CALM|INTERNAL_ERROR|REFUSED_STREAM|CANCEL))$`));
    expect(stillOpen).toBe(0);
    expect(latestClose).toBeLessThan(IDLE_MS + slackMs);
    expect(grewMiB).toBeLessThan(100);
  }, 120_000);

  it("caps connections per peer address", async () => {
    const port = cluster.coordinator.port;
    const socks: Socket[] = [];
    const closed = new Set<number>();
    for (let i = 0; i < 80; i++) {
      const s = netConnect({ host: "127.0.0.1", port, localAddress: "127.0.0.9" });
      s.on("error", () => undefined);
      s.on("close", () => closed.add(i));
      socks.push(s);
    }
    await new Promise((r) => setTimeout(r, 500));
    expect(cluster.coordinator.listener!.connections("127.0.0.9")).toBe(60);
    expect(closed.size).toBe(20);
    for (const s of socks) s.destroy();
  });

  it("refuses compressed requests, even from a signed caller", async () => {
    const dev = await cluster.enroll("gzip");
    const client = new grpc.Client(cluster.address, pinnedCaCredentials(cluster.caFile), { "grpc.default_compression_algorithm": 2 });
    const path = "/tacit.v1.Ledger/GetPolicy";
    const err = await new Promise<grpc.ServiceError | null>((resolve) =>
      client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), signedMetadata(dev.client.credentials!, path), (e) => resolve(e)),
    );
    client.close();
    expect(err?.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(err?.details).toMatch(/compressed requests/);
  });

  it("caps each method's body before reading it: kilobytes outside a round's SecAgg messages", async () => {
    const dev = await cluster.enroll("big-body");
    const client = new grpc.Client(cluster.address, pinnedCaCredentials(cluster.caFile));
    const send = (path: string, bytes: number): Promise<grpc.ServiceError | null> =>
      new Promise((resolve) => client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(bytes), signedMetadata(dev.client.credentials!, path), (e) => resolve(e)));
    const big = await send("/tacit.v1.Ledger/GetPolicy", 64 * 1024);
    expect(big?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    // No round is active, so a masked input of any real size is over its cap.
    const masked = await send("/tacit.v1.Rounds/SubmitMaskedInput", 1 * MiB);
    expect(masked?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    const small = await send("/tacit.v1.Ledger/GetPolicy", 0);
    expect(small?.code).toBe(grpc.status.NOT_FOUND); // admitted and answered: no policy installed
    client.close();
  });
});
