/**
 * Issue #16: coordinator/server/tls-listener.ts in this process (Stryker measured it at 32 %).
 *
 * First the TCP front door alone, with an `inject` that only keeps the sockets: the bound of
 * open connections per source address (exact: the bound-th is admitted, the next is closed
 * unseen), its count going down as connections close, a reset peer, dropConnection by a peer's
 * address:port, close(), and a port already in use. Then with grpc-js behind it, as the
 * coordinator runs it: a pinned-CA client is served through it, dropConnection of a call's
 * getPeer() ends that call, TLS 1.2 is refused, and a peer silent past the handshake deadline
 * is dropped.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect as netConnect, createServer, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listenTls, tacitServerCredentials, type TlsListener } from "../coordinator/server/tls-listener.ts";
import { ensureTls, tlsPaths } from "../coordinator/state/tls.ts";
import { pinnedCaCredentials } from "../shared/transport/channel-credentials.ts";
import { waitFor } from "./support/wait.ts";

/** A client connection from `from` (a loopback address); resolves once connected, and tells when the server closed it. */
async function dial(port: number, from = "127.0.0.1"): Promise<{ socket: Socket; closed: () => boolean; gotData: () => boolean }> {
  const socket = netConnect({ host: "127.0.0.1", port, localAddress: from });
  let closed = false;
  let data = false;
  socket.on("error", () => undefined);
  socket.on("data", () => (data = true));
  socket.on("close", () => (closed = true));
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("error", reject);
  });
  return { socket, closed: () => closed, gotData: () => data };
}

describe("the TCP front door: connections per source address", () => {
  let listener: TlsListener;
  const injected: Duplex[] = [];
  const clients: Socket[] = [];
  beforeAll(async () => {
    listener = await listenTls({ host: "127.0.0.1", port: 0, limits: { maxConnectionsPerPeer: 2, handshakeTimeoutMs: 10_000 }, inject: (s) => void injected.push(s) });
  });
  afterAll(async () => {
    for (const c of clients) c.destroy();
    await listener?.close();
  });
  const track = async (from?: string) => {
    const d = await dial(listener.port, from);
    clients.push(d.socket);
    return d;
  };

  it("listens on the port it names (an ephemeral one when asked for 0) and hands each accepted socket to inject", async () => {
    expect(listener.port).toBeGreaterThan(0);
    const a = await track();
    await waitFor("the socket injected", () => injected.length === 1, 10_000);
    expect((injected[0] as Socket).remotePort).toBe(a.socket.localPort);
    expect(listener.connections("127.0.0.1")).toBe(1);
    a.socket.destroy();
    await waitFor("the count back to zero", () => listener.connections("127.0.0.1") === 0, 10_000);
  });

  it("admits exactly maxConnectionsPerPeer from one address and closes the next one without injecting it; another address has its own bound", async () => {
    const before = injected.length;
    const a = await track();
    const b = await track();
    await waitFor("two sockets injected", () => injected.length === before + 2, 10_000);
    expect(listener.connections("127.0.0.1")).toBe(2);
    const c = await track();
    await waitFor("the third connection closed by the listener", () => c.closed(), 10_000);
    expect(c.gotData()).toBe(false);
    expect(injected.length).toBe(before + 2);
    expect(listener.connections("127.0.0.1")).toBe(2);
    // 127.0.0.2 is another peer: admitted while 127.0.0.1 is at its bound.
    const d = await track("127.0.0.2");
    await waitFor("the other address's socket injected", () => injected.length === before + 3, 10_000);
    expect([listener.connections("127.0.0.2"), listener.connections("127.0.0.1"), listener.connections("127.0.0.9")]).toEqual([1, 2, 0]);
    expect(a.closed() || b.closed() || d.closed()).toBe(false);
    // One closes: the count goes down by one, and a new connection from that address is admitted again.
    a.socket.destroy();
    await waitFor("one connection fewer", () => listener.connections("127.0.0.1") === 1, 10_000);
    const e = await track();
    await waitFor("the new socket injected", () => injected.length === before + 4, 10_000);
    expect(listener.connections("127.0.0.1")).toBe(2);
    expect(e.closed()).toBe(false);
    for (const s of [b, d, e]) s.socket.destroy();
    await waitFor("every count back to zero", () => listener.connections("127.0.0.1") === 0 && listener.connections("127.0.0.2") === 0, 10_000);
  });

  it("a peer that resets its connection is counted out, and the listener keeps serving", async () => {
    const before = injected.length;
    const a = await track("127.0.0.3");
    await waitFor("the socket injected", () => injected.length === before + 1, 10_000);
    expect(listener.connections("127.0.0.3")).toBe(1);
    // An RST: the accepted socket errors with ECONNRESET, which must not escape as an uncaught error.
    a.socket.resetAndDestroy();
    await waitFor("the reset connection counted out", () => listener.connections("127.0.0.3") === 0, 10_000);
    const b = await track("127.0.0.3");
    await waitFor("a new socket injected", () => injected.length === before + 2, 10_000);
    b.socket.destroy();
  });

  it("dropConnection closes the one connection whose remote end is address:port, once; anything else is false", async () => {
    const a = await track("127.0.0.4");
    const b = await track("127.0.0.4");
    await waitFor("both counted", () => listener.connections("127.0.0.4") === 2, 10_000);
    const peerA = `127.0.0.4:${a.socket.localPort}`;
    expect(listener.dropConnection(peerA)).toBe(true);
    await waitFor("the dropped connection closed", () => a.closed(), 10_000);
    await waitFor("counted out", () => listener.connections("127.0.0.4") === 1, 10_000);
    expect(b.closed()).toBe(false);
    // Gone now; and peers that never connected are unknown.
    expect(listener.dropConnection(peerA)).toBe(false);
    expect(listener.dropConnection(`127.0.0.5:${b.socket.localPort}`)).toBe(false);
    expect(listener.dropConnection("127.0.0.4")).toBe(false);
    expect(listener.dropConnection(`127.0.0.4:${b.socket.localPort}`)).toBe(true);
    await waitFor("the second dropped", () => b.closed(), 10_000);
  });
});

