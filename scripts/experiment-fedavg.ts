/**
 * In-process FedAvg on a carve of data/devactions (no gRPC, no SecAgg, no DP: the plain math), to
 * choose the non-DP training defaults (issue 13 item 7: 51 users × 20 rounds, 10 clients × 5 rounds).
 * Trains on the first `--clients` users' TRAIN files and scores the global model on every user's
 * EVAL file (a carve from scripts/carve-holdout.ts), as `tacit simulate --eval-dir` does.
 *
 *   npx tsx scripts/experiment-fedavg.ts --train CARVE/train --eval CARVE/eval [--clients 10] [--rounds 5]
 *     [--model dense|tied] [--client-lr 0.5] [--client-opt sgd|adam] [--epochs 1] [--max-steps 16]
 *     [--batch 64] [--server fedavg|fedavgm|fedadam] [--server-lr 0.1] [--central] [--copy]
 *     [--fedavg-rounds K]   (the first K rounds take plain FedAvg steps at server lr 1, then --server)
 *     [--schedule constant|cosine]   (the server learning rate over the rounds, as a run spec's serverLearningRateSchedule)
 *     [--tau T]   (FedAdam's adaptivity τ)
 *     [--copy-init A]   (with --copy: start every copy weight at A instead of the default)
 *     [--weighted]   (weight each device's delta by its example count instead of uniformly)
 *     [--clip C]   (clip each device's delta to L2 norm C, as the real pipeline does before quantizing)
 *     [--beta1 B] [--beta2 B]   (FedAdam's moment decays, default 0.9 and 0.99)
 *     [--client-schedule constant|cosine]   (the client learning rate over the rounds)
 *     [--avg-last K]   (also score the average of the last K server models)
 *     [--window N]   (context length other than the spec's 8)
 */
import { parseArgs } from "node:util";
import { readDevactionsDir } from "../shared/data/index.ts";
import { applyServerUpdate, buildExamples, concatExamples, DEFAULT_MODEL_SPEC, DENSE_MODEL_SPEC, initBackend, initialWeights, LEARNING_RATE_SCHEDULES, scheduledLearningRate, Trainer, type LearningRateSchedule, type ServerOptimizerState } from "../shared/model/index.ts";

const { values: v } = parseArgs({
  options: {
    train: { type: "string" },
    eval: { type: "string" },
    clients: { type: "string" },
    rounds: { type: "string", default: "20" },
    model: { type: "string", default: "dense" },
    "client-lr": { type: "string", default: "0.5" },
    "client-opt": { type: "string", default: "sgd" },
    epochs: { type: "string", default: "1" },
    "max-steps": { type: "string", default: "16" },
    batch: { type: "string", default: "64" },
    server: { type: "string", default: "fedadam" },
    "server-lr": { type: "string", default: "0.1" },
    central: { type: "boolean", default: false },
    copy: { type: "boolean", default: false },
    clip: { type: "string" },
    "fedavg-rounds": { type: "string", default: "0" },
    weighted: { type: "boolean", default: false },
    schedule: { type: "string", default: "constant" },
    "copy-init": { type: "string" },
    tau: { type: "string", default: "0.001" },
    beta1: { type: "string", default: "0.9" },
    beta2: { type: "string", default: "0.99" },
    "client-schedule": { type: "string", default: "constant" },
    "avg-last": { type: "string", default: "0" },
    window: { type: "string" },
  },
});
if (!v.train || !v.eval) throw new Error("--train DIR and --eval DIR: a carve's two halves (scripts/carve-holdout.ts)");
if (!(LEARNING_RATE_SCHEDULES as readonly string[]).includes(v.schedule!)) throw new Error(`--schedule must be ${LEARNING_RATE_SCHEDULES.join(" or ")}, got '${v.schedule}'`);
const schedule = v.schedule as LearningRateSchedule;
if (!(LEARNING_RATE_SCHEDULES as readonly string[]).includes(v["client-schedule"]!)) throw new Error(`--client-schedule must be ${LEARNING_RATE_SCHEDULES.join(" or ")}, got '${v["client-schedule"]}'`);
const clientSchedule = v["client-schedule"] as LearningRateSchedule;
// The copy weights are the last `window` values of the layout (spec.ts COPY_PARAMETER): without --copy those are other weights.
if (v["copy-init"] !== undefined && !v.copy) throw new Error("--copy-init sets the copy path's weights: it needs --copy");
await initBackend();
const spec = { ...(v.model === "tied" ? DEFAULT_MODEL_SPEC : DENSE_MODEL_SPEC), ...(v.copy ? { copy: true } : {}), ...(v.window ? { window: Number(v.window) } : {}) };
let users = await readDevactionsDir(v.train);
if (v.clients) users = users.slice(0, Number(v.clients));
const byId = new Map(users.map((u) => [u.userId, u]));
const train = users.map((u) => buildExamples(u, spec));
const evals = (await readDevactionsDir(v.eval)).map((e) => buildExamples(e, spec, byId.has(e.userId) ? { contextFrom: byId.get(e.userId)! } : undefined));
const t = new Trainer(spec);
const totalExamples = train.reduce((a, e) => a + e.count, 0);
const rounds = Number(v.rounds);
const local = { epochs: Number(v.epochs), batchSize: Number(v.batch), learningRate: Number(v["client-lr"]), maxSteps: Number(v["max-steps"]), optimizer: v["client-opt"] as "sgd" | "adam" };

