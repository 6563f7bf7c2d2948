/**
 * The coordinator's small guards on their own (coordinator/server): the per-caller token bucket,
 * the long-lived stream slots, the deserializer wrapper that turns an undecodable protobuf into
 * a specific refusal, and the capped frame decoder. The live-coordinator tests reach them too;
 * these pin their arithmetic and messages exactly, in milliseconds.
 */
import { describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { RateLimiter } from "../coordinator/server/rate-limiter.ts";
import { StreamSlots } from "../coordinator/server/stream-slots.ts";
import { hardenService, isMalformed, MALFORMED } from "../coordinator/server/harden-service.ts";
import { cappedDecoder } from "../coordinator/server/request-gate.ts";
import { toServiceError } from "../coordinator/server/status-boundary.ts";

describe("RateLimiter", () => {
  it("allows a burst, then refuses until tokens refill at the rate, never above the burst", () => {
    const r = new RateLimiter(3, 2);
    const t0 = 1_000_000;
    expect(r.available("a", t0)).toBe(true);
    expect([1, 2, 3, 4].map(() => r.take("a", t0))).toEqual([true, true, true, false]);
    expect(r.available("a", t0)).toBe(false);
    // Another caller has its own bucket.
    expect(r.take("b", t0)).toBe(true);
    // 2 tokens/s: after 0.4 s only 0.8 tokens, after 0.5 s one.
    expect(r.available("a", t0 + 400)).toBe(false);
    expect(r.take("a", t0 + 400)).toBe(false);
    expect(r.available("a", t0 + 900)).toBe(true);
    expect(r.take("a", t0 + 900)).toBe(true);
    expect(r.take("a", t0 + 900)).toBe(false);
    // A long pause refills to the burst, not beyond it.
    expect([1, 2, 3, 4].map(() => r.take("a", t0 + 3_600_000))).toEqual([true, true, true, false]);
  });

  it("a refused take does not spend what is left toward the next token", () => {
    const r = new RateLimiter(1, 1);
    expect(r.take("a", 0)).toBe(true);
    expect(r.take("a", 500)).toBe(false); // 0.5 tokens, kept
    expect(r.take("a", 1000)).toBe(true); // 1.0 token
  });

  it("the defaults are a burst of 60 at 20/s", () => {
    const r = new RateLimiter();
    const results = Array.from({ length: 61 }, () => r.take("a", 0));
    expect(results.filter(Boolean)).toHaveLength(60);
    expect(r.take("a", 49)).toBe(false);
    expect(r.take("a", 50)).toBe(true);
  });

  it("bounds its memory: past 100,000 callers it forgets them all", () => {
    const r = new RateLimiter(1, 0.001);
    expect(r.take("first", 0)).toBe(true);
    expect(r.take("first", 0)).toBe(false);
    for (let i = 0; i < 100_000; i++) r.take(`k${i}`, 0);
    expect(r.take("first", 0)).toBe(true);
  });
});

describe("StreamSlots", () => {
  it("gives each caller its own slots and everyone a total, and refuses with RESOURCE_EXHAUSTED naming the bound", () => {
    const s = new StreamSlots("WatchRun", 2, 3);
    const a1 = s.acquire("a");
    s.acquire("a");
    const third = (() => { try { s.acquire("a"); } catch (e) { return toServiceError(e); } return undefined; })();
    expect(third).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, details: "a already has 2 WatchRun streams open (at most 2): close one first" });
    s.acquire("b");
    const full = (() => { try { s.acquire("c"); } catch (e) { return toServiceError(e); } return undefined; })();
    expect(full).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, details: "the coordinator already serves 3 WatchRun streams (at most 3): try again later" });
    expect([s.open(), s.open("a"), s.open("b"), s.open("c")]).toEqual([3, 2, 1, 0]);
    a1();
    a1(); // released once, however often it is called
    expect([s.open(), s.open("a")]).toEqual([2, 1]);
    expect(() => s.acquire("c")).not.toThrow();
  });

  it("a caller whose last slot is released holds none", () => {
    const s = new StreamSlots("WatchRun", 1, 10);
    const release = s.acquire("a");
    release();
    expect(s.open("a")).toBe(0);
    expect(s.open()).toBe(0);
    expect(() => s.acquire("a")).not.toThrow();
  });
});

describe("hardenService", () => {
  const method = {
    path: "/x.Y/Z", requestStream: false, responseStream: false,
    requestSerialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
    requestDeserialize: (b: Buffer) => {
      if (b[0] !== 0x7b) throw new Error(`index out of range: ${"x".repeat(300)}`);
      return JSON.parse(String(b)) as unknown;
    },
    responseSerialize: (v: unknown) => Buffer.from(`r:${JSON.stringify(v)}`),
    responseDeserialize: (b: Buffer) => String(b),
  } as unknown as grpc.MethodDefinition<unknown, unknown>;
  const hardened = hardenService({ Z: method } as grpc.ServiceDefinition).Z!;

  it("decodes a good request as before, and turns a bad one into a marker with the reason (at most 200 characters)", () => {
    expect(hardened.requestDeserialize(Buffer.from('{"a":1}'))).toEqual({ a: 1 });
    const bad = hardened.requestDeserialize(Buffer.from([0xff, 1]));
    expect(isMalformed(bad)).toBe(true);
    const reason = (bad as { [MALFORMED]: string })[MALFORMED];
    expect(reason.startsWith("index out of range: xxx")).toBe(true);
    expect(reason).toHaveLength(200);
    expect(hardened.path).toBe("/x.Y/Z");
  });

  it("passes an already-serialized response through, and serializes anything else", () => {
    const pre = Buffer.from("pre-encoded");
    expect(hardened.responseSerialize(pre)).toBe(pre);
    expect(String(hardened.responseSerialize({ b: 2 }))).toBe('r:{"b":2}');
  });

  it("isMalformed is true only for the marker", () => {
    expect([null, undefined, 1, "x", {}, { malformed: "x" }].map(isMalformed)).toEqual([false, false, false, false, false, false]);
    expect(isMalformed({ [MALFORMED]: "" })).toBe(true);
  });
});

describe("cappedDecoder", () => {
  const frame = (body: Buffer, compressed = 0): Buffer => {
    const h = Buffer.alloc(5);
    h.writeUInt8(compressed, 0);
    h.writeUInt32BE(body.length, 1);
    return Buffer.concat([h, body]);
  };

  it("passes frames up to the cap, across writes", () => {
    const d = cappedDecoder(8);
    const f = frame(Buffer.from("12345678"));
    expect(d.write(f.subarray(0, 3))).toEqual([]);
    const out = d.write(f.subarray(3));
    expect(out).toHaveLength(1);
    expect(out[0]!.subarray(5).toString()).toBe("12345678");
  });

  it("refuses a frame over the cap and a frame marked compressed", () => {
    expect(() => cappedDecoder(8).write(frame(Buffer.from("123456789")))).toThrow();
    expect(() => cappedDecoder(64).write(frame(Buffer.from("abc"), 1))).toThrow("compressed requests are refused: send grpc-encoding identity");
  });
});
