/**
 * Issue #16: the two long-lived streams of coordinator/server/handlers.ts, in process.
 *
 * WatchRun: a status is written only when it changed, the stream ends at each terminal state
 * (and not before), a cancelled call stops polling, and the per-principal and overall slots
 * (I2) are taken on admission and given back on every way a stream ends.
 *
 * Subscribe: quarantine, the device's eligibility, the immediate and periodic heartbeats, the
 * backlog of unread bytes (I6) with the slow reader's drop (its connection closed, or the stream
 * destroyed when the connection is unknown), trailers, and why a stream ended in the log.
 */
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it, vi } from "vitest";
import { notFound } from "../coordinator/server/request-errors.ts";
import { QUARANTINE_AFTER } from "../coordinator/state/offences.ts";
import { handlerHarness, type FakeStream } from "./support/handler-harness.ts";
import { waitFor } from "./support/wait.ts";

const S = grpc.status;

/**
 * A runStatus that answers `states` in turn for `runId` (each call the next; the last one again
 * with `repeatLast`), and otherwise throws, so that a stream which should have ended fails fast
 * instead of polling until the test's timeout.
 */
function scripted(states: string[], o: { repeatLast?: boolean } = {}) {
  const asked: string[] = [];
  const runStatus = async (runId: string) => {
    asked.push(runId);
    const i = asked.length - 1;
    if (i >= states.length && !o.repeatLast) throw new Error(`runStatus asked ${asked.length} times; the script has ${states.length}`);
    const state = states[Math.min(i, states.length - 1)]!;
    return { runId, state, currentPhase: state === "running" ? `phase-${Math.min(i, states.length - 1) >= 3 ? "b" : "a"}` : state };
  };
  return { asked, runStatus };
}

const states = (s: FakeStream) => s.writes.map((w) => (w as { state: string }).state);

