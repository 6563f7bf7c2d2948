/**
 * Federated evaluation end to end over real gRPC, Redis and SecAgg: devices holding whole user
 * sequences train only on their older part and evaluate each new global model on their held-out
 * slice (the most recent 10%); the coordinator learns only the summed counts. With the held-out
 * slices as the central eval set, the federated figures equal the central ones exactly without
 * noise and lie within the stated error bound with it; a device with impossible counts refuses
 * to send them and the evaluation goes on without it; the ledger records each evaluation and
 * `verify` recomputes its charge.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readDevactionsDir, type UserSequence } from "../shared/data/index.ts";
import { initBackend, Trainer } from "../shared/model/index.ts";
import { evaluateLocally, lastExamples, localSplit, type EvalCounts } from "../shared/eval/index.ts";
import { localTrainOptions, type EvaluationSpec, type RoundConfig } from "../shared/run/index.ts";
import { verifyLedger } from "../shared/ledger/verify.ts";
import { runVerify } from "../cli/commands/verify.ts";
import { evaluateModel } from "../simulation/evaluation.ts";
import type { EvaluationRecord } from "../coordinator/rounds/evaluation-round.ts";
import { ledgerText } from "./support/ledger-text.ts";
import { TestCluster, tinyRunSpec, TINY_MODEL } from "./support/cluster.ts";

const MODEL = { ...TINY_MODEL, vocabBuckets: 64, window: 3 };

function hooks(seq: UserSequence, lie = false) {
  const trainer = new Trainer(MODEL);
  return {
    trainer,
    train: async (cfg: RoundConfig, weights: Float32Array) => {
      const { train } = localSplit(seq, cfg.model, cfg.training.heldOutFraction);
      trainer.setWeights(weights);
      const r = await trainer.train(train, localTrainOptions(cfg));
      return { delta: trainer.getWeights().map((w, i) => w - weights[i]!), loss: r.loss, examples: train.count };
    },
    evaluate: async (cfg: RoundConfig, weights: Float32Array): Promise<EvalCounts> => {
      const c = evaluateLocally(trainer, weights, lastExamples(localSplit(seq, cfg.model, cfg.training.heldOutFraction).heldOut, cfg.evaluation!.maxExamplesPerDevice));
      // A broken device: more top-1 hits than examples. Its own encoder must refuse to send this.
      return lie ? { ...c, top1: c.examples + 1, top3: c.examples + 1 } : c;
    },
  };
}

describe("federated evaluation over real gRPC, Redis and SecAgg", () => {
  let cluster: TestCluster;
  let users: UserSequence[];
  const trainers: Trainer[] = [];

  beforeAll(async () => {
    await initBackend();
    cluster = await TestCluster.start();
    users = (await readDevactionsDir("data/devactions")).slice(0, 3);
  });
  afterAll(async () => {
    for (const t of trainers) t.dispose();
    await cluster?.stop();
  });

  /** The central evaluation (simulation/evaluation.ts) of the committed model on the held-out slices. */
  function central(weights: Float32Array, seqs: UserSequence[]) {
    const t = new Trainer(MODEL);
    trainers.push(t);
    return evaluateModel(t, weights, seqs.map((u) => ({ userId: u.userId, examples: localSplit(u, MODEL, 0.1).heldOut }))).eval;
  }

  async function evaluations(runId: string): Promise<EvaluationRecord[]> {
    const st = await cluster.waitRun(runId, 120_000);
    expect(st.state).toBe("completed");
    return JSON.parse(st.evaluationsJson) as EvaluationRecord[];
  }

  it("without noise: federated counts equal the central evaluation of the held-out slices exactly, after round 0 and the last", async () => {
    for (const [i, u] of users.entries()) {
      const h = hooks(u);
      trainers.push(h.trainer);
      await cluster.addDevice(`laptop-${i}`, h);
    }
    // A device that does not evaluate (no hook) declines evaluation rounds but still trains.
    const plain = hooks(users[1]!);
    trainers.push(plain.trainer);
    const noEval = await cluster.addDevice("no-eval", { train: plain.train });
    await cluster.waitConnected(4);
    const evaluation: EvaluationSpec = { everyRounds: 1, heldOutFraction: 0.1, maxExamplesPerDevice: 10_000, noiseMultiplier: 0 };
    const runId = await cluster.launch(tinyRunSpec({ model: MODEL, rounds: 2, cohortSize: 4, minSurvivors: 2, populationSize: 4, corruptTolerance: 0, evaluation }));
    const evs = await evaluations(runId);
    expect(evs.map((e) => [e.afterRound, e.status, e.survivors])).toEqual([[0, "completed", 3], [1, "completed", 3]]);
    for (const e of evs) {
      const cp = await cluster.coordinator.checkpoints.readRound(runId, e.afterRound);
      expect(cp.hash).toBe(e.modelHash);
      const c = central(cp.weights, users);
      const m = e.metrics!;
      expect(m.events).toBe(c.events);
      expect(m.users).toBe(3);
      expect(m.top1Micro).toBe(c.top1Micro);
      expect(m.top3Micro).toBe(c.top3Micro);
      // Fixed point: ≤ ½ unit per device (1 nat of summed loss, 1/1000 of a device's accuracy).
      expect(Math.abs(m.loss - c.loss)).toBeLessThanOrEqual((3 * 0.5) / c.events + 1e-9);
      expect(Math.abs(m.top1Macro - c.top1Macro)).toBeLessThanOrEqual(0.5 / 1000 + 1e-9);
      expect(Math.abs(m.top3Macro - c.top3Macro)).toBeLessThanOrEqual(0.5 / 1000 + 1e-9);
      expect(e.errorBound!.counts).toBe(0);
    }
    // The training never saw the held-out slice: every device trained on exactly the older part.
    const status = await cluster.coordinator.runStatus(runId);
    expect(JSON.parse(status.evaluationsJson)).toHaveLength(2);

    const findings = verifyLedger(ledgerText(cluster.coordinator.paths.root));
    expect(findings.violations).toEqual([]);
    const run = findings.runs.find((r) => r.runId === runId)!;
    expect(run.evaluations!.map((e) => [e.afterRound, e.status, e.survivors])).toEqual([[0, "completed", 3], [1, "completed", 3]]);
    // Exact counts are recorded for what they are: no DP guarantee for the devices that sent them.
    expect(run.evaluations!.every((e) => e.worstDeviceEpsilon === Infinity)).toBe(true);
    const cli = await runVerify({ ledger: cluster.coordinator.paths.root, delta: "1e-6" });
    expect(cli.stdout).toContain("evaluation after round 1: completed, 3 device(s), exact counts, no DP noise; worst device ε after it ∞");
    for (const d of cluster.devices.filter((x) => x !== noEval)) expect(d.budget.events().filter((ev) => ev.kind === "nonPrivate")).toHaveLength(2);
    expect(noEval.events.filter((x) => x.type === "declined" && x.runId === runId).map((x) => x.type === "declined" && [x.round, x.code])).toEqual([[evs[0]!.round, "NO_EVALUATION"], [evs[1]!.round, "NO_EVALUATION"]]);
    expect(noEval.events.filter((x) => x.type === "submitted" && x.runId === runId)).toHaveLength(2);
    // An evaluation the ledger holds is never run again, even if Redis lost its record (a crash
    // between the two): a second run would charge devices the ledger's entry does not name.
    const c = cluster.coordinator;
    await c.redis.del(`tacit:run:${runId}:evaluations`);
    const entries = ledgerText(c.paths.root).split("\n").length;
    const joined = (): number => cluster.devices.reduce((a, d) => a + d.events.filter((x) => x.type === "joined" && x.round === evs[1]!.round).length, 0);
    const invitedBefore = joined();
    const record = (await c.runs.get(runId))!;
    await (c.scheduler as unknown as { evaluate(r: typeof record, afterRound: number, s: AbortSignal): Promise<void> }).evaluate(record, 1, new AbortController().signal);
    expect(await c.runs.evaluations(runId)).toEqual([]);
    // Nobody was invited to it again.
    expect(joined()).toBe(invitedBefore);
    expect(ledgerText(c.paths.root).split("\n").length).toBe(entries);

    // It leaves, so that the next run's cohort is exactly the devices that evaluate.
    noEval.stop();
    for (const end = Date.now() + 10_000; cluster.coordinator.hub.isConnected(noEval.deviceId) && Date.now() < end; ) await new Promise((r) => setTimeout(r, 25));
  });

  it("with noise: within the stated error; a device with impossible counts is left out, nothing else is lost; verify recomputes the charge", async () => {
    const liar = hooks(users[0]!, true);
    trainers.push(liar.trainer);
    await cluster.addDevice("liar", liar);
    await cluster.waitConnected(4);
    const evaluation: EvaluationSpec = { everyRounds: 5, heldOutFraction: 0.1, maxExamplesPerDevice: 200, noiseMultiplier: 0.5 };
    const runId = await cluster.launch(tinyRunSpec({ model: MODEL, rounds: 1, cohortSize: 4, minSurvivors: 2, populationSize: 4, corruptTolerance: 0, evaluation, deadlines: { ...tinyRunSpec().deadlines, maskedInputMs: 15_000 } }));
    const [e] = await evaluations(runId);
    expect([e!.status, e!.survivors], e!.detail).toEqual(["completed", 3]);
    const cp = await cluster.coordinator.checkpoints.readRound(runId, 0);
    const exact = central(cp.weights, users);
    const bound = e!.errorBound!.counts;
    expect(bound).toBeGreaterThan(0);
    expect(Math.abs(e!.sums!.examples - exact.events)).toBeLessThanOrEqual(bound);
    expect(Math.abs(e!.sums!.top1 - exact.top1Micro * exact.events)).toBeLessThanOrEqual(bound);
    expect(Math.abs(e!.sums!.top3 - exact.top3Micro * exact.events)).toBeLessThanOrEqual(bound);
    expect(Math.abs(e!.sums!.devices - 3)).toBeLessThanOrEqual(bound);

    const findings = verifyLedger(ledgerText(cluster.coordinator.paths.root));
    expect(findings.violations).toEqual([]);
    const ev = findings.runs.find((r) => r.runId === runId)!.evaluations!;
    expect(ev).toHaveLength(1);
    // The liar never sent its input, so it was never charged for this evaluation.
    const liarDevice = cluster.devices.find((d) => d.name === "liar")!;
    const evalRound = e!.round;
    expect(liarDevice.budget.list().some((x) => x.runId === runId && x.round === evalRound)).toBe(false);

    // A ledger whose evaluation claims less noise than the spec implies is caught.
    const text = ledgerText(cluster.coordinator.paths.root);
    const tampered = text.split("\n").map((l) => (l.includes('"type":"evaluation"') && l.includes(runId) ? l.replace(/"perDeviceVariance":[0-9.e+-]+/, '"perDeviceVariance":1') : l)).join("\n");
    expect(verifyLedger(tampered).violations.map((v) => v.code)).toEqual(expect.arrayContaining(["HASH", "EVALUATION_MECHANISM"]));
  });
});
