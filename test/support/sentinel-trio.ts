/**
 * Test support: a real Redis master, one replica and three Sentinels on loopback — the smallest
 * set-up in which `SENTINEL FAILOVER` promotes the replica (a quorum of 2 of 3 Sentinels). Every
 * Redis requires the same password, as the coordinator insists (finding H2).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { Redis } from "ioredis";
import { freePort } from "../../coordinator/redis/embedded-redis.ts";
import { waitFor } from "./wait.ts";

export const MASTER_NAME = "tacit-master";

export class SentinelTrio {
  readonly password = randomBytes(16).toString("hex");
  private readonly children: ChildProcess[] = [];
  masterPort = 0;
  replicaPort = 0;
  sentinelPorts: number[] = [];

  private constructor(private readonly dir: string) {}

  static async start(dir: string): Promise<SentinelTrio> {
    const t = new SentinelTrio(dir);
    mkdirSync(dir, { recursive: true });
    t.masterPort = await freePort();
    t.replicaPort = await freePort();
    await t.redis("master", t.masterPort, []);
    await t.redis("replica", t.replicaPort, ["--replicaof", "127.0.0.1", String(t.masterPort), "--masterauth", t.password]);
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      t.sentinelPorts.push(port);
      const conf = join(dir, `sentinel-${i}.conf`);
      // Sentinel rewrites its config file as it learns the topology, so each needs its own.
      writeFileSync(
        conf,
        [
          `port ${port}`,
          "bind 127.0.0.1",
          `dir ${dir}`,
          `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${t.masterPort} 2`,
          `sentinel auth-pass ${MASTER_NAME} ${t.password}`,
          `sentinel down-after-milliseconds ${MASTER_NAME} 2000`,
          `sentinel failover-timeout ${MASTER_NAME} 10000`,
          "",
        ].join("\n"),
      );
      t.children.push(spawn("redis-server", [conf, "--sentinel", "--loglevel", "warning"], { stdio: "ignore" }));
    }
    // FAILOVER needs every Sentinel to know the replica, and the replica to be in sync.
    await waitFor("the Sentinels to see the replica", async () => {
      for (const port of t.sentinelPorts) {
        const s = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        s.on("error", () => undefined);
        try {
          await s.connect();
          const replicas = (await s.call("SENTINEL", "REPLICAS", MASTER_NAME)) as string[][];
          if (replicas.length < 1) return undefined;
          const sentinels = (await s.call("SENTINEL", "SENTINELS", MASTER_NAME)) as string[][];
          if (sentinels.length < 2) return undefined;
        } catch {
          return undefined;
        } finally {
          s.disconnect();
        }
      }
      return true;
    }, 60_000, 200);
    return t;
  }

  private async redis(name: string, port: number, extra: string[]): Promise<void> {
    const dir = join(this.dir, name);
    mkdirSync(dir, { recursive: true });
    const args = ["--bind", "127.0.0.1", "--port", String(port), "--requirepass", this.password, "--dir", dir, "--appendonly", "yes", "--save", "", "--loglevel", "warning", ...extra];
    this.children.push(spawn("redis-server", args, { stdio: "ignore" }));
    await waitFor(`redis ${name} on ${port}`, async () => {
      const c = new Redis({ port, host: "127.0.0.1", password: this.password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      c.on("error", () => undefined);
      try {
        await c.connect();
        const info = await c.info("replication");
        return !/role:slave/.test(info) || /master_link_status:up/.test(info) || undefined;
      } catch {
        return undefined;
      } finally {
        c.disconnect();
      }
    }, 20_000, 50);
  }

  /** What the coordinator is given: no REDIS_URL, only the Sentinels and the master's name. */
  env(): NodeJS.ProcessEnv {
    return { REDIS_SENTINELS: this.sentinelPorts.map((p) => `127.0.0.1:${p}`).join(","), REDIS_MASTER_NAME: MASTER_NAME, REDIS_PASSWORD: this.password };
  }

  private async sentinel<T>(cmd: string[]): Promise<T> {
    const s = new Redis({ port: this.sentinelPorts[0], host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0 });
    s.on("error", () => undefined);
    try {
      await s.connect();
      return (await s.call(cmd[0]!, ...cmd.slice(1))) as T;
    } finally {
      s.disconnect();
    }
  }

  /** The master's port as the Sentinels see it now. */
  async currentMasterPort(): Promise<number> {
    const [, port] = await this.sentinel<[string, string]>(["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME]);
    return Number(port);
  }

  /**
   * What a Redis of this set says it is now: "master" or "slave", or "unreachable" while it
   * cannot answer — a master being turned into a replica closes its clients' connections, so a
   * probe that lands in that moment is asked again rather than failing the test.
   */
  async role(port: number): Promise<string> {
    const c = new Redis({ port, host: "127.0.0.1", password: this.password, lazyConnect: true, maxRetriesPerRequest: 0 });
    c.on("error", () => undefined);
    try {
      await c.connect();
      return ((await c.call("ROLE")) as [string])[0];
    } catch {
      return "unreachable";
    } finally {
      c.disconnect();
    }
  }

  /** Promotes the replica now, as an operator (or a master's loss) would. */
  async failover(): Promise<void> {
    await this.sentinel(["SENTINEL", "FAILOVER", MASTER_NAME]);
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.children.map(
        (c) =>
          new Promise<void>((res) => {
            if (c.exitCode !== null || c.signalCode !== null) return res();
            c.once("exit", () => res());
            c.kill("SIGKILL");
          }),
      ),
    );
  }
}
