/**
 * Issue 18 (4): devices come back without a storm. Pure rules (full jitter, the coordinator's
 * retry window) and the real path: a coordinator ending every Subscribe stream sends a window in
 * the trailers, and real devices reconnect at spread-out points inside it.
 */
import { afterAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import type { RoundConfig } from "../shared/run/index.ts";
import { encodeRetryWindow, fullJitterMs, MAX_RETRY_WINDOW_MS, parseRetryWindow, pointInWindow, retryWindowFor } from "../shared/transport/retry-window.ts";
import { TestCluster } from "./support/cluster.ts";
import { waitFor } from "./support/wait.ts";

const constantDelta = (value: number) => async (cfg: RoundConfig) => ({ delta: new Float32Array(cfg.parameterCount).fill(value), loss: 1, examples: 1 });

describe("reconnect rules", () => {
  it("full jitter stays in [0, min(cap, base·2ⁿ)) and reaches most of it", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 60 }), fc.double({ min: 0, max: 0.999999, noNaN: true }), (n, r) => {
        const d = fullJitterMs(n, 250, 10_000, () => r);
        const ceiling = Math.min(10_000, 250 * 2 ** n);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(ceiling);
        expect(d).toBe(Math.floor(r * ceiling));
      }),
    );
    // Not a constant: the same failure count gives different waits to different devices.
    expect(fullJitterMs(3, 250, 10_000, () => 0.1)).toBeLessThan(fullJitterMs(3, 250, 10_000, () => 0.9));
  });

  it("a point in the window is inside it", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 5000 }), fc.double({ min: 0, max: 0.999999, noNaN: true }), (min, span, r) => {
        const p = pointInWindow({ minMs: min, maxMs: min + span }, () => r);
        expect(p).toBeGreaterThanOrEqual(min);
        expect(p).toBeLessThanOrEqual(min + span);
      }),
    );
  });

  it("the window grows with the devices sent away and is bounded", () => {
    expect(retryWindowFor(10)).toEqual({ minMs: 2000, maxMs: 10_000 });
    expect(retryWindowFor(30_000).maxMs).toBe(100_000);
    expect(retryWindowFor(10_000_000).maxMs).toBe(MAX_RETRY_WINDOW_MS);
    fc.assert(fc.property(fc.nat(1e6), fc.nat(1e6), (a, b) => (a <= b ? retryWindowFor(a).maxMs <= retryWindowFor(b).maxMs : true)));
  });

  it.each([
    ["abc", /MIN-MAX/],
    ["5000-3000", /MIN is above MAX/],
    [`0-${MAX_RETRY_WINDOW_MS + 1}`, /MAX is above/],
    ["-1-5", /MIN-MAX/],
  ])("ignores a malformed window %s with the reason", (value, reason) => {
    const r = parseRetryWindow(value);
    expect(r.window).toBeUndefined();
    expect(r.error).toMatch(reason);
  });

  it("reads a window from a string or a buffer, and nothing from no trailer", () => {
    expect(parseRetryWindow(encodeRetryWindow({ minMs: 1500, maxMs: 4500 })).window).toEqual({ minMs: 1500, maxMs: 4500 });
    expect(parseRetryWindow(Buffer.from("1-2")).window).toEqual({ minMs: 1, maxMs: 2 });
    expect(parseRetryWindow(undefined)).toEqual({});
  });
});

describe("devices reconnecting to a coordinator that ended their streams", () => {
  let cluster: TestCluster | undefined;
  afterAll(async () => cluster?.stop());

  it("come back spread over the window the coordinator sent, and with full jitter when it sent none", async () => {
    cluster = await TestCluster.start();
    const c = cluster;
    const n = 12;
    for (let i = 0; i < n; i++) await c.addDevice(`dev-${i}`, { train: constantDelta(0.001) });
    await c.waitConnected(n);
    c.coordinator.hub.closeAll({ minMs: 1500, maxMs: 4500 });
    await waitFor("every device back", () => c.coordinator.hub.eligibleDevices().length === n || undefined, 30_000, 50);
    const delays = c.devices.map((d) => d.subscription.lastDelayMs);
    console.log(`reconnect delays inside a 1500–4500 ms window: ${delays.sort((a, b) => a - b).join(", ")} ms`);
    for (const d of delays) {
      expect(d).toBeGreaterThanOrEqual(1500);
      expect(d).toBeLessThanOrEqual(4500);
    }
    // Spread out, not one wave (12 uniform points in 3 s fall within 1 s of each other with probability < 1e-4).
    expect(Math.max(...delays) - Math.min(...delays)).toBeGreaterThan(1000);

    // A stream that ends without a window (deregistration, a network blip) falls back to full jitter.
    const one = c.devices[0]!;
    c.coordinator.hub.remove(one.deviceId);
    await waitFor("the device back", () => c.coordinator.hub.isConnected(one.deviceId) || undefined, 10_000, 20);
    expect(one.subscription.lastDelayMs).toBeLessThan(250);
  }, 120_000);
});
