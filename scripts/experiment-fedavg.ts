/**
 * In-process FedAvg on a carve of data/devactions (no gRPC, no SecAgg, no DP: the plain math), to
 * choose the non-DP training defaults (issue 13 item 7: 51 users × 20 rounds, 10 clients × 5 rounds).
 * Trains on the first `--clients` users' TRAIN files and scores the global model on every user's
 * EVAL file (a carve from scripts/carve-holdout.ts), as `tacit simulate --eval-dir` does.
 *
 *   npx tsx scripts/experiment-fedavg.ts --train CARVE/train --eval CARVE/eval [--clients 10] [--rounds 5]
 *     [--model dense|tied] [--client-lr 0.5] [--client-opt sgd|adam] [--epochs 1] [--max-steps 16]
 *     [--batch 64] [--server fedavg|fedavgm|fedadam] [--server-lr 0.1] [--central] [--copy]
 */
import { parseArgs } from "node:util";
import { readDevactionsDir } from "../shared/data/index.ts";
import { applyServerUpdate, buildExamples, concatExamples, DEFAULT_MODEL_SPEC, DENSE_MODEL_SPEC, initBackend, initialWeights, Trainer, type ServerOptimizerState } from "../shared/model/index.ts";

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
  },
});
if (!v.train || !v.eval) throw new Error("--train DIR and --eval DIR: a carve's two halves (scripts/carve-holdout.ts)");
await initBackend();
const spec = { ...(v.model === "tied" ? DEFAULT_MODEL_SPEC : DENSE_MODEL_SPEC), ...(v.copy ? { copy: true } : {}) };
let users = await readDevactionsDir(v.train);
if (v.clients) users = users.slice(0, Number(v.clients));
const byId = new Map(users.map((u) => [u.userId, u]));
const train = users.map((u) => buildExamples(u, spec));
const evals = (await readDevactionsDir(v.eval)).map((e) => buildExamples(e, spec, byId.has(e.userId) ? { contextFrom: byId.get(e.userId)! } : undefined));
const t = new Trainer(spec);
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
  let state: ServerOptimizerState | null = null;
  for (let r = 0; r < rounds; r++) {
    const sum = new Float32Array(w.length);
    for (const [i, ex] of train.entries()) {
      t.setWeights(w);
      await t.train(ex, { ...local, seed: r * 1000 + i });
      const after = t.getWeights();
      for (let k = 0; k < w.length; k++) sum[k]! += after[k]! - w[k]!;
    }
    for (let k = 0; k < w.length; k++) sum[k]! /= train.length;
    const next = applyServerUpdate(state, w, sum, { optimizer: v.server as "fedavg" | "fedavgm" | "fedadam", learningRate: Number(v["server-lr"]), momentum: 0.9 });
    w = next.weights;
    state = next.state;
    console.log(`fed round ${r + 1}`, JSON.stringify(await evaluate(w)), elapsed());
  }
}
