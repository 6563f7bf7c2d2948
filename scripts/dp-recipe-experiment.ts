/**
 * Fast in-process estimate of the DP recipe's utility on devactions-large, for tuning and for
 * the ε–utility table when the full gRPC simulation (hours on this shared 2-core machine) is out
 * of reach. Each device trains with the same Trainer and local options a real round uses, its
 * delta is clipped to C, and the sum gets central Gaussian noise of the variance the
 * distributed discrete Gaussian adds in total: n devices each adding (zC)²/(minSurvivors − colluders). The
 * rounding of the DDG and modular arithmetic are not modelled (they change the sum by far less
 * than the noise); z is calibrated with the real per-round DDG event, exactly as `tacit
 * simulate --target-epsilon` does. The noise here is Box–Muller over Math.random (or, with
 * --noise-seed N, a seeded PRNG, so that two settings can be compared on the same draw): it
 * estimates utility only and protects nothing — real runs add noise on the devices (shared/dp).
 * Before 2026-12-03 the colluders' share was not modelled (n·(zC)²/minSurvivors: at 934 devices a noise std 6 %
 * below what the devices add at the default 10 % colluder tolerance).
 *
 * Held-out data is carved from the training files: the last 30 % of each device's events
 * (the rest is that device's training data and its personalization statistics).
 *
 *   npx tsx scripts/dp-recipe-experiment.ts --epsilon 8 [--rounds 10] [--dataset DIR] [--pretrain DIR] [--out FILE]
 *     [--save-weights DIR] [--skip-initial-eval] [--copy] [--noise-seed N]
 *   --save-weights: the global model as a checkpoint after every round (for evaluating on-device
 *   personalization on it later, scripts/personalization-experiment.ts --checkpoint DIR).
 *   --epsilon inf: no noise; --rounds 0: the initial (public-only) model alone.
 *   Tuning (bench/RESULTS.md, "Searching for the missing optimization"): --local-epochs N, --max-steps N,
 *   --client-lr X, --client-optimizer sgd|adam, --batch-size N, --server-lr X, --server-momentum X, and
 *   --weight-cap N (each device scales its clipped delta by min(1, examples / N)); --hidden N and
 *   --embed-dim N change the layer widths of the model (a new spec, pretrained and cached on its own).
 */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { readDevactionsDir, splitHoldout } from "../shared/data/index.ts";
import { applyServerUpdate, buildExamples, saveCheckpoint, DEFAULT_MODEL_SPEC, initBackend, initialWeights, localCounts, personalizeInPlace, pretrainCached, TIED_COPY_MODEL_SPEC, Trainer, type ServerOptimizerState } from "../shared/model/index.ts";
import { calibrateNoiseMultiplier } from "../shared/dp/index.ts";
import { perRoundEvent, type RunSpec } from "../shared/run/index.ts";
import { corruptCount } from "../shared/secagg/index.ts";
import { DEFAULT_CORRUPT_TOLERANCE, DP_DEFAULT_ROUNDS, resolveRecipe } from "../simulation/recipe.ts";
import { AnchorDistributions, evaluateModel, rankOf, type EvalSet } from "../simulation/evaluation.ts";

