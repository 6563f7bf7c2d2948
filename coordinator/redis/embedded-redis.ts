/**
 * The embedded default: when REDIS_URL is not set, the coordinator runs its own private
 * redis-server child bound to 127.0.0.1 on a free port. Loopback is not a privilege boundary
 * (other local users, containers on the host network and sidecars share it, and the port is in
 * world-readable /proc), so the child requires a random password, generated at every start and
 * passed in a 0600 config file in the 0700 data dir, never in argv. Its own data dir and AOF are on, so
 * round state survives a coordinator crash. The child is stopped when this process exits; a
 * child orphaned by a crash (SIGKILL) is found through its pid file and stopped on the next
 * start, which then reloads the same AOF.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { Redis } from "ioredis";
import { describeSentinel, sentinelFromEnv, sentinelOptions, type SentinelEndpoint } from "./sentinel.ts";

export class RedisUnavailableError extends Error {
  override name = "RedisUnavailableError";
}

export const INSTALL_HINT =
  "redis-server not found: install it with `sudo apt-get install -y redis-server`, or set REDIS_URL=redis://HOST:PORT to use an existing Redis";

export function redisServerBinary(): string | undefined {
  const found = spawnSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" });
  const path = found.stdout.trim();
  return found.status === 0 && path ? path : undefined;
}

/** A TCP port free on loopback right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface EmbeddedRedis {
  url: string;
  port: number;
  dataDir: string;
  stop(): Promise<void>;
}

/** True while `pid` is a live process (a zombie, dead but not yet reaped, counts as gone). */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

async function stopOrphan(dataDir: string): Promise<void> {
  const pidFile = join(dataDir, "redis.pid");
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  if (Number.isInteger(pid) && pid > 1 && processAlive(pid)) {
    let cmd = "";
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    } catch {
      /* gone meanwhile */
    }
    if (cmd.includes("redis-server")) {
      process.kill(pid, "SIGTERM");
      // Wait for it to let go of the data dir (it flushes the AOF on SIGTERM).
      const deadline = Date.now() + 10_000;
      while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    }
  }
  rmSync(pidFile, { force: true });
}

async function waitForPing(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new RedisUnavailableError(`redis-server exited with code ${child.exitCode}`);
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on("error", () => undefined);
    try {
      await probe.connect();
      const pong = await probe.ping();
      // AOF reload can answer LOADING for a moment: PING succeeds only once loading is done.
      if (pong === "PONG") {
        probe.disconnect();
        return;
      }
    } catch (err) {
      lastError = (err as Error).message;
    }
    probe.disconnect();
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new RedisUnavailableError(`embedded redis-server did not answer within ${timeoutMs} ms (${lastError})`);
}

/** Starts a private redis-server with its data in `dataDir` (created 0700). */
export async function startEmbeddedRedis(dataDir: string): Promise<EmbeddedRedis> {
  const bin = redisServerBinary();
  if (!bin) throw new RedisUnavailableError(INSTALL_HINT);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);
  // The redis child belongs to one coordinator process at a time: never stop the Redis of a
  // coordinator that is still running on this state dir.
  const ownerFile = join(dataDir, "owner.pid");
  if (existsSync(ownerFile)) {
    const owner = Number(readFileSync(ownerFile, "utf8").trim());
    if (Number.isInteger(owner) && owner !== process.pid && processAlive(owner)) {
      throw new RedisUnavailableError(`the state dir ${dataDir} is in use by another coordinator (pid ${owner}); stop it first or use another --state-dir`);
    }
  }
  writeFileSync(ownerFile, String(process.pid));
  await stopOrphan(dataDir);
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const password = randomBytes(32).toString("hex");
    const confFile = join(dataDir, "redis.conf");
    rmSync(confFile, { force: true });
    writeFileSync(confFile, `requirepass ${password}\n`, { mode: 0o600, flag: "wx" });
    const child = spawn(
      bin,
      [
        confFile,
        "--bind", "127.0.0.1", "--port", String(port), "--protected-mode", "yes",
        "--dir", dataDir, "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
        "--pidfile", join(dataDir, "redis.pid"), "--daemonize", "no", "--loglevel", "warning",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    // Registered at once, not after the first PONG: a process that exits while Redis is still
    // starting (Ctrl-C during a simulation's setup) must not leave the child running.
    const onExit = (): void => {
      child.kill("SIGTERM");
    };
    process.once("exit", onExit);
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const url = `redis://:${password}@127.0.0.1:${port}`;
    try {
      await waitForPing(url, child, 15_000);
    } catch (err) {
      process.removeListener("exit", onExit);
      child.kill("SIGKILL");
      lastErr = new RedisUnavailableError(`${(err as Error).message}${stderr ? `: ${stderr.trim().split("\n").pop()}` : ""}`);
      continue;
    }
    writeFileSync(join(dataDir, "redis.pid"), String(child.pid));
    return {
      url,
      port,
      dataDir,
      stop: async () => {
        process.removeListener("exit", onExit);
        if (child.exitCode !== null) return;
        await new Promise<void>((resolve) => {
          child.once("exit", () => resolve());
          child.kill("SIGTERM");
        });
        rmSync(join(dataDir, "redis.pid"), { force: true });
        rmSync(ownerFile, { force: true });
      },
    };
  }
  throw lastErr instanceof Error ? lastErr : new RedisUnavailableError(String(lastErr));
}