describe("listenTls: start and close", () => {
  it("refuses a port already in use with the listen error", async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
    const port = (taken.address() as { port: number }).port;
    try {
      const started = listenTls({ host: "127.0.0.1", port, limits: { maxConnectionsPerPeer: 1, handshakeTimeoutMs: 1000 }, inject: () => undefined });
      // The refusal comes in milliseconds; a listener that never answers fails here, not at the test's timeout.
      const hung = new Promise<string>((r) => setTimeout(() => r("no answer within 15 s"), 15_000).unref());
      await expect(Promise.race([started, hung])).rejects.toMatchObject({ code: "EADDRINUSE" });
    } finally {
      await new Promise<void>((r) => taken.close(() => r()));
    }
  });

  it("close() ends every open connection and stops listening", async () => {
    const listener = await listenTls({ host: "127.0.0.1", port: 0, limits: { maxConnectionsPerPeer: 4, handshakeTimeoutMs: 1000 }, inject: () => undefined });
    const a = await dial(listener.port);
    const b = await dial(listener.port, "127.0.0.6");
    await waitFor("both counted", () => listener.connections("127.0.0.1") === 1 && listener.connections("127.0.0.6") === 1, 10_000);
    // close() waits for the server, which waits for its connections: it returns only if it ended them.
    const closing = listener.close().then(() => "closed");
    const hung = new Promise<string>((r) => setTimeout(() => r("close() still waiting after 15 s"), 15_000).unref());
    expect(await Promise.race([closing, hung])).toBe("closed");
    await waitFor("both connections closed", () => a.closed() && b.closed(), 10_000);
    await expect(dial(listener.port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });
});

describe("the front door in front of grpc-js (TLS 1.3 only, handshake deadline)", () => {
  let stateRoot: string;
  let server: grpc.Server;
  let listener: TlsListener;
  let ca: string;
  const peers: string[] = [];
  const HANDSHAKE_MS = 400;

  beforeAll(async () => {
    stateRoot = mkdtempSync(join(tmpdir(), "tacit-tls-listener-"));
    ensureTls(stateRoot);
    const p = tlsPaths(stateRoot);
    ca = p.caCert;
    server = new grpc.Server();
    const ident = (b: Buffer): Buffer => b;
    server.addService(
      {
        Watch: { path: "/test.Front/Watch", requestStream: false, responseStream: true, requestSerialize: ident, requestDeserialize: ident, responseSerialize: ident, responseDeserialize: ident },
      } as grpc.ServiceDefinition,
      {
        // Writes one message, then stays open until its connection goes.
        Watch: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
          peers.push(call.getPeer());
          call.write(Buffer.from("hello"));
        },
      },
    );
    const injector = server.createConnectionInjector(tacitServerCredentials(readFileSync(p.serverKey), readFileSync(p.serverCert), HANDSHAKE_MS));
    listener = await listenTls({ host: "127.0.0.1", port: 0, limits: { maxConnectionsPerPeer: 8, handshakeTimeoutMs: HANDSHAKE_MS }, inject: (s) => injector.injectConnection(s) });
  });
  afterAll(async () => {
    await listener?.close();
    server?.forceShutdown();
    if (stateRoot) rmSync(stateRoot, { recursive: true, force: true });
  });

  it("the server credentials are equal only to themselves", () => {
    const p = tlsPaths(stateRoot);
    const a = tacitServerCredentials(readFileSync(p.serverKey), readFileSync(p.serverCert), 1000);
    const b = tacitServerCredentials(readFileSync(p.serverKey), readFileSync(p.serverCert), 1000);
    expect(a._equals(a)).toBe(true);
    expect(a._equals(b)).toBe(false);
    expect(a._equals(grpc.ServerCredentials.createInsecure())).toBe(false);
  });

  it("serves a client that pins the CA (no client certificate), and dropConnection of a call's peer ends that call", async () => {
    const client = new grpc.Client(`localhost:${listener.port}`, pinnedCaCredentials(ca));
    try {
      const call = client.makeServerStreamRequest("/test.Front/Watch", (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), new grpc.Metadata(), { deadline: Date.now() + 60_000 });
      const ended = new Promise<grpc.ServiceError | "end">((resolve) => {
        call.on("error", (e: grpc.ServiceError) => resolve(e));
        call.on("end", () => resolve("end"));
      });
      // Its first message, or (a refused handshake) how the call ended instead.
      const first = await Promise.race([new Promise<string>((resolve) => call.once("data", (b: Buffer) => resolve(b.toString()))), ended.then((e) => `ended: ${e === "end" ? e : e.details}`)]);
      expect(first).toBe("hello");
      expect(peers).toHaveLength(1);
      expect(peers[0]).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(listener.connections("127.0.0.1")).toBe(1);
      expect(listener.dropConnection(peers[0]!)).toBe(true);
      const outcome = await ended;
      expect(outcome).not.toBe("end");
      expect((outcome as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);
      await waitFor("the connection counted out", () => listener.connections("127.0.0.1") === 0, 10_000);
      expect(listener.dropConnection(peers[0]!)).toBe(false);
    } finally {
      client.close();
    }
  });

  it("refuses a TLS 1.2 client and completes a TLS 1.3 handshake", async () => {
    const handshake = (maxVersion: "TLSv1.2" | "TLSv1.3") =>
      new Promise<string>((resolve) => {
        const s = tlsConnect({ host: "127.0.0.1", port: listener.port, servername: "localhost", ca: readFileSync(ca), maxVersion, ALPNProtocols: ["h2"] });
        s.once("secureConnect", () => {
          resolve(`ok ${s.getProtocol()}`);
          s.destroy();
        });
        s.once("error", (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`));
      });
    expect(await handshake("TLSv1.3")).toBe("ok TLSv1.3");
    expect(await handshake("TLSv1.2")).toMatch(/^error .*(PROTOCOL|VERSION|ALERT)/i);
  });

  it("drops a peer that connects and never starts its handshake, once the deadline passes", async () => {
    const silent = await dial(listener.port, "127.0.0.7");
    await waitFor("the listener counted it", () => listener.connections("127.0.0.7") === 1, 10_000);
    // The deadline is HANDSHAKE_MS; a generous bound for a loaded machine (Node's own default is 120 s).
    await waitFor("the silent peer dropped", () => silent.closed(), 20_000);
    await waitFor("counted out", () => listener.connections("127.0.0.7") === 0, 10_000);
    expect(silent.gotData()).toBe(false);
  });
});
