/**
 * The spine end to end: a real coordinator (gRPC over TLS on loopback, BullMQ on a real
 * embedded Redis) and three real device clients that train the next-action model locally on
 * their own users' data, for two rounds of secure aggregation. The global model must change
 * and the held-out loss must fall; a client killed mid-round must not stop the round.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readDevactionsDir, splitHoldout, type UserSequence } from "../shared/data/index.ts";
import { buildExamples, initBackend, Trainer, type Examples } from "../shared/model/index.ts";
import type { RoundConfig } from "../shared/run/index.ts";
import { TestCluster, tinyRunSpec, TINY_MODEL } from "./support/cluster.ts";

const MODEL = { ...TINY_MODEL, vocabBuckets: 64, window: 4, embedDim: 8, hidden: 16 };

function trainerHook(seq: UserSequence, trainer: Trainer) {
  let ex: Examples | undefined;
  return async (cfg: RoundConfig, weights: Float32Array) => {
    ex ??= buildExamples(seq, cfg.model);
    trainer.setWeights(weights);
    const r = await trainer.train(ex, { epochs: cfg.training.localEpochs, batchSize: cfg.training.batchSize, learningRate: cfg.training.learningRate, seed: cfg.training.seed, maxSteps: cfg.training.maxLocalSteps, optimizer: cfg.training.optimizer });
    const after = trainer.getWeights();
    return { delta: after.map((w, i) => w - weights[i]!), loss: r.loss, examples: ex.count };
  };
}

describe("federated training over real gRPC and Redis", () => {
  let cluster: TestCluster;
  let users: { train: UserSequence; eval: UserSequence }[];
  let trainer: Trainer;

  beforeAll(async () => {
    await initBackend();
    cluster = await TestCluster.start();
    users = (await readDevactionsDir("data/devactions")).slice(0, 4).map((u) => splitHoldout(u, 0.2));
    trainer = new Trainer(MODEL);
  });
  afterAll(async () => {
    trainer?.dispose();
    await cluster?.stop();
  });

  async function heldOutLoss(weights: Float32Array): Promise<number> {
    let n = 0;
    let loss = 0;
    const t = new Trainer(MODEL);
    t.setWeights(weights);
    for (const u of users) {
      const r = await t.evaluate(buildExamples(u.eval, MODEL, { contextFrom: u.train }));
      n += r.count;
      loss += r.loss * r.count;
    }
    t.dispose();
    return loss / n;
  }

  it("runs two rounds in which the global model changes and held-out loss falls", async () => {
    for (const [i, u] of users.slice(0, 3).entries()) await cluster.addDevice(`laptop-${i}`, { train: trainerHook(u.train, trainer) });
    await cluster.waitConnected(3);
    const runId = await cluster.launch(tinyRunSpec({ model: MODEL, rounds: 2, cohortSize: 3, minSurvivors: 2, populationSize: 3, clientLearningRate: 0.5, maxLocalSteps: 20, batchSize: 16 }));
    const initial = (await cluster.coordinator.checkpoints.latest(runId))!;
    const before = await heldOutLoss(initial.weights);
    const st = await cluster.waitRun(runId, 90_000);
    expect(st.state).toBe("completed");
    expect(st.rounds.map((r) => r.status)).toEqual(["completed", "completed"]);
    expect(st.rounds.every((r) => r.survivors === 3)).toBe(true);
    const final = (await cluster.coordinator.checkpoints.latest(runId))!;
    expect(final.hash).not.toBe(initial.hash);
    const after = await heldOutLoss(final.weights);
    expect(after).toBeLessThan(before);
    // Every device attested and was charged once per round.
    for (const d of cluster.devices) expect(d.budget.list().map((e) => e.round)).toEqual([0, 1]);
  });

  // Four devices cannot tolerate both a colluder and a dropout (t > (k + 1)/2 = 2 leaves no
  // slack), so the two dropout tests below assume no colluders.
  it("completes a round when a client is killed mid-round", async () => {
    // Device 3 joins, then dies while training in the next run's first round.
    let kill: (() => void) | undefined;
    const victim = await cluster.addDevice("laptop-victim", {
      train: async (cfg, w) => {
        kill!();
        return trainerHook(users[3]!.train, trainer)(cfg, w);
      },
    });
    kill = () => {
      victim.stop();
      victim.client.close();
    };
    await cluster.waitConnected(4);
    const runId = await cluster.launch(tinyRunSpec({ model: MODEL, rounds: 1, cohortSize: 4, minSurvivors: 2, populationSize: 4, maxLocalSteps: 5, corruptTolerance: 0 }));
    const st = await cluster.waitRun(runId, 90_000);
    expect(st.state).toBe("completed");
    const r = st.rounds.find((x) => x.status === "completed")!;
    expect(r.cohort).toBe(4);
    expect(r.survivors).toBe(3);
    const phases = JSON.parse(r.phaseCountsJson) as { dropouts: Record<string, number> };
    expect(Object.values(phases.dropouts).reduce((a, b) => a + b, 0)).toBe(1);
  });

  it("goes on without a laptop that declines because its person paused it", async () => {
    const paused = await cluster.addDevice("laptop-paused", {
      train: trainerHook(users[3]!.train, trainer),
      unavailable: () => ({ code: "PAUSED", reason: "paused by the user" }),
    });
    await cluster.waitConnected(4);
    const runId = await cluster.launch(tinyRunSpec({ model: MODEL, rounds: 1, cohortSize: 4, minSurvivors: 2, populationSize: 4, maxLocalSteps: 5, corruptTolerance: 0 }));
    const st = await cluster.waitRun(runId, 90_000);
    expect(st.state).toBe("completed");
    const r = st.rounds.find((x) => x.status === "completed")!;
    expect((JSON.parse(r.phaseCountsJson) as { declined: number }).declined).toBe(1);
    expect(r.survivors).toBe(3);
    expect(paused.events.find((e) => e.type === "declined")).toMatchObject({ code: "PAUSED" });
    expect(paused.budget.list()).toEqual([]);
  });

  it("takes a diverged device's zero update (with its noise) instead of waiting for it", async () => {
    const diverged = await cluster.addDevice("laptop-diverged", { train: async (cfg) => ({ delta: new Float32Array(cfg.parameterCount).fill(Number.NaN), loss: Number.NaN, examples: 10 }) });
    await cluster.waitConnected(5);
    const runId = await cluster.launch(tinyRunSpec({ model: MODEL, rounds: 1, cohortSize: 5, minSurvivors: 2, populationSize: 5, maxLocalSteps: 5, noiseMultiplier: 1, clip: 1 }));
    const st = await cluster.waitRun(runId, 60_000);
    expect(st.state).toBe("completed");
    const r = st.rounds.find((x) => x.status === "completed")!;
    expect(r.survivors).toBe(4); // three trainers and the diverged one; the paused laptop declined
    expect(diverged.events.map((e) => e.type)).toContain("submitted");
    const final = (await cluster.coordinator.checkpoints.latest(runId))!;
    expect(final.weights.every(Number.isFinite)).toBe(true);
  });
});
