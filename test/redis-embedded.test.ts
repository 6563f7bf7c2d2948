/**
 * The embedded Redis default and the enrollment registry, against a real redis-server.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, existsSync, readFileSync, rmSync } from "node:fs";
import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connectRedis, processAlive, resolveRedis, startEmbeddedRedis, RedisUnavailableError, type EmbeddedRedis } from "../coordinator/redis/embedded-redis.ts";
import { DeviceRegistry, EnrollmentError } from "../coordinator/state/registry.ts";
import { generateEd25519 } from "../shared/crypto/index.ts";

describe("embedded redis", () => {
  let dir: string;
  let redis: EmbeddedRedis;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tacit-redis-"));
    redis = await startEmbeddedRedis(join(dir, "redis"));
  });
  afterAll(async () => {
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("listens on loopback only, with AOF on, in its own data dir", async () => {
    const c = await connectRedis(redis.url);
    expect(await c.config("GET", "bind")).toEqual(["bind", "127.0.0.1"]);
    expect(await c.config("GET", "appendonly")).toEqual(["appendonly", "yes"]);
    expect(await c.config("GET", "dir")).toEqual(["dir", resolve(join(dir, "redis"))]);
    c.disconnect();
  });

  it("uses REDIS_URL when set instead of starting a child", async () => {
    const t = await resolveRedis(join(dir, "unused"), { REDIS_URL: redis.url });
    expect(t.embedded).toBeUndefined();
    expect(t.url).toBe(redis.url);
    expect(existsSync(join(dir, "unused"))).toBe(false);
  });

  it("fails with one clear line when Redis is unreachable", async () => {
    await expect(connectRedis("redis://127.0.0.1:1")).rejects.toThrow(RedisUnavailableError);
    await expect(connectRedis("redis://user:secret@127.0.0.1:1")).rejects.toThrow(/user:\*\*\*@127\.0\.0\.1:1/);
  });

  it("stops a redis-server orphaned by a SIGKILLed parent and keeps its data (AOF)", async () => {
    const data = join(dir, "orphan");
    const script = `
      const { startEmbeddedRedis, connectRedis } = await import(${JSON.stringify(resolve("coordinator/redis/embedded-redis.ts"))});
      const r = await startEmbeddedRedis(${JSON.stringify(data)});
      const c = await connectRedis(r.url);
      await c.set("survives", "yes");
      await c.call("BGREWRITEAOF").catch(() => {});
      await new Promise((res) => setTimeout(res, 1200)); // appendfsync everysec
      process.stdout.write("ready\\n");
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((res) => child.stdout!.on("data", (d: Buffer) => d.toString().includes("ready") && res()));
    const orphanPid = Number(readFileSync(join(data, "redis.pid"), "utf8"));
    child.kill("SIGKILL");
    await new Promise((r) => setTimeout(r, 200));
    expect(processAlive(orphanPid)).toBe(true); // still running: orphaned
    const again = await startEmbeddedRedis(data);
    try {
      await new Promise((r) => setTimeout(r, 200));
      expect(processAlive(orphanPid)).toBe(false); // the orphan was stopped
      const c = await connectRedis(again.url);
      expect(await c.get("survives")).toBe("yes");
      c.disconnect();
    } finally {
      await again.stop();
    }
  });
});

describe("device registry (real Redis)", () => {
  let dir: string;
  let redis: EmbeddedRedis;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tacit-reg-"));
    redis = await startEmbeddedRedis(join(dir, "redis"));
  });
  afterAll(async () => {
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("enrolls once per single-use token and refuses reuse, unknown and expired tokens", async () => {
    const c = await connectRedis(redis.url);
    const reg = new DeviceRegistry(c);
    const { token } = await reg.createToken(60, "laptop");
    const kp = generateEd25519();
    const rec = await reg.enroll(token, kp.publicRaw, "laptop-1");
    expect(rec.deviceId).toMatch(/^dev-[0-9a-f]{20}$/);
    expect(await reg.get(rec.deviceId)).toMatchObject({ label: "laptop-1" });
    await expect(reg.enroll(token, generateEd25519().publicRaw, "again")).rejects.toThrow(/already used/);
    await expect(reg.enroll("tt_unknown", generateEd25519().publicRaw, "x")).rejects.toThrow(EnrollmentError);
    const short = await reg.createToken(1, "short");
    await new Promise((r) => setTimeout(r, 1300));
    await expect(reg.enroll(short.token, generateEd25519().publicRaw, "late")).rejects.toThrow(/expired/);
    // Tokens are stored hashed: the token text is nowhere in Redis.
    const keys = await c.keys("*");
    expect(keys.join(" ")).not.toContain(token);
    c.disconnect();
  });
});