/** What `connectRedis` takes: a redis:// URL, or the Sentinels to ask for the master. */
export type RedisEndpoint = string | SentinelEndpoint;

export interface RedisTarget {
  endpoint: RedisEndpoint;
  /** REDIS_URL or the embedded Redis's URL; undefined through Sentinel. */
  url?: string;
  /** Which Redis, for logs: `embedded`, `REDIS_URL` or the Sentinels; never a password. */
  label: string;
  embedded?: EmbeddedRedis;
}

/** Set to 1 to let REDIS_URL name a Redis without a password: local development only. */
export const INSECURE_REDIS_FLAG = "TACIT_DEV_REDIS_WITHOUT_PASSWORD";

/**
 * A Redis that anyone on its network can write to could plant enrollment tokens and devices,
 * so an external REDIS_URL must carry a password unless the development flag says otherwise.
 */
export function checkRedisUrl(url: string, env: NodeJS.ProcessEnv = process.env): void {
  let password = "";
  try {
    password = decodeURIComponent(new URL(url).password);
  } catch {
    throw new RedisUnavailableError(`REDIS_URL is not a valid URL: ${redact(url)}`);
  }
  if (password === "" && env[INSECURE_REDIS_FLAG] !== "1") {
    throw new RedisUnavailableError(
      `REDIS_URL ${redact(url)} has no password: use redis://:PASSWORD@HOST:PORT (requirepass) so that no other process can write the coordinator's state, or set ${INSECURE_REDIS_FLAG}=1 for local development`,
    );
  }
}

/** REDIS_SENTINELS or REDIS_URL when set, otherwise the embedded default in `<stateDir>/redis`. */
export async function resolveRedis(stateDir: string, env = process.env): Promise<RedisTarget> {
  let sentinel: SentinelEndpoint | undefined;
  try {
    sentinel = sentinelFromEnv(env, INSECURE_REDIS_FLAG);
  } catch (err) {
    throw new RedisUnavailableError((err as Error).message);
  }
  if (sentinel) return { endpoint: sentinel, label: describeSentinel(sentinel) };
  const fromEnv = env.REDIS_URL?.trim();
  if (fromEnv) {
    checkRedisUrl(fromEnv, env);
    return { endpoint: fromEnv, url: fromEnv, label: "REDIS_URL" };
  }
  const embedded = await startEmbeddedRedis(join(stateDir, "redis"));
  return { endpoint: embedded.url, url: embedded.url, label: "embedded", embedded };
}

/** Opens a connection and fails fast with one clear line if Redis cannot be reached. */
export async function connectRedis(endpoint: RedisEndpoint, opts: { forBullmq?: boolean } = {}): Promise<Redis> {
  const common = { lazyConnect: true, maxRetriesPerRequest: opts.forBullmq ? null : 3, enableReadyCheck: true };
  const client = typeof endpoint === "string" ? new Redis(endpoint, common) : new Redis({ ...sentinelOptions(endpoint), ...common });
  client.on("error", () => undefined);
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    client.disconnect();
    const where = typeof endpoint === "string" ? redact(endpoint) : describeSentinel(endpoint);
    throw new RedisUnavailableError(`cannot reach Redis at ${where}: ${(err as Error).message}`);
  }
  return client;
}

/** Hides a password in a redis URL before it is printed. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):([^@/]*)@/, "//$1:***@");
}
