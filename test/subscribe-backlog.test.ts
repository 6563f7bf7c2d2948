/**
 * I6: a device that keeps its Subscribe stream open but never reads it. Each round's invitation
 * carries the checkpoint, so without a bound the coordinator would queue one checkpoint per round
 * for it, for as long as it stays connected. The coordinator counts the bytes a stream has not
 * delivered and drops the device once they pass `maxSubscribeBacklogBytes`; the rounds go on
 * without it.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { RoundConfig } from "../shared/run/index.ts";
import { parameterCount } from "../shared/model/spec.ts";
import { WriteBacklog } from "../coordinator/server/write-backlog.ts";
import { TestCluster, TINY_MODEL, tinyRunSpec } from "./support/cluster.ts";
import { sleeperSubscriber } from "./support/sleeper-subscriber.ts";
import { waitFor } from "./support/wait.ts";

describe("WriteBacklog", () => {
  it("admits one message of any size onto an empty backlog, refuses what would pass the limit, and frees on release", () => {
    const b = new WriteBacklog(100);
    expect(b.admit(250)).toBe(true);
    expect(b.admit(1)).toBe(false);
    expect(b.pending).toBe(250);
    b.release(250);
    expect(b.admit(60)).toBe(true);
    expect(b.admit(40)).toBe(true);
    expect(b.admit(1)).toBe(false);
    b.release(40);
    expect(b.admit(40)).toBe(true);
    expect(b.pending).toBe(100);
    expect(() => new WriteBacklog(0)).toThrow(/positive/);
  });
});

describe("a device that never reads its Subscribe stream (I6)", () => {
  let cluster: TestCluster | undefined;
  let closeSleeper: (() => void) | undefined;
  afterEach(async () => {
    closeSleeper?.();
    await cluster?.stop();
    cluster = undefined;
  });

  it("is dropped, its connection closed, once its unread invitations pass the limit; the rounds complete without it", async () => {
    // A model whose checkpoint (~400 KB) is far past an HTTP/2 window: an invitation cannot sit
    // in flow-control buffers unnoticed. The limit admits one invitation, not two.
    const model = { ...TINY_MODEL, vocabBuckets: 4096, embedDim: 16 };
    const checkpointBytes = 4 * parameterCount(model);
    cluster = await TestCluster.start({ limits: { maxSubscribeBacklogBytes: Math.round(1.5 * checkpointBytes) } });
    const c = cluster;
    const constant = (v: number) => async (cfg: RoundConfig) => ({ delta: new Float32Array(cfg.parameterCount).fill(v), loss: 1, examples: 1 });
    for (let i = 0; i < 4; i++) await c.addDevice(`dev-${i}`, { train: constant((i + 1) / 1000) });
    const sleeper = await c.enroll("sleeper");
    const s = await sleeperSubscriber({ address: c.address, caFile: c.caFile, credentials: sleeper.client.credentials! });
    closeSleeper = s.close;
    await c.waitConnected(5);
    expect(c.coordinator.hub.isConnected(sleeper.deviceId)).toBe(true);

    const deadlines = { ...tinyRunSpec().deadlines, advertiseMs: 2500 };
    const runId = await c.launch(tinyRunSpec({ model, rounds: 2, cohortSize: 5, minSurvivors: 3, populationSize: 5, dropoutTolerance: 0.3, deadlines }));
    const st = await c.waitRun(runId, 60_000);
    expect(st.state, st.error).toBe("completed");
    const completed = st.rounds.filter((r) => r.status === "completed");
    expect(completed).toHaveLength(2);
    for (const r of completed) expect(r.survivors).toBe(4);
    // Round 0's invitation is still queued for it when round 1's is sent: it is dropped then.
    await waitFor("the sleeper dropped", () => !c.coordinator.hub.isConnected(sleeper.deviceId), 10_000);
    expect(c.coordinator.hub.eligibleDevices()).toHaveLength(4);
    // Its connection is closed, so nothing stays queued for it and a device that was only asleep
    // sees the failure and reconnects (a stream merely abandoned would leave it waiting forever).
    await waitFor("the sleeper's connection closed", () => s.closed(), 10_000);
  });
});
