/**
 * Test support: the RPC handlers of coordinator/server/handlers.ts driven in this process, with
 * no gRPC server in between (so a mutant of handlers.ts is seen by the test that drives it).
 *
 * The handlers get a fake CoordinatorApi whose domain parts record every call made to them, and
 * the real Authenticator: callers sign their metadata for the method's full path with real keys
 * (admin-1, ml-team-1, reviewer-1 and devices dev-…), so a wrong path or a wrong role list in a
 * handler shows up as the Authenticator's exact refusal. A unary call resolves with the status
 * code and details its callback got; a streaming call is an EventEmitter that records what the
 * handler wrote, how it ended, and the status it emitted.
 */
import { EventEmitter } from "node:events";
import * as grpc from "@grpc/grpc-js";
import { generateEd25519, type Ed25519KeyPair } from "../../shared/crypto/index.ts";
import { signedMetadata } from "../../shared/transport/request-auth.ts";
import { Authenticator } from "../../coordinator/server/authenticator.ts";
import { buildServices, type CoordinatorApi } from "../../coordinator/server/handlers.ts";
import { StreamSlots } from "../../coordinator/server/stream-slots.ts";
import type { DeviceRegistry } from "../../coordinator/state/registry.ts";
import type { DeviceStream } from "../../coordinator/rounds/device-hub.ts";

export type Who = "admin-1" | "ml-team-1" | "reviewer-1" | "dev-a" | "dev-b";
export const WHO: readonly Who[] = ["admin-1", "ml-team-1", "reviewer-1", "dev-a", "dev-b"];
export const ROLE_OF: Record<Who, "admin" | "ml-team" | "reviewer" | "device"> = { "admin-1": "admin", "ml-team-1": "ml-team", "reviewer-1": "reviewer", "dev-a": "device", "dev-b": "device" };
export type Service = "enrollment" | "runControl" | "rounds" | "ledger";
export const SERVICE_NAME: Record<Service, string> = { enrollment: "Enrollment", runControl: "RunControl", rounds: "Rounds", ledger: "Ledger" };

/** How long `done` waits for a handler to end its stream (they take milliseconds, or a few 250 ms polls). */
export const STREAM_DEADLINE_MS = 20_000;

/** One call the handlers made into the fake coordinator: its name and arguments. */
export type Recorded = [string, ...unknown[]];

export interface LogRecord {
  level: "info" | "warn" | "error";
  obj: Record<string, unknown>;
  msg: string;
}

export interface Outcome<T = unknown> {
  code: grpc.status;
  details: string;
  value?: T;
}

/** Subclassed only to see forgetDevice; everything else is the real Authenticator. */
class RecordingAuthenticator extends Authenticator {
  forgotten: string[] = [];
  override forgetDevice(deviceId: string): void {
    this.forgotten.push(deviceId);
    super.forgetDevice(deviceId);
  }
}

export interface FakeStream extends EventEmitter {
  request: unknown;
  metadata: grpc.Metadata;
  cancelled: boolean;
  /** What the handler wrote, in order. */
  writes: unknown[];
  /** The completion callbacks of writes not yet "sent" (with `holdWrites`). */
  pendingCallbacks: (() => void)[];
  /** The value write() returns (grpc-js: false when the stream's buffer is full). */
  writeReturns: boolean;
  /** Hold each write's callback (a device that does not read) instead of calling it at once. */
  holdWrites: boolean;
  ended: boolean;
  /** The handler had neither ended nor failed the stream by STREAM_DEADLINE_MS. */
  timedOut: boolean;
  endTrailers: grpc.Metadata | undefined | "none";
  destroyedWith: Error | undefined;
  error: grpc.ServiceError | undefined;
  peer: string;
  getPeer(): string;
  write(msg: unknown, cb?: () => void): boolean;
  end(md?: grpc.Metadata): void;
  destroy(err?: Error): void;
  /** Resolves (a turn later) once the handler ended the stream, emitted an error, or destroyed it. */
  done: Promise<void>;
}

