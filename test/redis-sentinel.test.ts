/**
 * Issue 18 (c): the coordinator finds its Redis through Sentinel and follows it through a
 * failover. A real master, replica and three Sentinels; `SENTINEL FAILOVER` mid-round promotes the
 * replica, and the run still completes with every round committed once and a ledger that verifies.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RoundConfig } from "../shared/run/index.ts";
import type { LedgerEntry } from "../shared/ledger/index.ts";
import { verifyLedger } from "../shared/ledger/verify.ts";
import { INSECURE_REDIS_FLAG, resolveRedis, RedisUnavailableError } from "../coordinator/redis/embedded-redis.ts";
import { sentinelFromEnv } from "../coordinator/redis/sentinel.ts";
import { SentinelTrio, MASTER_NAME } from "./support/sentinel-trio.ts";
import { TestCluster, tinyRunSpec } from "./support/cluster.ts";
import { ledgerText } from "./support/ledger-text.ts";
import { waitFor } from "./support/wait.ts";

const constantDelta = (value: number) => async (cfg: RoundConfig) => ({ delta: new Float32Array(cfg.parameterCount).fill(value), loss: 1, examples: 1 });

describe("Sentinel settings", () => {
  const base = { REDIS_SENTINELS: "10.0.0.1:26379, [::1]:26380", REDIS_MASTER_NAME: "m", REDIS_PASSWORD: "pw" };

  it("reads the Sentinels, the master's name and the passwords", () => {
    expect(sentinelFromEnv({ ...base, REDIS_SENTINEL_PASSWORD: "spw" }, INSECURE_REDIS_FLAG)).toEqual({
      sentinels: [{ host: "10.0.0.1", port: 26379 }, { host: "::1", port: 26380 }],
      name: "m",
      password: "pw",
      sentinelPassword: "spw",
    });
    expect(sentinelFromEnv({}, INSECURE_REDIS_FLAG)).toBeUndefined();
  });

  it.each([
    [{ ...base, REDIS_MASTER_NAME: "" }, /REDIS_MASTER_NAME is not/],
    [{ ...base, REDIS_PASSWORD: "" }, /REDIS_PASSWORD is not.*TACIT_DEV_REDIS_WITHOUT_PASSWORD/],
    [{ ...base, REDIS_URL: "redis://:x@h:1" }, /REDIS_URL or REDIS_SENTINELS, not both/],
    [{ ...base, REDIS_SENTINELS: "10.0.0.1" }, /"10.0.0.1" is not host:port/],
    [{ ...base, REDIS_SENTINELS: "h:70000" }, /"h:70000" is not host:port/],
  ])("refuses %o with a specific error, before any connection", async (env, msg) => {
    const dir = mkdtempSync(join(tmpdir(), "tacit-sentinel-env-"));
    await expect(resolveRedis(join(dir, "unused"), env)).rejects.toThrow(RedisUnavailableError);
    await expect(resolveRedis(join(dir, "unused"), env)).rejects.toThrow(msg);
    rmSync(dir, { recursive: true, force: true });
  });

  it("allows a master without a password only under the development flag", () => {
    expect(sentinelFromEnv({ ...base, REDIS_PASSWORD: "", [INSECURE_REDIS_FLAG]: "1" }, INSECURE_REDIS_FLAG)?.password).toBe("");
  });
});

describe("coordinator on Redis Sentinel", () => {
  let dir: string;
  let trio: SentinelTrio;
  let cluster: TestCluster | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tacit-sentinel-"));
    trio = await SentinelTrio.start(dir);
  }, 90_000);
  afterAll(async () => {
    await cluster?.stop();
    await trio?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("follows a failover mid-round: the run completes, each round committed once, the ledger verifies", async () => {
    cluster = await TestCluster.start({ env: trio.env(), watchdogMs: 2000 });
    const c = cluster;
    expect(c.coordinator.redisTarget.label).toBe(`sentinel ${trio.sentinelPorts.map((p) => `127.0.0.1:${p}`).join(",")} master ${MASTER_NAME}`);
    for (let i = 0; i < 3; i++) await c.addDevice(`dev-${i}`, { train: constantDelta((i + 1) / 1000) });
    await c.waitConnected(3);
    const before = await trio.currentMasterPort();
    expect(before).toBe(trio.masterPort);
    const runId = await c.launch(tinyRunSpec({ rounds: 3 }));
    await waitFor("round 1 in progress", async () => /^round 1: (advertise|share|masked-input)/.test((await c.coordinator.runStatus(runId)).currentPhase) || undefined, 60_000, 10);
    await trio.failover();
    await waitFor("the replica promoted", async () => (await trio.currentMasterPort()) === trio.replicaPort || undefined, 30_000, 100);

    const st = await c.waitRun(runId, 120_000);
    expect(st.state).toBe("completed");
    // A run launched after the switch completes too: its writes can only have landed on the
    // promoted replica, the one master left (the old one now replicates from it, read-only).
    await waitFor("the old master turned into a replica", async () => (await trio.role(trio.masterPort)) === "slave" || undefined, 60_000, 200);
    const answer = async (port: number): Promise<string | undefined> => {
      const role = await trio.role(port);
      return role === "unreachable" ? undefined : role;
    };
    expect(await waitFor("the promoted replica answering", () => answer(trio.replicaPort), 30_000, 200)).toBe("master");
    const after = await c.launch(tinyRunSpec({ rounds: 1 }));
    expect((await c.waitRun(after, 120_000)).state).toBe("completed");
    const entries = ledgerText(c.coordinator.paths.root).trim().split("\n").map((l) => JSON.parse(l) as LedgerEntry);
    const rounds = entries.filter((e) => e.type === "round" && (e.body as { runId: string }).runId === runId).map((e) => e.body as { round: number; attempt: number; status: string });
    for (const r of [0, 1, 2]) expect(rounds.filter((x) => x.round === r && x.status === "completed"), `round ${r}`).toHaveLength(1);
    // Nothing is charged twice: one attestation per survivor of each committed round.
    const attestations = entries.filter((e) => e.type === "attestation" && (e.body as { runId: string }).runId === runId);
    expect(attestations).toHaveLength(9);
    expect(verifyLedger(ledgerText(c.coordinator.paths.root)).violations).toEqual([]);
    console.log(`sentinel failover: master ${before} → ${await trio.currentMasterPort()}; round entries ${rounds.map((r) => `${r.round}.${r.attempt} ${r.status}`).join(", ")}`);
  }, 180_000);
});
