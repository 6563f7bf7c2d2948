/**
 * In-process FedAvg vs centralized on data/devactions (no gRPC, no SecAgg: the plain math), to
 * choose training defaults. Usage:
 *   node --import tsx scripts/experiment-fedavg.ts [rounds] [clientLr] [server] [serverLr] [maxSteps] [batch]
 */
import { readDevactionsDir, splitHoldout } from "../shared/data/index.ts";
import { applyServerUpdate, buildExamples, DEFAULT_MODEL_SPEC, initBackend, initialWeights, Trainer, type Examples, type ServerOptimizerState } from "../shared/model/index.ts";

const [rounds = 20, clientLr = 0.5, server = "fedavgm", serverLr = 1, maxSteps = 16, batch = 64] = process.argv.slice(2).map((a, i) => (i === 2 ? a : Number(a))) as [number, number, "fedavg" | "fedavgm" | "fedadam", number, number, number];
await initBackend();
const spec = DEFAULT_MODEL_SPEC;
const users = await readDevactionsDir("data/devactions");
const splits = users.map((u) => splitHoldout(u, 0.1));
const train = splits.map((s) => buildExamples(s.train, spec));
const evals = splits.map((s) => buildExamples(s.eval, spec, { contextFrom: s.train }));
const t = new Trainer(spec);

async function evaluate(w: Float32Array): Promise<{ top1: number; top3: number; loss: number }> {
  t.setWeights(w);
  let n = 0, h1 = 0, h3 = 0, l = 0;
  for (const e of evals) {
    const r = await t.evaluate(e);
    n += r.count; h1 += r.top1 * r.count; h3 += r.top3 * r.count; l += r.loss * r.count;
  }
  return { top1: h1 / n, top3: h3 / n, loss: l / n };
}

let w = initialWeights(spec, 1);
let state: ServerOptimizerState | null = null;
const t0 = Date.now();
for (let r = 0; r < rounds; r++) {
  const sum = new Float32Array(w.length);
  for (const [i, ex] of train.entries()) {
    t.setWeights(w);
    await t.train(ex, { epochs: 1, batchSize: batch, learningRate: clientLr, seed: r * 1000 + i, maxSteps, optimizer: (process.env.CLIENT_OPT ?? "sgd") as "sgd" | "adam" });
    const after = t.getWeights();
    for (let k = 0; k < w.length; k++) sum[k]! += after[k]! - w[k]!;
  }
  for (let k = 0; k < w.length; k++) sum[k]! /= train.length;
  const next = applyServerUpdate(state, w, sum, { optimizer: server, learningRate: serverLr, momentum: 0.9 });
  w = next.weights;
  state = next.state;
  if (r % 5 === 4 || r === rounds - 1) console.log(`fed round ${r + 1}`, JSON.stringify(await evaluate(w)), `${((Date.now() - t0) / 1000).toFixed(0)}s`);
}
if (process.env.CENTRAL) {
  const all: Examples = (() => {
    const count = train.reduce((a, e) => a + e.count, 0);
    const x = new Int32Array(count * spec.window), y = new Int32Array(count);
    let o = 0;
    for (const e of train) { x.set(e.x, o * spec.window); y.set(e.y, o); o += e.count; }
    return { x, y, count };
  })();
  let c = initialWeights(spec, 1);
  t.setWeights(c);
  for (let r = 0; r < rounds; r++) {
    await t.train(all, { epochs: 1, batchSize: Number(process.env.CB ?? 64), learningRate: Number(process.env.CLR ?? 0.5), seed: r });
    if (r % 5 === 4 || r === rounds - 1) console.log(`central epoch ${r + 1}`, JSON.stringify(await evaluate(t.getWeights())));
  }
}