async function evaluate(w: Float32Array): Promise<{ top1: number; top3: number; loss: number }> {
  t.setWeights(w);
  let n = 0, h1 = 0, h3 = 0, l = 0;
  for (const e of evals) {
    if (e.count === 0) continue;
    const r = await t.evaluate(e);
    n += r.count; h1 += r.top1 * r.count; h3 += r.top3 * r.count; l += r.loss * r.count;
  }
  return { top1: h1 / n, top3: h3 / n, loss: l / n };
}

const t0 = Date.now();
const elapsed = (): string => `${((Date.now() - t0) / 1000).toFixed(0)}s`;
if (v.central) {
  t.setWeights(initialWeights(spec, 1));
  const all = concatExamples(train, spec.window);
  for (let r = 0; r < rounds; r++) {
    await t.train(all, { ...local, maxSteps: undefined, seed: r });
    console.log(`central epoch ${r + 1}`, JSON.stringify(await evaluate(t.getWeights())), elapsed());
  }
} else {
  let w = initialWeights(spec, 1);
  if (v["copy-init"] !== undefined) w.fill(Number(v["copy-init"]), w.length - spec.window);
  let state: ServerOptimizerState | null = null;
  const clip = v.clip === undefined ? Infinity : Number(v.clip);
  const avgLast = Number(v["avg-last"]);
  const avg = new Float32Array(w.length);
  for (let r = 0; r < rounds; r++) {
    const sum = new Float32Array(w.length);
    let clipped = 0;
    let norms = 0;
    for (const [i, ex] of train.entries()) {
      t.setWeights(w);
      await t.train(ex, { ...local, learningRate: scheduledLearningRate(local.learningRate, clientSchedule, r, rounds), seed: r * 1000 + i });
      const after = t.getWeights();
      let sq = 0;
      for (let k = 0; k < w.length; k++) sq += (after[k]! - w[k]!) ** 2;
      const norm = Math.sqrt(sq);
      norms += norm;
      const factor = norm > clip ? clip / norm : 1;
      if (factor < 1) clipped++;
      const weight = v.weighted ? (ex.count * train.length) / totalExamples : 1;
      for (let k = 0; k < w.length; k++) sum[k]! += (after[k]! - w[k]!) * factor * weight;
    }
    console.log(`  mean delta norm ${(norms / train.length).toFixed(2)}, clipped ${clipped}/${train.length}`);
    for (let k = 0; k < w.length; k++) sum[k]! /= train.length;
    const next = applyServerUpdate(
      state,
      w,
      sum,
      r < Number(v["fedavg-rounds"]) ? { optimizer: "fedavg", learningRate: 1 } : { optimizer: v.server as "fedavg" | "fedavgm" | "fedadam", learningRate: scheduledLearningRate(Number(v["server-lr"]), schedule, r, rounds), momentum: 0.9, epsilon: Number(v.tau), beta1: Number(v.beta1), beta2: Number(v.beta2) },
    );
    w = next.weights;
    state = next.state;
    console.log(`fed round ${r + 1}`, JSON.stringify(await evaluate(w)), elapsed());
    if (r >= rounds - avgLast) for (let k = 0; k < w.length; k++) avg[k]! += w[k]! / avgLast;
  }
  if (avgLast > 0) console.log(`average of the last ${avgLast} server iterates`, JSON.stringify(await evaluate(avg)), elapsed());
}