const { values } = parseArgs({
  options: {
    dataset: { type: "string", default: resolve("../shared/datasets/devactions-large") },
    pretrain: { type: "string", default: "data/devactions" },
    epsilon: { type: "string", default: "8" },
    rounds: { type: "string" },
    clip: { type: "string" },
    "server-lr": { type: "string" },
    "local-epochs": { type: "string" },
    "max-steps": { type: "string" },
    "client-lr": { type: "string" },
    "client-optimizer": { type: "string" },
    "batch-size": { type: "string" },
    "server-momentum": { type: "string" },
    // Each device scales its clipped delta by min(1, examples / cap): sensitivity stays C.
    "weight-cap": { type: "string" },
    // The federated model's weight in the released mixture with the public model (default: the recipe's).
    "release-mix": { type: "string" },
    "eval-fraction": { type: "string", default: "0.3" },
    alpha: { type: "string" },
    seed: { type: "string", default: "1" },
    "noise-seed": { type: "string" },
    // Evaluating 110k held-out events takes minutes on a busy machine: every K rounds and the last.
    "eval-every": { type: "string", default: "1" },
    out: { type: "string" },
    "save-weights": { type: "string" },
    // The public-only row is the same for every ε; skipping it saves minutes on a busy machine.
    "skip-initial-eval": { type: "boolean", default: false },
    // The tied model with the context-copy path at width 28, as `tacit simulate` now uses (TIED_COPY_MODEL_SPEC;
    // add --embed-dim 32 for session 14's copy table); without it, the width-32 tied model alone, as the earlier
    // ε tables were measured. The pretrain cache is keyed by the spec.
    copy: { type: "boolean", default: false },
    // Layer widths other than the spec's (model-size experiments; the pretrain cache is keyed by the spec).
    hidden: { type: "string" },
    "embed-dim": { type: "string" },
  },
});

const t0 = Date.now();
/** A numeric flag, or undefined when absent; a flag that is not a finite number stops the run. */
function optionalNumber(name: keyof typeof values): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== "string" || !Number.isFinite(n)) throw new Error(`--${name} must be a number, got ${String(v)}`);
  return n;
}
const spec = {
  ...(values.copy ? TIED_COPY_MODEL_SPEC : DEFAULT_MODEL_SPEC),
  ...(values.hidden ? { hidden: optionalNumber("hidden")! } : {}),
  ...(values["embed-dim"] ? { embedDim: optionalNumber("embed-dim")! } : {}),
};
const eps = values.epsilon === "inf" ? Infinity : Number(values.epsilon);
const users = await readDevactionsDir(values.dataset);
const splits = users.map((u) => ({ id: u.userId, ...splitHoldout(u, Number(values["eval-fraction"])) }));
const train = splits.map((s) => buildExamples(s.train, spec));
const evalSets: EvalSet[] = splits.map((s, i) => ({ userId: s.id, examples: buildExamples(s.eval, spec, { contextFrom: s.train }), local: localCounts(train[i]!, spec.window) }));
const n = users.length;
const dp = Number.isFinite(eps);
const recipe = resolveRecipe(
  {
    dp,
    // ε = ∞ runs as many rounds as a DP run, so the two differ only by the noise.
    rounds: values.rounds === undefined ? DP_DEFAULT_ROUNDS : Number(values.rounds),
    clip: values.clip === undefined ? undefined : Number(values.clip),
    serverLearningRate: values["server-lr"] === undefined ? undefined : Number(values["server-lr"]),
    localEpochs: values["local-epochs"] === undefined ? undefined : Number(values["local-epochs"]),
    personalizationStrength: values.alpha === undefined ? undefined : Number(values.alpha),
    pretrained: values.pretrain !== "none",
    releaseMix: optionalNumber("release-mix"),
    // Without noise the DP recipe is still the comparison point (same optimizer and clip).
    serverOptimizer: "fedavgm",
  },
  n,
);
// Without noise, use the DP recipe's training too, so ε = ∞ isolates the effect of the noise.
const baseTraining = dp ? recipe.training : resolveRecipe({ dp: true, rounds: recipe.rounds, localEpochs: optionalNumber("local-epochs"), serverLearningRate: optionalNumber("server-lr") }, n).training;
// Tuning knobs the run spec has but the recipe input does not expose.
const training = {
  ...baseTraining,
  maxLocalSteps: optionalNumber("max-steps") ?? baseTraining.maxLocalSteps,
  clientLearningRate: optionalNumber("client-lr") ?? baseTraining.clientLearningRate,
  clientOptimizer: (values["client-optimizer"] as "sgd" | "adam" | undefined) ?? baseTraining.clientOptimizer,
  batchSize: optionalNumber("batch-size") ?? baseTraining.batchSize,
  serverMomentum: optionalNumber("server-momentum") ?? baseTraining.serverMomentum,
};
const weightCap = optionalNumber("weight-cap");
const clip = dp ? recipe.clip : resolveRecipe({ dp: true }, n).clip;
const minSurvivors = dp ? recipe.minSurvivors : Math.floor(n * 0.9);

