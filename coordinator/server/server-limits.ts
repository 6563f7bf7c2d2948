/**
 * Every resource bound of the coordinator's gRPC server in one place, with the grpc-js options
 * they become. Defaults suit a fleet of laptops behind shared NAT addresses; tests shrink the
 * timeouts to observe them.
 */
import type * as grpc from "@grpc/grpc-js";
import { MAX_MESSAGE_BYTES } from "../../shared/transport/proto.ts";
import type { ListenerLimits } from "./tls-listener.ts";

export interface ServerLimits extends ListenerLimits {
  /** HTTP/2 streams one connection may have open (a device needs its Subscribe stream and a few calls). */
  maxConcurrentStreams: number;
  /** Node's per-session memory bound, MiB: buffered frames, header tables, queued writes. */
  maxSessionMemoryMiB: number;
  /** A connection with no open stream for this long is closed. */
  idleTimeoutMs: number;
  /** Server keepalive ping interval and how long to wait for the answer. */
  keepaliveTimeMs: number;
  keepaliveTimeoutMs: number;
  /** An admitted request's body must arrive in full within this time. */
  requestTimeoutMs: number;
  /** WatchRun streams one principal may hold open, and all principals together (I2). */
  maxWatchStreamsPerPrincipal: number;
  maxWatchStreams: number;
  /**
   * Bytes a Subscribe stream may hold that its device has not read (I6). Past it the device is
   * dropped as a slow reader. One largest message plus room for the small ones behind it: a
   * device that has not taken one round's invitation when the next is sent is not reading.
   */
  maxSubscribeBacklogBytes: number;
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  maxConnectionsPerPeer: 64,
  handshakeTimeoutMs: 10_000,
  maxConcurrentStreams: 100,
  maxSessionMemoryMiB: 3 * (MAX_MESSAGE_BYTES >> 20),
  idleTimeoutMs: 60_000,
  keepaliveTimeMs: 30_000,
  keepaliveTimeoutMs: 10_000,
  requestTimeoutMs: 120_000,
  maxWatchStreamsPerPrincipal: 8,
  maxWatchStreams: 32,
  maxSubscribeBacklogBytes: MAX_MESSAGE_BYTES + (1 << 20),
};

export function grpcServerOptions(l: ServerLimits, interceptors: grpc.ServerInterceptor[]): grpc.ServerOptions {
  return {
    // The wire-level ceiling; each method's real cap is enforced by the request gate.
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_concurrent_streams": l.maxConcurrentStreams,
    "grpc-node.max_session_memory": l.maxSessionMemoryMiB,
    "grpc.max_connection_idle_ms": l.idleTimeoutMs,
    "grpc.keepalive_time_ms": l.keepaliveTimeMs,
    "grpc.keepalive_timeout_ms": l.keepaliveTimeoutMs,
    interceptors,
  };
}
