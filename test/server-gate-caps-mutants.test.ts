/**
 * The coordinator's first line against bad input, pinned exactly (issue #16: loosening a body cap,
 * dropping the compressed-request refusal or the body deadline broke no test). message-caps.ts:
 * every per-method cap as a number, so a cap cannot grow or shrink unnoticed. request-gate.ts: the
 * interceptor driven in-process over a fake grpc-js base call (no server, fake timers): the
 * startup check of the grpc-js internals it replaces, the refusal of compressed requests before
 * admission, the peer it hands to `admit`, the capped decoder it installs, and the body deadline
 * that fires unless a message arrives or the call is cancelled first.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { DEFAULT_REQUEST_CAP, MAX_SHARE_BYTES, requestCap } from "../coordinator/server/message-caps.ts";
import { requestGate, type RequestGateOptions } from "../coordinator/server/request-gate.ts";
import { unauthenticated } from "../coordinator/server/request-errors.ts";

const round = (parameterCount: number, bits: number, members: number) => ({
  parameterCount,
  cohort: { size: members, root: "0".repeat(64) },
  secagg: { bits } as never,
});

describe("requestCap: exact per-method caps", () => {
  it("fixed caps: 64 KiB spec or 16 KiB payload plus 1 KiB headroom", () => {
    expect(requestCap("/tacit.v1.RunControl/LaunchRun", [])).toBe(64 * 1024 + 1024);
    expect(requestCap("/tacit.v1.Ledger/SetPolicy", [])).toBe(16 * 1024 + 1024);
    expect(requestCap("/tacit.v1.Rounds/SubmitAttestation", [round(1 << 20, 64, 1000)])).toBe(16 * 1024 + 1024);
    expect(requestCap("/tacit.v1.Other/Method", [round(1 << 20, 64, 1000)])).toBe(DEFAULT_REQUEST_CAP);
    expect(DEFAULT_REQUEST_CAP).toBe(4096);
  });

  it("SubmitMaskedInput: 4 bytes per padded element up to 32 bits, 8 above", () => {
    const path = "/tacit.v1.Rounds/SubmitMaskedInput";
    expect(requestCap(path, [])).toBe(1024);
    expect(requestCap(path, [round(1000, 32, 5)])).toBe(1024 * 4 + 1024);
    expect(requestCap(path, [round(1000, 31, 5)])).toBe(1024 * 4 + 1024);
    expect(requestCap(path, [round(1000, 33, 5)])).toBe(1024 * 8 + 1024);
    expect(requestCap(path, [round(1000, 64, 5)])).toBe(1024 * 8 + 1024);
    // The largest of the active rounds.
    expect(requestCap(path, [round(100, 64, 5), round(1000, 32, 5), round(10, 64, 5)])).toBe(1024 * 4 + 1024);
  });

  it("ShareKeys: one share ciphertext of at most MAX_SHARE_BYTES + 32 per cohort member", () => {
    const path = "/tacit.v1.Rounds/ShareKeys";
    expect(MAX_SHARE_BYTES).toBe(4096);
    expect(requestCap(path, [])).toBe(1024);
    expect(requestCap(path, [round(10, 32, 5)])).toBe(5 * (4096 + 32) + 1024);
    expect(requestCap(path, [round(10, 32, 3), round(10, 32, 7), round(10, 32, 2)])).toBe(7 * 4128 + 1024);
  });

  it("SubmitUnmasking: two 128-byte Shamir shares per cohort member", () => {
    const path = "/tacit.v1.Rounds/SubmitUnmasking";
    expect(requestCap(path, [])).toBe(1024);
    expect(requestCap(path, [round(1 << 20, 64, 5)])).toBe(5 * 2 * 128 + 1024);
    expect(requestCap(path, [round(10, 32, 100), round(10, 32, 3)])).toBe(100 * 256 + 1024);
  });
});

type Status = { code?: grpc.status; details?: string; metadata?: grpc.Metadata | null };
/** What grpc-js hands the base call's start: one-argument callbacks. */
type Listener = Parameters<grpc.ServerInterceptingCallInterface["start"]>[0];

/** A fake grpc-js base call: the two internals the gate replaces plus what it calls on the call. */
function baseCall(internals: { decoder?: unknown; incomingEncoding?: unknown }, remoteAddress?: string) {
  const statuses: Status[] = [];
  let listener: Listener | undefined;
  const call = {
    ...internals,
    start: (l: Listener) => {
      listener = l;
    },
    sendStatus: (s: Status) => statuses.push(s),
    getConnectionInfo: () => (remoteAddress === undefined ? {} : { remoteAddress, remotePort: 1234 }),
  };
  return { call, statuses, listener: () => listener! };
}

const PATH = "/tacit.v1.Rounds/ShareKeys";
const METHOD = { path: PATH } as unknown as grpc.ServerMethodDefinition<unknown, unknown>;
const frame = (len: number): Buffer => {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(len, 1);
  return Buffer.concat([h, Buffer.alloc(len, 7)]);
};

