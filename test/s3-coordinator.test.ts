/**
 * A coordinator on the S3 store (issue #18 §1), against moto's real S3 server on loopback: a run
 * completes with its commits, attempt outcomes, ledger segments and checkpoints all in the
 * bucket (nothing in a local store directory); the ledger read back from S3 verifies; and a
 * stale coordinator — one paused through its attempt while the successor declared it lost and
 * committed the round — loses its commit and stands down, leaving the successor's record.
 */
import { afterAll, describe, expect, it } from "vitest";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { RoundConfig } from "../shared/run/index.ts";
import { verifyLedger, type LedgerEntry } from "../shared/ledger/index.ts";
import { loadCheckpoint } from "../shared/model/index.ts";
import { openDurableStore } from "../coordinator/store/open-store.ts";
import { readLedgerText } from "../coordinator/ledger/segment-writer.ts";
import { RoundDecisions, StaleWriterError } from "../coordinator/runs/round-decisions.ts";
import { CheckpointStore } from "../coordinator/runs/checkpoint-store.ts";
import { startCoordinator } from "../coordinator/coordinator.ts";
import { OPEN_LIMITS, TestCluster, tinyRunSpec, TINY_MODEL } from "./support/cluster.ts";
import { conditionalWritesIgnored, MotoServer } from "./support/moto-server.ts";
import pino from "pino";

const constantDelta = (value: number) => async (cfg: RoundConfig) => ({ delta: new Float32Array(cfg.parameterCount).fill(value), loss: 1, examples: 1 });

describe("a coordinator on an S3 store", () => {
  let moto: MotoServer | undefined;
  let cluster: TestCluster | undefined;
  afterAll(async () => {
    await cluster?.stop();
    await moto?.stop();
  });

  it("runs a run with everything durable in the bucket; a stale coordinator's commit loses", async () => {
    moto = await MotoServer.start();
    const bucket = await moto.bucket();
    const url = `s3://${bucket}/tacit-${randomBytes(3).toString("hex")}`;
    const env = { ...moto.env, TACIT_STORE_URL: url, TACIT_LOG_LEVEL: "silent" };
    cluster = await TestCluster.start({ env });
    const c = cluster;
    expect(c.coordinator.store.url).toBe(`${url}/`);
    for (let i = 0; i < 3; i++) await c.addDevice(`s3-${i}`, { train: constantDelta(0.01 * (i + 1)) }, OPEN_LIMITS);
    await c.waitConnected(3);
    const runId = await c.launch(tinyRunSpec({ rounds: 2, cohortSize: 3, minSurvivors: 2, populationSize: 3 }));
    const st = await c.waitRun(runId, 180_000);
    expect(st.state, st.error).toBe("completed");

    // Everything durable is in the bucket; the state dir has no store directory.
    const store = openDurableStore(url, env);
    expect(await store.list(`commits/${runId}/`)).toEqual([`commits/${runId}/00000.json`, `commits/${runId}/00001.json`]);
    expect((await store.list(`attempts/${runId}/`)).length).toBeGreaterThanOrEqual(2);
    expect(await store.list(`checkpoints/${runId}/latest/`)).toHaveLength(3); // the initial model, rounds 0 and 1
    expect(existsSync(join(c.stateDir, "store"))).toBe(false);
    const text = await readLedgerText(store);
    expect(verifyLedger(text).violations).toEqual([]);
    const entries = text.trimEnd().split("\n").map((l) => JSON.parse(l) as LedgerEntry);
    const rounds = entries.filter((e) => e.type === "round" && (e.body as { runId: string }).runId === runId);
    expect(rounds.map((e) => (e.body as { status: string }).status)).toEqual(["completed", "completed"]);

    // Another coordinator with an empty cache reads the committed model from the bucket alone.
    const cacheB = mkdtempSync(join(tmpdir(), "tacit-cache-"));
    const b = new CheckpointStore(cacheB, new RoundDecisions(store), "coordinator-b", store);
    const latest = await b.latest(runId);
    expect(latest?.round).toBe(1);
    expect(latest?.hash).toBe(st.modelHash);
    const round1 = await b.readRound(runId, 1);
    expect(round1.hash).toBe(st.modelHash);
    expect((await loadCheckpoint(round1.path)).weights).toEqual(latest!.weights);

    // A zombie still in round 1's attempt that B declared lost: its checkpoint may land in the
    // bucket, but its decision and commit lose; the round keeps B's commit.
    const committed = (await b.committed(runId, 1))!;
    const zombie = new CheckpointStore(mkdtempSync(join(tmpdir(), "tacit-cache-")), new RoundDecisions(store), "zombie", store);
    const lostAttempt = committed.attempt + 1;
    expect((await new RoundDecisions(store).decideAttempt(runId, { status: "lost", record: { round: 1, attempt: lostAttempt, status: "lost" }, by: "coordinator-b" })).won).toBe(true);
    const weights = new Float32Array(round1.weights.length).fill(0.25);
    await expect(zombie.write(runId, 1, TINY_MODEL, weights, null, { record: { round: 1, attempt: lostAttempt, status: "completed" } })).rejects.toThrow(StaleWriterError);
    // Even an attempt nobody decided cannot replace the round's commit.
    await expect(zombie.write(runId, 1, TINY_MODEL, weights, null, { record: { round: 1, attempt: lostAttempt + 1, status: "completed" } })).rejects.toThrow(StaleWriterError);
    expect(await b.committed(runId, 1)).toEqual(committed);
    expect((await b.latest(runId))?.hash).toBe(st.modelHash);
  }, 300_000);

  it("refuses to start on an S3 server that ignores If-None-Match", async () => {
    moto ??= await MotoServer.start();
    const bucket = await moto.bucket();
    const proxy = await conditionalWritesIgnored(moto.endpoint);
    try {
      const env = { ...moto.env, TACIT_S3_ENDPOINT: proxy.endpoint, TACIT_STORE_URL: `s3://${bucket}/p` };
      const start = startCoordinator({ stateDir: mkdtempSync(join(tmpdir(), "tacit-test-")), autoInit: true, logger: pino({ level: "silent" }), env });
      await expect(start).rejects.toThrow(/ignores If-None-Match/);
    } finally {
      await proxy.close();
    }
  }, 120_000);
});