export function handlerHarness(over: Partial<Record<keyof CoordinatorApi, unknown>> = {}) {
  const keys = new Map<Who, Ed25519KeyPair>(WHO.map((w) => [w, generateEd25519()]));
  const calls: Recorded[] = [];
  const logs: LogRecord[] = [];
  const rec = (name: string, ...args: unknown[]): void => void calls.push([name, ...args]);
  const registry = {
    // What the Authenticator asks about devices: dev-a and dev-b are enrolled.
    get: async (id: string) => {
      const k = keys.get(id as Who);
      return id.startsWith("dev-") && k ? { deviceId: id, identityPublicKey: Buffer.from(k.publicRaw).toString("base64") } : undefined;
    },
    createToken: async (ttl: number, label: string, creator: string) => {
      rec("registry.createToken", ttl, label, creator);
      return { token: "tt_fresh", record: { tokenId: "tid", label, creator, createdAt: 1, expiresAt: 1_700_000_000_123 } };
    },
    enroll: async (token: string, key: Uint8Array, label: string) => {
      rec("registry.enroll", token, Buffer.from(key).toString("hex"), label);
      return { device: { deviceId: "dev-new", label: `${label}!` }, token: { tokenId: "tid-9", label: "tok-label", creator: "admin-1" } };
    },
    remove: async (id: string) => {
      rec("registry.remove", id);
      return true;
    },
  };
  const principals = (["admin-1", "ml-team-1", "reviewer-1"] as const).map((id) => ({ keyId: id, role: ROLE_OF[id], publicKey: Buffer.from(keys.get(id)!.publicRaw).toString("base64") }));
  const auth = new RecordingAuthenticator(registry as unknown as DeviceRegistry, principals as never, { burst: 1e6, perSecond: 1e6 });
  const offences = new Map<string, number>();
  const hub = {
    encoder: undefined as ((ev: unknown) => Buffer) | undefined,
    /** What disconnect answers (false: the stream was already replaced). */
    disconnectAnswer: true,
    /** The DeviceStream each Subscribe handed the hub, by device. */
    streams: new Map<string, DeviceStream>(),
    connect: (id: string, stream: DeviceStream, eligible: boolean) => {
      hub.streams.set(id, stream);
      rec("hub.connect", id, eligible);
    },
    disconnect: (id: string) => {
      rec("hub.disconnect", id);
      return hub.disconnectAnswer;
    },
    remove: (id: string) => rec("hub.remove", id),
  };
  const log = {
    info: (obj: Record<string, unknown>, msg: string) => void logs.push({ level: "info", obj, msg }),
    warn: (obj: Record<string, unknown>, msg: string) => void logs.push({ level: "warn", obj, msg }),
    error: (obj: Record<string, unknown>, msg: string) => void logs.push({ level: "error", obj, msg }),
  };
  const base = {
    auth,
    log,
    watchSlots: new StreamSlots("WatchRun", 2, 3),
    subscribeBacklogBytes: 100,
    dropConnection: (peer: string) => {
      rec("dropConnection", peer);
      return false;
    },
    registry,
    ledger: {
      enrollmentToken: async (r: unknown) => rec("ledger.enrollmentToken", r),
      enrollment: async (e: unknown) => rec("ledger.enrollment", e),
      offence: async (e: { deviceId: string }) => {
        rec("ledger.offence", e);
        offences.set(e.deviceId, (offences.get(e.deviceId) ?? 0) + 1);
      },
      offences: (id: string) => offences.get(id) ?? 0,
    },
    runs: { list: async () => [] as string[] },
    hub,
    signingKey: { publicRaw: new Uint8Array(32).fill(7) },
    activeRound: (r: unknown) => {
      rec("activeRound", r);
      throw new Error("no active round in this test");
    },
    launchRun: async (specJson: string, sig: Uint8Array, requester: string) => {
      rec("launchRun", specJson, Buffer.from(sig).toString("hex"), requester);
      return { runId: "run-launched" };
    },
    cancelRun: async (runId: string) => rec("cancelRun", runId),
    runStatus: async (runId: string) => {
      rec("runStatus", runId);
      return { runId, state: "running" };
    },
    ledgerPages: async function* (): AsyncIterable<string[]> {},
    policyJson: async () => undefined,
    installPolicy: async (json: string) => rec("installPolicy", json),
  };
  // The test's replacements win; the fields keep the types of the defaults above.
  const api = Object.assign(base, over);
  const c = api as unknown as CoordinatorApi;
  const services = buildServices(c) as unknown as Record<Service, Record<string, (call: unknown, cb?: unknown) => void>>;

  const md = (who: Who, service: Service, method: string): grpc.Metadata => signedMetadata({ keyId: who, privateKey: keys.get(who)!.privateKey }, `/tacit.v1.${SERVICE_NAME[service]}/${method}`);

  /** Calls a unary handler as grpc-js would; `who` undefined sends no credentials. */
  function unary<T = Record<string, unknown>>(service: Service, method: string, who: Who | undefined, request: unknown, metadata?: grpc.Metadata): Promise<Outcome<T>> {
    const handler = services[service][method];
    if (!handler) throw new Error(`no handler ${service}.${method}`);
    return new Promise((resolve) => {
      const call = { request, metadata: metadata ?? (who ? md(who, service, method) : new grpc.Metadata()), getPeer: () => "127.0.0.1:40000" };
      handler(call, (err: grpc.ServiceError | null, value?: T) => resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: "", value: value as T }));
    });
  }

  /** Opens a server-streaming handler as grpc-js would; the returned stream records what happens on it. */
  function stream(service: Service, method: string, who: Who | undefined, request: unknown, o: { writeReturns?: boolean; holdWrites?: boolean; cancelled?: boolean; peer?: string } = {}): FakeStream {
    const handler = services[service][method];
    if (!handler) throw new Error(`no handler ${service}.${method}`);
    let finish!: () => void;
    // Settled a turn after the handler's last act, so that what it does after ending (its
    // finally blocks) has happened by then; or, for a handler that never ends the stream, after
    // STREAM_DEADLINE_MS with `timedOut` set (and the call marked cancelled, to stop its polling).
    const finished = new Promise<void>((r) => (finish = () => void setImmediate(r)));
    let deadline: NodeJS.Timeout | undefined;
    const expired = new Promise<void>((r) => {
      deadline = setTimeout(() => {
        s.timedOut = true;
        s.cancelled = true;
        r();
      }, STREAM_DEADLINE_MS);
      deadline.unref();
    });
    const done = Promise.race([finished, expired]).then(() => clearTimeout(deadline));
    const s = Object.assign(new EventEmitter(), {
      request,
      metadata: who ? md(who, service, method) : new grpc.Metadata(),
      cancelled: o.cancelled ?? false,
      writes: [] as unknown[],
      pendingCallbacks: [] as (() => void)[],
      writeReturns: o.writeReturns ?? true,
      holdWrites: o.holdWrites ?? false,
      ended: false,
      timedOut: false,
      endTrailers: "none" as grpc.Metadata | undefined | "none",
      destroyedWith: undefined as Error | undefined,
      error: undefined as grpc.ServiceError | undefined,
      peer: o.peer ?? "127.0.0.1:40001",
      done,
      getPeer(): string {
        return s.peer;
      },
      write(msg: unknown, cb?: () => void): boolean {
        s.writes.push(msg);
        if (cb) (s.holdWrites ? s.pendingCallbacks.push(cb) : cb());
        return s.writeReturns;
      },
      end(trailers?: grpc.Metadata): void {
        s.ended = true;
        s.endTrailers = trailers;
        finish();
      },
      destroy(err?: Error): void {
        s.destroyedWith = err;
        finish();
      },
    }) as FakeStream;
    s.on("error", (e: grpc.ServiceError) => {
      // The handler's own refusals carry a code; an error a test emits to mimic grpc-js does not.
      if (typeof e.code === "number") {
        s.error = e;
        finish();
      }
    });
    handler(s);
    return s;
  }

  return { api, c, auth, keys, calls, logs, hub, offences, services, md, unary, stream };
}

export type HandlerHarness = ReturnType<typeof handlerHarness>;

