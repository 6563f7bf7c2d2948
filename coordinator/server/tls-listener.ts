/**
 * The coordinator's TCP front door. It accepts connections itself, before grpc-js sees them, so
 * that it can bound what an unauthenticated peer holds: at most `maxConnectionsPerPeer` open
 * connections per source address. Each accepted socket is handed to grpc-js through its public
 * connection injector, whose TLS server (tacitServerCredentials) speaks TLS 1.3 only (both ends
 * are Tacit, and 1.3 offers only AEAD suites) and drops a peer that has not finished its
 * handshake within `handshakeTimeoutMs`. HTTP/2 sessions idle for longer than the idle limit are
 * closed by grpc-js (server-limits.ts).
 */
import { createServer, type Server, type Socket } from "node:net";
import * as grpc from "@grpc/grpc-js";
import type { Duplex } from "node:stream";

export interface ListenerLimits {
  maxConnectionsPerPeer: number;
  /** A peer that has not completed TLS by then is dropped. */
  handshakeTimeoutMs: number;
}

/** The server certificate, TLS 1.3 only, with a handshake deadline. */
class TacitServerCredentials extends grpc.ServerCredentials {
  constructor(key: Buffer, cert: Buffer, handshakeTimeoutMs: number) {
    super({ requestCert: false, minVersion: "TLSv1.3", maxVersion: "TLSv1.3", handshakeTimeout: handshakeTimeoutMs }, { key, cert });
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

export function tacitServerCredentials(key: Buffer, cert: Buffer, handshakeTimeoutMs: number): grpc.ServerCredentials {
  return new TacitServerCredentials(key, cert, handshakeTimeoutMs);
}

export interface TlsListener {
  port: number;
  /** Open connections per peer address (tests and diagnostics). */
  connections(peer: string): number;
  /**
   * Closes the connection whose remote end is `address:port` (grpc-js's getPeer() of a call on
   * it), with every stream on it. False when there is none.
   */
  dropConnection(peer: string): boolean;
  close(): Promise<void>;
}

export interface TlsListenerOptions {
  host: string;
  port: number;
  limits: ListenerLimits;
  inject(socket: Duplex): void;
}

export async function listenTls(o: TlsListenerOptions): Promise<TlsListener> {
  const perPeer = new Map<string, number>();
  const open = new Set<Socket>();
  const byRemote = new Map<string, Socket>();
  const server: Server = createServer((raw) => {
    const peer = raw.remoteAddress ?? "unknown";
    const n = perPeer.get(peer) ?? 0;
    if (n >= o.limits.maxConnectionsPerPeer) {
      raw.destroy();
      return;
    }
    perPeer.set(peer, n + 1);
    open.add(raw);
    const remote = `${raw.remoteAddress}:${raw.remotePort}`;
    byRemote.set(remote, raw);
    raw.once("close", () => {
      open.delete(raw);
      if (byRemote.get(remote) === raw) byRemote.delete(remote);
      const left = (perPeer.get(peer) ?? 1) - 1;
      if (left <= 0) perPeer.delete(peer);
      else perPeer.set(peer, left);
    });
    raw.on("error", () => raw.destroy());
    o.inject(raw);
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: o.host, port: o.port }, () => {
      server.removeListener("error", reject);
      server.on("error", () => undefined);
      const addr = server.address();
      resolve(typeof addr === "object" && addr ? addr.port : 0);
    });
  });
  return {
    port,
    connections: (peer) => perPeer.get(peer) ?? 0,
    dropConnection: (peer) => {
      const s = byRemote.get(peer);
      s?.destroy();
      return s !== undefined;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