/** Starts the gated call; returns the fake base call and what reached the next listener. */
function gated(opts: Partial<RequestGateOptions>, internals: { decoder?: unknown; incomingEncoding?: unknown } = {}, remoteAddress?: string) {
  const admitted: [grpc.Metadata, string, string][] = [];
  const caps: string[] = [];
  const full: RequestGateOptions = {
    admit: async (md, method, peer) => {
      admitted.push([md, method, peer]);
    },
    capFor: (method) => {
      caps.push(method);
      return 16;
    },
    requestTimeoutMs: 50,
    ...opts,
  };
  const original = { write: (): Buffer[] => [] };
  const base = baseCall({ decoder: original, incomingEncoding: "identity", ...internals }, remoteAddress);
  const interceptor = requestGate(full);
  const gatedCall = interceptor(METHOD, base.call as unknown as grpc.ServerInterceptingCallInterface);
  const next = { metadata: [] as grpc.Metadata[], messages: [] as unknown[], cancels: 0 };
  gatedCall.start({
    onReceiveMetadata: (md) => next.metadata.push(md),
    onReceiveMessage: (m) => next.messages.push(m),
    onReceiveHalfClose: () => undefined,
    onCancel: () => next.cancels++,
  });
  return { base, next, admitted, caps, original, decoder: () => (base.call as unknown as { decoder: { write(b: Buffer): Buffer[] } }).decoder };
}

const flush = async (): Promise<void> => {
  await vi.advanceTimersByTimeAsync(0);
};

describe("requestGate", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("refuses at startup a grpc-js call that does not expose the decoder and encoding it replaces", () => {
    const msg = "request gate: this grpc-js version does not expose the call's decoder; the body caps cannot be enforced";
    const gate = requestGate({ admit: async () => undefined, capFor: () => 1, requestTimeoutMs: 10 });
    const start = (internals: Record<string, unknown>) => () => gate(METHOD, baseCall(internals).call as unknown as grpc.ServerInterceptingCallInterface);
    expect(start({ incomingEncoding: "identity" })).toThrow(msg);
    expect(start({ decoder: {}, incomingEncoding: "identity" })).toThrow(msg);
    expect(start({ decoder: { write: "x" }, incomingEncoding: "identity" })).toThrow(msg);
    expect(start({ decoder: { write: () => [] } })).toThrow(msg);
    expect(start({ decoder: { write: () => [] }, incomingEncoding: 0 })).toThrow(msg);
    expect(start({ decoder: { write: () => [] }, incomingEncoding: "identity" })).not.toThrow();
  });

  it("refuses a compressed request with UNIMPLEMENTED before admitting or reading it", async () => {
    vi.useFakeTimers();
    const g = gated({}, { incomingEncoding: "gzip" });
    g.base.listener().onReceiveMetadata(new grpc.Metadata());
    await flush();
    expect(g.base.statuses).toEqual([{ code: grpc.status.UNIMPLEMENTED, details: "compressed requests (gzip) are refused: send grpc-encoding identity", metadata: null }]);
    expect(g.admitted).toEqual([]);
    expect(g.caps).toEqual([]);
    expect(g.next.metadata).toEqual([]);
    expect(g.decoder()).toBe(g.original);
  });

  it("admits from metadata, names an unknown peer 'unknown', then installs the method's capped decoder", async () => {
    vi.useFakeTimers();
    const g = gated({});
    const md = new grpc.Metadata();
    md.set("x-k", "v");
    g.base.listener().onReceiveMetadata(md);
    await flush();
    expect(g.admitted).toEqual([[md, PATH, "unknown"]]);
    expect(g.caps).toEqual([PATH]);
    expect(g.next.metadata).toEqual([md]);
    expect(g.base.statuses).toEqual([]);
    expect(g.decoder()).not.toBe(g.original);
    expect(g.decoder().write(frame(16))).toHaveLength(1);
    expect(() => g.decoder().write(frame(17))).toThrow();

    const h = gated({}, {}, "10.1.2.3");
    h.base.listener().onReceiveMetadata(md);
    await flush();
    expect(h.admitted).toEqual([[md, PATH, "10.1.2.3"]]);
  });

  it("a refused caller gets admit's status and nothing is read", async () => {
    vi.useFakeTimers();
    const g = gated({ admit: async () => Promise.reject(unauthenticated("bad signature")) });
    g.base.listener().onReceiveMetadata(new grpc.Metadata());
    await flush();
    expect(g.base.statuses).toEqual([{ code: grpc.status.UNAUTHENTICATED, details: "bad signature", metadata: null }]);
    expect(g.next.metadata).toEqual([]);
    expect(g.caps).toEqual([]);
    expect(g.decoder()).toBe(g.original);
    await vi.advanceTimersByTimeAsync(1000);
    expect(g.base.statuses).toHaveLength(1);
  });

  it("ends an admitted call whose body does not arrive within requestTimeoutMs with DEADLINE_EXCEEDED", async () => {
    vi.useFakeTimers();
    const g = gated({ requestTimeoutMs: 50 });
    g.base.listener().onReceiveMetadata(new grpc.Metadata());
    await flush();
    await vi.advanceTimersByTimeAsync(49);
    expect(g.base.statuses).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(g.base.statuses).toEqual([{ code: grpc.status.DEADLINE_EXCEEDED, details: "request body not received within 50 ms", metadata: null }]);
  });

  it("a received message or a cancel stops the body deadline", async () => {
    vi.useFakeTimers();
    const g = gated({ requestTimeoutMs: 50 });
    g.base.listener().onReceiveMetadata(new grpc.Metadata());
    await flush();
    await vi.advanceTimersByTimeAsync(20);
    g.base.listener().onReceiveMessage({ body: 1 });
    expect(g.next.messages).toEqual([{ body: 1 }]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(g.base.statuses).toEqual([]);

    const c = gated({ requestTimeoutMs: 50 });
    c.base.listener().onReceiveMetadata(new grpc.Metadata());
    await flush();
    c.base.listener().onCancel();
    expect(c.next.cancels).toBe(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(c.base.statuses).toEqual([]);
  });
});