await initBackend();
const initial = values.pretrain === "none" ? initialWeights(spec, Number(values.seed)) : (await pretrainCached(values.pretrain, spec)).weights;

const runSpecFor = (z: number): RunSpec => ({
  name: "experiment", model: spec, rounds: recipe.rounds, cohortSize: n, minSurvivors, populationSize: n, ...training, clip, noiseMultiplier: z, delta: 1e-6,
  mechanism: "ddgauss", bits: 32, dropoutTolerance: 0.1, corruptTolerance: DEFAULT_CORRUPT_TOLERANCE, signals: ["commit"],
  deadlines: { selectionMs: 1000, advertiseMs: 1000, shareMs: 1000, maskedInputMs: 1000, unmaskMs: 1000 }, seed: Number(values.seed),
});
const z = dp && recipe.rounds > 0 ? calibrateNoiseMultiplier({ targetEpsilon: eps, delta: 1e-6, rounds: recipe.rounds, eventFor: (zz) => perRoundEvent(runSpecFor(zz)) }) : 0;
// As on the devices (shared/dp/distributed-dp.ts): the noise is sized for the honest survivors
// alone, minSurvivors − ⌈corruptTolerance · n⌉, and every one of the n devices adds its share.
const sigma = z * clip * Math.sqrt(n / (minSurvivors - corruptCount(n, DEFAULT_CORRUPT_TOLERANCE)));

