/**
 * Redis through Sentinel: `REDIS_SENTINELS=host:port,host:port,…` and `REDIS_MASTER_NAME=name`
 * make the coordinator ask the Sentinels which Redis is the master, and ask again when it fails
 * over (ioredis does the asking; scale-out design §3.2, §5 (c)). The master's password comes from
 * `REDIS_PASSWORD` — required, as for REDIS_URL (finding H2), unless the development flag is set —
 * and the Sentinels' own from `REDIS_SENTINEL_PASSWORD` when they have one.
 *
 * After a failover the old master becomes a replica and answers writes with READONLY until the
 * client notices: such a reply reconnects, which re-resolves the master. What was in flight then
 * fails, and the round attempt it belonged to aborts and re-runs like any other Redis error.
 */
import type { RedisOptions } from "ioredis";

export interface SentinelEndpoint {
  sentinels: { host: string; port: number }[];
  name: string;
  password: string;
  sentinelPassword?: string;
}

export class SentinelConfigError extends Error {
  override name = "SentinelConfigError";
}

/** The Sentinel settings in `env`, or undefined when REDIS_SENTINELS is not set. */
export function sentinelFromEnv(env: NodeJS.ProcessEnv, insecureFlag: string): SentinelEndpoint | undefined {
  const list = env.REDIS_SENTINELS?.trim();
  if (!list) return undefined;
  if (env.REDIS_URL?.trim()) throw new SentinelConfigError("set REDIS_URL or REDIS_SENTINELS, not both");
  const sentinels = list.split(",").map((item) => parseHostPort(item.trim()));
  const name = env.REDIS_MASTER_NAME?.trim();
  if (!name) throw new SentinelConfigError("REDIS_SENTINELS is set but REDIS_MASTER_NAME is not: name the master the Sentinels monitor");
  const password = env.REDIS_PASSWORD ?? "";
  if (password === "" && env[insecureFlag] !== "1") {
    throw new SentinelConfigError(`REDIS_SENTINELS is set but REDIS_PASSWORD is not: the master must require a password so that no other process can write the coordinator's state, or set ${insecureFlag}=1 for local development`);
  }
  const sentinelPassword = env.REDIS_SENTINEL_PASSWORD;
  return { sentinels, name, password, ...(sentinelPassword ? { sentinelPassword } : {}) };
}

function parseHostPort(item: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(item);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new SentinelConfigError(`REDIS_SENTINELS entry "${item}" is not host:port`);
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}

/** ioredis options that connect to the Sentinels' master and follow it through failovers. */
export function sentinelOptions(s: SentinelEndpoint): RedisOptions {
  return {
    sentinels: s.sentinels,
    name: s.name,
    ...(s.password ? { password: s.password } : {}),
    ...(s.sentinelPassword ? { sentinelPassword: s.sentinelPassword } : {}),
    // Listen for +switch-master instead of waiting for the old master's connection to fail.
    failoverDetector: true,
    reconnectOnError: (err) => (err.message.startsWith("READONLY") ? 2 : false),
  };
}

/** For logs: the Sentinels and the master's name, never a password. */
export function describeSentinel(s: SentinelEndpoint): string {
  return `sentinel ${s.sentinels.map((x) => `${x.host}:${x.port}`).join(",")} master ${s.name}`;
}
