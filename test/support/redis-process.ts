/**
 * Test support: a real redis-server child on a fixed port with its own data dir and AOF on, that
 * a test can SIGKILL and restart on the same port and data (so whoever uses it reconnects to the
 * same, reloaded data).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { freePort } from "../../coordinator/redis/embedded-redis.ts";

export class RedisProcess {
  child: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  /** The coordinator refuses a Redis without a password (finding H2), so this one has one too. */
  readonly password = randomBytes(16).toString("hex");

  get url(): string {
    return `redis://:${this.password}@127.0.0.1:${this.port}`;
  }

  static async start(dir: string, port?: number): Promise<RedisProcess> {
    mkdirSync(dir, { recursive: true });
    const r = new RedisProcess(port ?? (await freePort()), dir);
    await r.launch();
    return r;
  }

  private async launch(): Promise<void> {
    this.child = spawn(
      "redis-server",
      ["--bind", "127.0.0.1", "--port", String(this.port), "--requirepass", this.password, "--dir", this.dir, "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no", "--loglevel", "warning"],
      { stdio: "ignore" },
    );
    const deadline = Date.now() + 15_000;
    for (;;) {
      const probe = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on("error", () => undefined);
      try {
        await probe.connect();
        if ((await probe.ping()) === "PONG") {
          probe.disconnect();
          return;
        }
      } catch {
        /* not up yet, or still loading the AOF */
      }
      probe.disconnect();
      if (Date.now() > deadline) throw new Error(`redis-server on port ${this.port} did not start`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  /** SIGKILL (no AOF flush beyond what `everysec` already wrote). */
  async kill(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((res) => {
      c.once("exit", () => res());
      c.kill("SIGKILL");
    });
  }

  /** Restarts on the same port and data dir (reloading the AOF). */
  async restart(): Promise<void> {
    await this.kill();
    await this.launch();
  }

  async stop(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((res) => {
      c.once("exit", () => res());
      c.kill("SIGTERM");
    });
  }
}
