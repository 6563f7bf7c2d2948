/**
 * The active lease (runs/active-lease.ts) against a real redis-server: one holder at a time; a
 * holder that finds another coordinator's name in the lease is told it lost it; release never
 * removes another's lease. (No timing asserts: the test waits for the events themselves.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { RedisProcess } from "./support/redis-process.ts";
import { ACTIVE_KEY, ActiveLease } from "../coordinator/runs/active-lease.ts";

describe("active lease", () => {
  const tmp = mkdtempSync(join(tmpdir(), "tacit-lease-"));
  let redis: RedisProcess;
  let r: Redis;
  beforeAll(async () => {
    redis = await RedisProcess.start(join(tmp, "redis"));
    r = new Redis(redis.url, { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    r.disconnect();
    await redis.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it("has one holder; a standby gets it only once it is released", async () => {
    const a = new ActiveLease(r, "a", { ttlMs: 60_000, renewMs: 100 });
    const b = new ActiveLease(r, "b", { ttlMs: 60_000, renewMs: 100 });
    expect(await a.tryAcquire()).toBe(true);
    expect(await b.tryAcquire()).toBe(false);
    let waitingFor = "";
    const standby = b.acquire((holder) => (waitingFor = holder));
    await b.release().catch(() => undefined); // not b's: must not remove a's lease
    const b2 = new ActiveLease(r, "b", { ttlMs: 60_000, renewMs: 100 });
    const standby2 = b2.acquire((holder) => (waitingFor = holder));
    await expect(standby).rejects.toThrow(/stopped/);
    expect(await r.get(ACTIVE_KEY)).toBe("a");
    await a.release();
    await standby2;
    expect(waitingFor).toBe("a");
    expect(await r.get(ACTIVE_KEY)).toBe("b");
    await b2.release();
  });

  it("a holder whose lease now names another coordinator is told it lost it", async () => {
    const a = new ActiveLease(r, "a", { ttlMs: 60_000, renewMs: 50 });
    expect(await a.tryAcquire()).toBe(true);
    const lost = new Promise<string>((resolve) => a.keep(resolve));
    // The lease expired while a was paused and b took it.
    await r.set(ACTIVE_KEY, "b", "PX", 60_000);
    expect(await lost).toMatch(/another coordinator holds/);
    expect(await r.get(ACTIVE_KEY)).toBe("b");
    await a.release();
    expect(await r.get(ACTIVE_KEY)).toBe("b");
    await r.del(ACTIVE_KEY);
  });
});