describe("RunControl/WatchRun", () => {
  it("writes each status once when it changes, and ends after the run completes; the slot is given back", async () => {
    const run = scripted(["queued", "queued", "running", "running", "completed"]);
    const h = handlerHarness({ runStatus: run.runStatus });
    const s = h.stream("runControl", "WatchRun", "ml-team-1", { runId: "run-w" });
    await waitFor("the first status", () => s.writes.length === 1);
    expect(h.api.watchSlots.open("ml-team-1")).toBe(1);
    await s.done;
    expect(s.error).toBeUndefined();
    expect(s.ended).toBe(true);
    expect(s.endTrailers).toBeUndefined();
    expect(s.writes).toEqual([
      { runId: "run-w", state: "queued", currentPhase: "queued" },
      { runId: "run-w", state: "running", currentPhase: "phase-a" },
      { runId: "run-w", state: "running", currentPhase: "phase-b" },
      { runId: "run-w", state: "completed", currentPhase: "completed" },
    ]);
    expect(run.asked).toEqual(Array<string>(5).fill("run-w"));
    expect([h.api.watchSlots.open("ml-team-1"), h.api.watchSlots.open()]).toEqual([0, 0]);
  });

  it.each(["completed", "failed", "cancelled"])("a run already %s: one status, then the end", async (state) => {
    const run = scripted([state]);
    const h = handlerHarness({ runStatus: run.runStatus });
    const s = h.stream("runControl", "WatchRun", "reviewer-1", { runId: "run-t" });
    await s.done;
    expect([s.error, s.ended, states(s), run.asked.length]).toEqual([undefined, true, [state], 1]);
    expect(h.api.watchSlots.open()).toBe(0);
  });

  it.each(["failed", "cancelled"])("a run that ends %s after running ends the stream there", async (state) => {
    const run = scripted(["running", state]);
    const h = handlerHarness({ runStatus: run.runStatus });
    const s = h.stream("runControl", "WatchRun", "reviewer-1", { runId: "run-t" });
    await s.done;
    expect([s.error, s.ended, states(s)]).toEqual([undefined, true, ["running", state]]);
  });

  it("a call already cancelled reads nothing and ends; one cancelled while watching stops polling", async () => {
    const run = scripted(["running"], { repeatLast: true });
    const h = handlerHarness({ runStatus: run.runStatus });
    const gone = h.stream("runControl", "WatchRun", "ml-team-1", { runId: "run-c" }, { cancelled: true });
    await gone.done;
    expect([gone.ended, gone.writes, run.asked]).toEqual([true, [], []]);
    const s = h.stream("runControl", "WatchRun", "ml-team-1", { runId: "run-c" });
    await waitFor("the first status", () => s.writes.length === 1);
    s.cancelled = true;
    await s.done;
    expect([s.ended, states(s), run.asked.length]).toEqual([true, ["running"], 1]);
    expect(h.api.watchSlots.open()).toBe(0);
  });

  it("reads the run's status again every 250 ms (a fake clock: no timing assumption)", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout"] });
    try {
      const run = scripted(["running"], { repeatLast: true });
      const h = handlerHarness({ runStatus: run.runStatus });
      const s = h.stream("runControl", "WatchRun", "reviewer-1", { runId: "run-p" });
      // setImmediate is not faked: let the handler authenticate and read once.
      for (let i = 0; i < 50 && run.asked.length === 0; i++) await new Promise((r) => setImmediate(r));
      expect(run.asked.length).toBe(1);
      await vi.advanceTimersByTimeAsync(249);
      expect(run.asked.length).toBe(1);
      await vi.advanceTimersByTimeAsync(1);
      expect(run.asked.length).toBe(2);
      await vi.advanceTimersByTimeAsync(500);
      expect(run.asked.length).toBe(4);
      // An unchanged status is not written again.
      expect(s.writes).toHaveLength(1);
      s.cancelled = true;
      await vi.advanceTimersByTimeAsync(250);
      expect([s.ended, run.asked.length]).toEqual([true, 4]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("a run the coordinator does not know ends the stream with its NOT_FOUND; the slot is given back", async () => {
    const h = handlerHarness({
      runStatus: async (id: string) => {
        throw notFound(`no run ${id}`);
      },
    });
    const s = h.stream("runControl", "WatchRun", "reviewer-1", { runId: "run-none" });
    await s.done;
    expect([s.error?.code, s.error?.details, s.writes]).toEqual([S.NOT_FOUND, "no run run-none", []]);
    expect(h.api.watchSlots.open()).toBe(0);
  });

  it("bounds the streams per principal and overall (2 and 3 here), naming the bound; a refused stream takes no slot", async () => {
    const run = scripted(["running"], { repeatLast: true });
    const h = handlerHarness({ runStatus: run.runStatus });
    const open = (who: "ml-team-1" | "reviewer-1") => h.stream("runControl", "WatchRun", who, { runId: "run-b" });
    const a = open("ml-team-1");
    const b = open("ml-team-1");
    await waitFor("two streams admitted", () => a.writes.length === 1 && b.writes.length === 1);
    const third = open("ml-team-1");
    await third.done;
    expect([third.error?.code, third.error?.details]).toEqual([S.RESOURCE_EXHAUSTED, "ml-team-1 already has 2 WatchRun streams open (at most 2): close one first"]);
    const c = open("reviewer-1");
    await waitFor("the reviewer's stream admitted", () => c.writes.length === 1);
    const fourth = open("reviewer-1");
    await fourth.done;
    expect([fourth.error?.code, fourth.error?.details]).toEqual([S.RESOURCE_EXHAUSTED, "the coordinator already serves 3 WatchRun streams (at most 3): try again later"]);
    expect([h.api.watchSlots.open("ml-team-1"), h.api.watchSlots.open("reviewer-1"), h.api.watchSlots.open()]).toEqual([2, 1, 3]);
    // Refused for its role or its message: no slot either.
    const device = h.stream("runControl", "WatchRun", "dev-a", { runId: "run-b" });
    await device.done;
    expect(device.error?.code).toBe(S.PERMISSION_DENIED);
    expect(h.api.watchSlots.open()).toBe(3);
    for (const s of [a, b, c]) s.cancelled = true;
    await Promise.all([a.done, b.done, c.done]);
    expect(h.api.watchSlots.open()).toBe(0);
  });

  it.each(["cancelled", "close", "error"] as const)("gives the slot back as soon as the call emits '%s', before its poll notices", async (event) => {
    const run = scripted(["running"], { repeatLast: true });
    const h = handlerHarness({ runStatus: run.runStatus });
    const s = h.stream("runControl", "WatchRun", "ml-team-1", { runId: "run-e" });
    await waitFor("the first status", () => s.writes.length === 1);
    expect(h.api.watchSlots.open("ml-team-1")).toBe(1);
    s.emit(event, new Error("connection reset"));
    expect([h.api.watchSlots.open("ml-team-1"), h.api.watchSlots.open()]).toEqual([0, 0]);
    // The slot is free for another stream of the same principal while this one still polls.
    const again = h.stream("runControl", "WatchRun", "ml-team-1", { runId: "run-e" });
    await waitFor("another stream admitted", () => again.writes.length === 1);
    expect(h.api.watchSlots.open("ml-team-1")).toBe(1);
    s.cancelled = true;
    again.cancelled = true;
    await Promise.all([s.done, again.done]);
    // Released once only: the late end of the first stream does not free the second's slot twice.
    expect(h.api.watchSlots.open()).toBe(0);
  });
});

describe("Rounds/Subscribe", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Admits dev-a's Subscribe stream and returns it with the DeviceStream the hub was given. */
  async function subscribed(h: ReturnType<typeof handlerHarness>, request: unknown = { eligible: true, backend: "cpu" }, o: Parameters<ReturnType<typeof handlerHarness>["stream"]>[4] = {}) {
    const s = h.stream("rounds", "Subscribe", "dev-a", request, o);
    await waitFor("the device connected", () => h.hub.streams.has("dev-a"));
    return { s, stream: h.hub.streams.get("dev-a")! };
  }

  it("connects the device as eligible unless it says it is not, and writes a heartbeat at once", async () => {
    for (const [request, eligible] of [[{ eligible: true }, true], [{}, true], [{ eligible: false }, false]] as const) {
      const h = handlerHarness();
      const before = Date.now();
      const { s } = await subscribed(h, request);
      expect(h.calls, JSON.stringify(request)).toEqual([["hub.connect", "dev-a", eligible]]);
      expect(s.writes).toHaveLength(1);
      const hb = s.writes[0] as { heartbeat: { timeMs: string } };
      expect(Object.keys(hb)).toEqual(["heartbeat"]);
      expect(Number(hb.heartbeat.timeMs)).toBeGreaterThanOrEqual(before);
      expect(Number(hb.heartbeat.timeMs)).toBeLessThanOrEqual(Date.now());
      expect(s.ended).toBe(false);
      s.emit("close");
    }
  });

  it("refuses a device with QUARANTINE_AFTER offences in the ledger, naming the count; one fewer is served", async () => {
    const h = handlerHarness();
    h.offences.set("dev-a", QUARANTINE_AFTER);
    const s = h.stream("rounds", "Subscribe", "dev-a", { eligible: true });
    await s.done;
    expect([s.error?.code, s.error?.details]).toEqual([S.PERMISSION_DENIED, `device dev-a is quarantined after ${QUARANTINE_AFTER} offences recorded in the ledger`]);
    expect(h.calls).toEqual([]);
    h.offences.set("dev-a", QUARANTINE_AFTER - 1);
    const { s: ok } = await subscribed(h);
    expect(ok.error).toBeUndefined();
    ok.emit("close");
  });

  it("writes serialized events as they are, and encodes the others with the hub's encoder", async () => {
    const h = handlerHarness();
    h.hub.encoder = (ev) => Buffer.from(JSON.stringify(ev));
    const { s, stream } = await subscribed(h);
    expect(Buffer.isBuffer(s.writes[0])).toBe(true);
    expect(JSON.parse(String(s.writes[0]))).toHaveProperty("heartbeat");
    const pre = Buffer.from("already serialized");
    expect(stream.write(pre)).toBe(true);
    expect(stream.write({ invite: {} } as never)).toBe(true);
    expect(s.writes.slice(1)).toEqual([pre, Buffer.from('{"invite":{}}')]);
    s.emit("close");
  });

  it("without an encoder writes the event object itself and counts it as no bytes", async () => {
    const h = handlerHarness();
    h.api.subscribeBacklogBytes = 1;
    const { s, stream } = await subscribed(h, { eligible: true }, { holdWrites: true });
    for (let i = 0; i < 5; i++) expect(stream.write({ roster: { i } } as never)).toBe(true);
    expect(s.writes.slice(1)).toEqual(Array.from({ length: 5 }, (_, i) => ({ roster: { i } })));
    expect(h.calls.map((c) => c[0])).toEqual(["hub.connect"]);
    s.emit("close");
  });

  it("counts unread bytes until each write is sent: admits up to the limit, then drops the slow reader and closes its connection", async () => {
    const h = handlerHarness();
    h.hub.encoder = () => Buffer.alloc(40); // the heartbeat: 40 bytes
    const peers: string[] = [];
    h.api.dropConnection = (peer: string) => (peers.push(peer), true);
    const { s, stream } = await subscribed(h, { eligible: true }, { holdWrites: true, peer: "127.0.0.1:51234" });
    // 40 unread; 60 more makes exactly the limit (100).
    expect(stream.write(Buffer.alloc(60))).toBe(true);
    // The first 40 are sent: 60 unread, 40 more is the limit again.
    s.pendingCallbacks.shift()!();
    expect(stream.write(Buffer.alloc(40))).toBe(true);
    expect(h.logs).toEqual([]);
    // One byte more is refused: the device is dropped.
    expect(stream.write(Buffer.alloc(1))).toBe(false);
    expect(s.writes.map((w) => (w as Buffer).length)).toEqual([40, 60, 40]);
    expect(h.logs).toEqual([
      { level: "warn", obj: { deviceId: "dev-a", unreadBytes: 100, limit: 100 }, msg: "device is not reading its Subscribe stream: dropped as a slow reader" },
      { level: "info", obj: { deviceId: "dev-a", why: "slow reader" }, msg: "device's Subscribe stream ended" },
    ]);
    expect(h.calls.map((c) => c[0])).toEqual(["hub.connect", "hub.disconnect"]);
    expect(peers).toEqual(["127.0.0.1:51234"]);
    expect(s.destroyedWith).toBeUndefined();
  });

  it("destroys the stream itself when its connection is not known to the listener, naming the bytes and the limit", async () => {
    const h = handlerHarness();
    h.hub.encoder = () => Buffer.alloc(70);
    const { s, stream } = await subscribed(h, { eligible: true }, { holdWrites: true, peer: "127.0.0.1:51235" });
    expect(stream.write(Buffer.alloc(31))).toBe(false);
    expect(h.calls).toEqual([["hub.connect", "dev-a", true], ["hub.disconnect", "dev-a"], ["dropConnection", "127.0.0.1:51235"]]);
    expect(s.destroyedWith?.message).toBe("Subscribe stream closed: 70 bytes unread by the device, over the 100-byte limit");
    // Whatever its size, a message onto an empty backlog is admitted (a checkpoint past the limit).
    s.pendingCallbacks.shift()!();
    expect(stream.write(Buffer.alloc(500))).toBe(true);
  });

  it("ends the stream with the trailers it is given, or none", async () => {
    const h = handlerHarness();
    const { s, stream } = await subscribed(h);
    stream.end({ "retry-after-ms": "1500", "tacit-reason": "superseded" });
    const md = s.endTrailers as grpc.Metadata;
    expect(md).toBeInstanceOf(grpc.Metadata);
    expect(md.getMap()).toEqual({ "retry-after-ms": "1500", "tacit-reason": "superseded" });
    const h2 = handlerHarness();
    const plain = await subscribed(h2);
    plain.stream.end();
    expect(plain.s.ended).toBe(true);
    expect(plain.s.endTrailers).toBeUndefined();
  });

  it.each([
    ["cancelled", undefined, "cancelled by the device or its connection"],
    ["close", undefined, "closed"],
    ["error", new Error("socket hang up"), "error: socket hang up"],
  ] as const)("a stream that emits '%s' is disconnected from the hub and logged once with why", async (event, arg, why) => {
    const h = handlerHarness();
    const { s } = await subscribed(h);
    s.emit(event, arg);
    expect(h.calls).toEqual([["hub.connect", "dev-a", true], ["hub.disconnect", "dev-a"]]);
    expect(h.logs).toEqual([{ level: "info", obj: { deviceId: "dev-a", why }, msg: "device's Subscribe stream ended" }]);
  });

  it("a stream its own reconnect already replaced is not logged as ended", async () => {
    const h = handlerHarness();
    h.hub.disconnectAnswer = false;
    const { s } = await subscribed(h);
    s.emit("close");
    expect(h.calls.map((c) => c[0])).toEqual(["hub.connect", "hub.disconnect"]);
    expect(h.logs).toEqual([]);
  });

  it("writes a heartbeat every 15 s while connected, and none after the stream ended", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    const h = handlerHarness();
    const { s } = await subscribed(h);
    expect(s.writes).toHaveLength(1);
    vi.advanceTimersByTime(14_999);
    expect(s.writes).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(s.writes).toHaveLength(2);
    expect(Object.keys(s.writes[1] as object)).toEqual(["heartbeat"]);
    vi.advanceTimersByTime(15_000);
    expect(s.writes).toHaveLength(3);
    s.emit("cancelled");
    vi.advanceTimersByTime(60_000);
    expect(s.writes).toHaveLength(3);
  });
});
