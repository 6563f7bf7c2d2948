/**
 * Chooses the released mixture's federated weight w (shared/model/release-mix.ts): top-3 of
 * (1 − w)·public + w·federated for several w in one pass, global and personalized. Run it on a
 * validation carve, never the held-out data: the DP recipe's weight (simulation/recipe.ts) was
 * chosen on the newest 20 % of each device's training events (bench/RESULTS.md).
 *
 *   npx tsx scripts/release-mix-sweep.ts --checkpoint DIR [--dataset DIR] [--eval-fraction 0.2]
 *     [--pretrain data/devactions] [--weights 0,0.5,0.75,1]
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { readDevactionsDir, splitHoldout } from "../shared/data/index.ts";
import { applyMixture, buildExamples, DEFAULT_PERSONALIZATION, initBackend, loadCheckpoint, localCounts, mixWithAnchor, personalMixture, pretrainCached, Trainer } from "../shared/model/index.ts";
import { rankOf } from "../simulation/evaluation.ts";

const { values } = parseArgs({
  options: {
    checkpoint: { type: "string" },
    dataset: { type: "string", default: resolve("../shared/datasets/devactions-large") },
    "eval-fraction": { type: "string", default: "0.2" },
    pretrain: { type: "string", default: "data/devactions" },
    weights: { type: "string", default: "0,0.3,0.5,0.6,0.7,0.75,0.8,0.9,1" },
  },
});
if (!values.checkpoint) throw new Error("--checkpoint DIR: the federated model to mix (scripts/dp-recipe-experiment.ts --save-weights DIR)");
const splits = (await readDevactionsDir(values.dataset)).map((u) => splitHoldout(u, Number(values["eval-fraction"])));
await initBackend();
// The public half is pretrained with the federated model's own spec (the cache is keyed by it).
const checkpoint = await loadCheckpoint(values.checkpoint);
const spec = checkpoint.spec;
const publicModel = new Trainer(spec);
publicModel.setWeights((await pretrainCached(values.pretrain, spec)).weights);
const federated = new Trainer(spec);
federated.setWeights(checkpoint.weights);
const W = values.weights.split(",").map(Number);
const hits = W.map(() => ({ global: 0, personalized: 0 }));
let events = 0;
for (const s of splits) {
  const train = buildExamples(s.train, spec);
  const held = buildExamples(s.eval, spec, { contextFrom: s.train });
  if (held.count === 0) continue;
  const local = localCounts(train, spec.window);
  const anchor: Float64Array[] = [];
  publicModel.forEachDistribution(held, (row, p) => void (anchor[row] = Float64Array.from(p)));
  federated.forEachDistribution(held, (row, p) => {
    const y = held.y[row]!;
    events += 1;
    W.forEach((w, i) => {
      const mixed = mixWithAnchor(Float64Array.from(p), anchor[row]!, w);
      if (rankOf(mixed, y) < 3) hits[i]!.global += 1;
      applyMixture(mixed, personalMixture(local, held.x, row, DEFAULT_PERSONALIZATION));
      if (rankOf(mixed, y) < 3) hits[i]!.personalized += 1;
    });
  });
}
for (let i = 0; i < W.length; i++) console.log(JSON.stringify({ federatedWeight: W[i], global: hits[i]!.global / events, personalized: hits[i]!.personalized / events, events }));
