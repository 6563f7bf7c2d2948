/**
 * The embedded Redis default and the enrollment registry, against a real redis-server.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { spawn, spawnSync } from "node:child_process";
import { Redis } from "ioredis";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connectRedis, processAlive, resolveRedis, startEmbeddedRedis, RedisUnavailableError, type EmbeddedRedis } from "../coordinator/redis/embedded-redis.ts";
import { DeviceRegistry, EnrollmentError } from "../coordinator/state/registry.ts";
import { generateEd25519 } from "../shared/crypto/index.ts";
import { randomBytes } from "node:crypto";

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

  it("requires a password that is only in a 0600 file: the port alone, or another uid, gets nowhere (H2)", async () => {
    const port = redis.port;
    const data = join(dir, "redis");
    expect(statSync(data).mode & 0o777).toBe(0o700);
    expect(statSync(join(data, "redis.conf")).mode & 0o777).toBe(0o600);
    const password = new URL(redis.url).password;
    expect(password.length).toBeGreaterThanOrEqual(32);
    const pid = Number(readFileSync(join(data, "redis.pid"), "utf8"));
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).not.toContain(password);
    // Holding only the port (all a local user learns from /proc or ss).
    const portOnly = new Redis({ host: "127.0.0.1", port, lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    portOnly.on("error", () => undefined);
    await portOnly.connect();
    await expect(portOnly.set("tacit:enroll-token:x", "{}")).rejects.toThrow(/NOAUTH/);
    await expect(portOnly.hset("tacit:devices", "dev-x", "{}")).rejects.toThrow(/NOAUTH/);
    portOnly.disconnect();
    // Another uid: cannot read the password file, and the port alone is refused.
    if (process.getuid?.() === 0) {
      const asNobody = (cmd: string[]): { status: number | null; out: string } => {
        const r = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", ...cmd], { encoding: "utf8" });
        return { status: r.status, out: r.stdout + r.stderr };
      };
      expect(asNobody(["cat", join(data, "redis.conf")]).status).not.toBe(0);
      expect(asNobody(["redis-cli", "-p", String(port), "SET", "tacit:enroll-token:x", "{}"]).out).toMatch(/NOAUTH/);
    }
  });

  it("refuses a REDIS_URL without a password unless the development flag is set (H2)", async () => {
    await expect(resolveRedis(join(dir, "unused"), { REDIS_URL: "redis://127.0.0.1:6379" })).rejects.toThrow(/has no password.*TACIT_DEV_REDIS_WITHOUT_PASSWORD/);
    const dev = await resolveRedis(join(dir, "unused"), { REDIS_URL: "redis://127.0.0.1:6379", TACIT_DEV_REDIS_WITHOUT_PASSWORD: "1" });
    expect(dev.url).toBe("redis://127.0.0.1:6379");
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
  it("stops its redis-server when the process exits while Redis is still starting", async () => {
    const data = join(dir, "early-exit");
    // Exits in the first turn after the spawn (redis.conf is written just before it, in the same
    // turn), long before the child can answer PING, and reports the child's pid first.
    const script = `
      const { existsSync, readFileSync } = await import("node:fs");
      const { startEmbeddedRedis } = await import(${JSON.stringify(resolve("coordinator/redis/embedded-redis.ts"))});
      void startEmbeddedRedis(${JSON.stringify(data)}).catch(() => {});
      const conf = ${JSON.stringify(join(data, "redis.conf"))};
      const poll = setInterval(() => {
        if (!existsSync(conf)) return;
        clearInterval(poll);
        const children = readFileSync("/proc/" + process.pid + "/task/" + process.pid + "/children", "utf8").trim();
        process.stdout.write("children " + children + "\\n");
        process.exit(0);
      }, 0);
    `;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    await new Promise((res) => child.once("exit", res));
    const pids = (/children ([\d ]+)/.exec(out)?.[1] ?? "").split(" ").filter(Boolean).map(Number);
    const redisPids = pids.filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, "utf8").startsWith("redis-server");
      } catch {
        return true; // already gone: it was the child (the only one this script spawns)
      }
    });
    expect(redisPids.length).toBe(1);
    const deadline = Date.now() + 5_000;
    while (processAlive(redisPids[0]!) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const orphaned = processAlive(redisPids[0]!);
    if (orphaned) process.kill(redisPids[0]!, "SIGKILL");
    expect(orphaned).toBe(false);
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
    const reg = new DeviceRegistry(c, randomBytes(32));
    const { token } = await reg.createToken(60, "laptop", "admin-1");
    const kp = generateEd25519();
    const rec = (await reg.enroll(token, kp.publicRaw, "laptop-1")).device;
    expect(rec.deviceId).toMatch(/^dev-[0-9a-f]{20}$/);
    expect(await reg.get(rec.deviceId)).toMatchObject({ label: "laptop-1", creator: "admin-1", tokenLabel: "laptop" });
    await expect(reg.enroll(token, generateEd25519().publicRaw, "again")).rejects.toThrow(/already used/);
    await expect(reg.enroll("tt_unknown", generateEd25519().publicRaw, "x")).rejects.toThrow(EnrollmentError);
    const short = await reg.createToken(1, "short", "admin-1");
    await new Promise((r) => setTimeout(r, 1300));
    await expect(reg.enroll(short.token, generateEd25519().publicRaw, "late")).rejects.toThrow(/expired/);
    // Tokens are stored hashed: the token text is nowhere in Redis.
    const keys = await c.keys("*");
    expect(keys.join(" ")).not.toContain(token);
    c.disconnect();
  });

  it("keeps the token when a duplicate enrollment is refused (L7)", async () => {
    const c = await connectRedis(redis.url);
    const reg = new DeviceRegistry(c, randomBytes(32));
    const kp = generateEd25519();
    await reg.enroll((await reg.createToken(60, "a", "admin-1")).token, kp.publicRaw, "first");
    const second = await reg.createToken(60, "b", "admin-1");
    await expect(reg.enroll(second.token, kp.publicRaw, "again")).rejects.toMatchObject({ code: "ALREADY_ENROLLED" });
    // The refused attempt did not burn the token: another laptop can still use it.
    await expect(reg.enroll(second.token, generateEd25519().publicRaw, "other")).resolves.toBeDefined();
    c.disconnect();
  });

  it("refuses weak and non-canonical identity keys before touching the token (L6)", async () => {
    const c = await connectRedis(redis.url);
    const reg = new DeviceRegistry(c, randomBytes(32));
    const { token } = await reg.createToken(60, "t", "admin-1");
    const p = (1n << 255n) - 19n;
    const le = (v: bigint): Uint8Array => Uint8Array.from({ length: 32 }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn));
    const identity = le(1n);
    const zero = le(0n);
    const minusOne = le(p - 1n);
    const order8 = le(2707385501144840649318225287225658788936804267575313519463743609750303402022n);
    const signFlipped = Uint8Array.from(identity);
    signFlipped[31] = signFlipped[31]! | 0x80;
    const nonCanonical = le(p + 3n);
    for (const key of [identity, zero, minusOne, order8, le(p - 2707385501144840649318225287225658788936804267575313519463743609750303402022n), signFlipped, nonCanonical]) {
      await expect(reg.enroll(token, key, "weak")).rejects.toMatchObject({ code: "BAD_KEY" });
    }
    await expect(reg.enroll(token, generateEd25519().publicRaw, "ok")).resolves.toBeDefined();
    c.disconnect();
  });

  it("accepts no token or device planted through Redis: records carry an HMAC whose key is not in Redis (H2)", async () => {
    const c = await connectRedis(redis.url);
    const reg = new DeviceRegistry(c, randomBytes(32));
    const { createHash } = await import("node:crypto");
    const planted = "tt_planted";
    const hash = createHash("sha256").update(planted).digest("hex");
    await c.set(`tacit:enroll-token:${hash}`, JSON.stringify({ tokenId: hash.slice(0, 16), label: "injected", creator: "admin-1", createdAt: Date.now(), expiresAt: Date.now() + 600_000 }), "EX", 600);
    await expect(reg.enroll(planted, generateEd25519().publicRaw, "x")).rejects.toMatchObject({ code: "TOKEN_INVALID" });
    // A token sealed under another coordinator's key is refused too.
    const other = new DeviceRegistry(c, randomBytes(32));
    const foreign = await other.createToken(60, "foreign", "admin-1");
    await expect(reg.enroll(foreign.token, generateEd25519().publicRaw, "x")).rejects.toMatchObject({ code: "TOKEN_INVALID" });
    // A device record written directly is not a device.
    const kp = generateEd25519();
    const id = (await import("../coordinator/state/registry.ts")).deviceIdFor(kp.publicRaw);
    await c.hset("tacit:devices", id, JSON.stringify({ deviceId: id, identityPublicKey: Buffer.from(kp.publicRaw).toString("base64"), label: "planted", enrolledAt: 1, creator: "admin-1", tokenLabel: "" }));
    expect(await reg.get(id)).toBeUndefined();
    // ...and the real owner of that key can still enroll over the planted record.
    await expect(reg.enroll((await reg.createToken(60, "t", "admin-1")).token, kp.publicRaw, "real")).resolves.toBeDefined();
    expect(await reg.get(id)).toMatchObject({ label: "real" });
    c.disconnect();
  });
});