// Seeded (--noise-seed) so two configurations can be compared on the same noise draw: this noise
// only estimates utility (see the header). mulberry32, a small non-cryptographic PRNG.
let noiseState = values["noise-seed"] === undefined ? undefined : Number(values["noise-seed"]) >>> 0;
function uniform(): number {
  if (noiseState === undefined) return Math.random();
  noiseState = (noiseState + 0x6d2b79f5) >>> 0;
  let t = noiseState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
function gaussian(): number {
  let u = 0;
  while (u === 0) u = uniform();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
}

const trainer = new Trainer(spec);
/** Personalized top-3 micro at several prior strengths α in one forward pass (to choose the default α). */
const ALPHAS = [0.25, 0.5, 1, 2, 4, 8, 16];
function alphaSweep(w: Float32Array): Record<string, number> {
  trainer.setWeights(w);
  const hits = ALPHAS.map(() => 0);
  let count = 0;
  const copy = new Float64Array(trainer.outputs);
  for (const s of evalSets) {
    trainer.forEachDistribution(s.examples, (row, probs) => {
      const y = s.examples.y[row]!;
      count += 1;
      ALPHAS.forEach((a, i) => {
        copy.set(probs);
        personalizeInPlace(copy, s.local!, s.examples.x, row, { ...recipe.personalization, alpha: a });
        if (rankOf(copy, y) < 3) hits[i]! += 1;
      });
    });
  }
  return Object.fromEntries(ALPHAS.map((a, i) => [String(a), hits[i]! / count]));
}
const rows: object[] = [];
const log = (o: object): void => {
  rows.push(o);
  process.stderr.write(JSON.stringify(o) + "\n");
};
const evalEvents = evalSets.reduce((a, s) => a + s.examples.count, 0);
// With a released mixture the public model's distributions are recorded once (the public-only pass).
const anchor = recipe.releaseMix !== undefined ? new AnchorDistributions(trainer.outputs) : undefined;
const mix = anchor && { anchor, federatedWeight: recipe.releaseMix! };
if (!values["skip-initial-eval"] || anchor) {
  const ev0 = evaluateModel(trainer, initial, evalSets, recipe.personalization, { record: anchor });
  if (!values["skip-initial-eval"]) log({ round: -1, global: ev0.eval.top3Micro, personalized: ev0.evalPersonalized.top3Micro, globalMacro: ev0.eval.top3Macro, alphaSweep: alphaSweep(initial), seconds: (Date.now() - t0) / 1000 });
}
let weights = initial;
let state: ServerOptimizerState | null = null;
for (let r = 0; r < recipe.rounds; r++) {
  const sum = new Float64Array(weights.length);
  let lossSum = 0;
  let finiteLosses = 0;
  let clipped = 0;
  for (let i = 0; i < n; i++) {
    trainer.setWeights(weights);
    const res = await trainer.train(train[i]!, { epochs: training.localEpochs, maxSteps: training.maxLocalSteps, batchSize: training.batchSize, learningRate: training.clientLearningRate, optimizer: training.clientOptimizer, seed: (Number(values.seed) * 1_000_003 + r * 7919 + i) % 2 ** 31 });
    const after = trainer.getWeights();
    let norm2 = 0;
    for (let k = 0; k < after.length; k++) norm2 += (after[k]! - weights[k]!) ** 2;
    const weight = weightCap === undefined ? 1 : Math.min(1, train[i]!.count / weightCap);
    const scale = Math.min(1, clip / Math.sqrt(norm2)) * weight;
    if (Math.sqrt(norm2) > clip) clipped += 1;
    if (Number.isFinite(scale)) for (let k = 0; k < after.length; k++) sum[k] = sum[k]! + (after[k]! - weights[k]!) * scale;
    // A device whose local loss blew up (> 20 nats, or NaN) counts as diverged; its clipped delta still goes in, as on a real device.
    if (res.loss < 20) {
      lossSum += res.loss;
      finiteLosses += 1;
    }
  }
  const mean = new Float32Array(weights.length);
  for (let k = 0; k < mean.length; k++) mean[k] = (sum[k]! + sigma * gaussian()) / n;
  const next = applyServerUpdate(state, weights, mean, { optimizer: training.serverOptimizer, learningRate: training.serverLearningRate, momentum: training.serverMomentum });
  weights = next.weights;
  state = next.state;
  const diverged = train.length - finiteLosses;
  if (values["save-weights"]) await saveCheckpoint(values["save-weights"], spec, weights, { source: "dp-recipe-experiment", epsilon: values.epsilon, round: r, rounds: recipe.rounds, seed: Number(values.seed) });
  if ((r + 1) % Number(values["eval-every"]) !== 0 && r !== recipe.rounds - 1) {
    log({ round: r, trainLoss: lossSum / finiteLosses, diverged, clippedFraction: clipped / n, seconds: (Date.now() - t0) / 1000 });
    continue;
  }
  const ev = evaluateModel(trainer, weights, evalSets, recipe.personalization, { mix });
  const federatedOnly = ev.evalFederatedOnly && { federatedOnly: ev.evalFederatedOnly.top3Micro, federatedOnlyMacro: ev.evalFederatedOnly.top3Macro };
  log({ round: r, trainLoss: lossSum / finiteLosses, diverged, clippedFraction: clipped / n, global: ev.eval.top3Micro, personalized: ev.evalPersonalized.top3Micro, globalMacro: ev.eval.top3Macro, ...federatedOnly, seconds: (Date.now() - t0) / 1000 });
}
if (recipe.rounds > 0) log({ final: true, alphaSweep: alphaSweep(weights) });
const result = { epsilon: values.epsilon, z, sigma, clip, rounds: recipe.rounds, releaseMix: recipe.releaseMix ?? null, devices: n, minSurvivors, training, personalization: recipe.personalization, evalEvents, rows, wallSeconds: (Date.now() - t0) / 1000 };
if (values.out) writeFileSync(values.out, JSON.stringify(result, null, 2));
process.stdout.write(JSON.stringify(result) + "\n");
