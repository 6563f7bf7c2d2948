/**
 * On-device fine-tuning as personalization (issue 13 item 4): each device starts from the global
 * model, takes a few SGD steps on its own training events (the first 70 % of its file; nothing
 * leaves the device), then predicts with the fine-tuned model — alone and with the count/cache
 * personalization on top. Compared with the global model itself, on held-out data carved from the
 * training files (the last 30 % of each device's file).
 *
 *   npx tsx scripts/finetune-experiment.ts [--checkpoint DIR | --pretrain data/devactions] [--dataset DIR]
 *     [--settings "epochs:steps:lr,..."] [--devices N] [--out FILE]
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { HELD_OUT_OPTIONS } from "./lib/held-out-options.ts";
import { readDevactionsDir, splitHoldout } from "../shared/data/index.ts";
import { buildExamples, DEFAULT_MODEL_SPEC, DEFAULT_PERSONALIZATION, initBackend, loadCheckpoint, localCounts, pretrainCached, Trainer } from "../shared/model/index.ts";
import { evaluateModel, type EvalSet } from "../simulation/evaluation.ts";

const { values } = parseArgs({
  options: {
    ...HELD_OUT_OPTIONS,
    settings: { type: "string", default: "0:0:0,1:8:0.05,2:16:0.05,2:16:0.1,2:32:0.05" },
    devices: { type: "string" },
    // Prior strengths α of the count personalization on top of each model (1e9: the cache alone).
    alphas: { type: "string", default: "2" },
    out: { type: "string" },
  },
});

const t0 = Date.now();
const spec = DEFAULT_MODEL_SPEC;
let users = await readDevactionsDir(values.dataset);
if (values.devices) users = users.slice(0, Number(values.devices));
const splits = users.map((u) => ({ id: u.userId, ...splitHoldout(u, Number(values["eval-fraction"])) }));
const train = splits.map((s) => buildExamples(s.train, spec));
const evalSets: EvalSet[] = splits.map((s, i) => ({ userId: s.id, examples: buildExamples(s.eval, spec, { contextFrom: s.train }), local: localCounts(train[i]!, spec.window) }));

await initBackend();
const global = values.checkpoint ? (await loadCheckpoint(values.checkpoint)).weights : (await pretrainCached(values.pretrain, spec)).weights;
const trainer = new Trainer(spec);

interface Setting { epochs: number; steps: number; lr: number }
const settings: Setting[] = values.settings.split(",").map((s) => {
  const [epochs, steps, lr] = s.split(":").map(Number) as [number, number, number];
  return { epochs, steps, lr };
});

const alphas = values.alphas.split(",").map(Number);

class Sum {
  hits = 0; events = 0; macro = 0; users = 0;
  add(top3: number, events: number): void {
    if (events === 0) return;
    this.hits += top3 * events;
    this.events += events;
    this.macro += top3;
    this.users += 1;
  }
  get micro(): number { return this.hits / this.events; }
  get macroAvg(): number { return this.macro / this.users; }
}

const rows: object[] = [];
for (const s of settings) {
  const g = new Sum();
  const p = alphas.map(() => new Sum());
  for (let i = 0; i < evalSets.length; i++) {
    const set = evalSets[i]!;
    if (set.examples.count === 0) continue;
    let w = global;
    if (s.steps > 0 && train[i]!.count > 0) {
      trainer.setWeights(global);
      await trainer.train(train[i]!, { epochs: s.epochs, maxSteps: s.steps, batchSize: 64, learningRate: s.lr, seed: 17 + i });
      w = trainer.getWeights();
    }
    alphas.forEach((alpha, k) => {
      const m = evaluateModel(trainer, w, [set], { ...DEFAULT_PERSONALIZATION, alpha });
      if (k === 0) g.add(m.eval.top3Micro, m.eval.events);
      p[k]!.add(m.evalPersonalized.top3Micro, m.evalPersonalized.events);
    });
  }
  const row = { ...s, global: g.micro, globalMacro: g.macroAvg, personalized: Object.fromEntries(alphas.map((a, k) => [String(a), [p[k]!.micro, p[k]!.macroAvg]])), seconds: (Date.now() - t0) / 1000 };
  rows.push(row);
  process.stderr.write(JSON.stringify(row) + "\n");
}
if (values.out) writeFileSync(values.out, JSON.stringify({ checkpoint: values.checkpoint ?? null, rows }, null, 2));
