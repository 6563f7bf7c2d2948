/**
 * `npm run bench:dp`: the cost of distributed DP, each figure with a baseline measured in the
 * same run.
 * 1. Exact discrete Gaussian sampling (shared/dp/samplers.ts) at the per-device σ of a typical
 *    round, vs node:crypto randomBytes throughput (8-byte words/s).
 * 2. The DP share of one device's round: encodeClientUpdate (clip + rotation + conditional
 *    rounding + noise) on the real model's parameter vector, vs the local training of a round
 *    (DEFAULT_TRAINING.maxLocalSteps steps of the real model on the wasm backend, data/devactions).
 * 3. PLD vs RDP accountant time for T = 1,000 and 10,000 Poisson-subsampled Gaussian steps and for
 *    the distributed discrete Gaussian round event.
 * Flags: --quick (smaller sample counts).
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { calibrateDistributedDp, discreteGaussian, encodeClientUpdate, PldAccountant, RandomSource, RdpAccountant, roundEvent, type DpEvent } from "../shared/dp/index.ts";
import { buildExamples, DEFAULT_MODEL_SPEC, DEFAULT_TRAINING, initBackend, initialWeights, parameterCount, Trainer } from "../shared/model/index.ts";
import { readDevactionsDir } from "../shared/data/index.ts";

const quick = process.argv.includes("--quick");
const here = new URL("..", import.meta.url).pathname;
const fmt = (x: number, d = 1): string => x.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });

/** Runs fn repeatedly for at least `ms` milliseconds; returns operations per second. */
function rate(fn: () => number, ms: number): number {
  let ops = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    ops += fn();
    t = performance.now();
  }
  return (ops * 1000) / (t - t0);
}

// A typical round: the simulate defaults (clip 5, z = 1, 32-bit modulus) with 10 devices, 5 survivors.
const dimension = parameterCount(DEFAULT_MODEL_SPEC);
const cfg = calibrateDistributedDp({ clip: 5, noiseMultiplier: 1, minSurvivors: 5, expectedSurvivors: 10, bits: 32, dimension, rotationSeed: new Uint8Array(32).fill(7) });
const variance = Number(cfg.perDeviceVariance.num) / Number(cfg.perDeviceVariance.den);

console.log(`## Distributed DP — npm run bench:dp${quick ? " -- --quick" : ""}\n`);
console.log(`typical round: d = ${dimension} (padded ${cfg.paddedDimension}), clip 5, z = 1, 5 survivors of 10, 32-bit modulus → per-device σ = ${fmt(Math.sqrt(variance), 0)} (integer domain)\n`);

// 1. Sampling rate vs randomBytes.
const rng = new RandomSource();
const samplesPerSec = rate(() => {
  for (let i = 0; i < 1000; i++) discreteGaussian(rng, cfg.perDeviceVariance);
  return 1000;
}, quick ? 1000 : 3000);
const wordsPerSec = rate(() => {
  randomBytes(65_536);
  return 65_536 / 8;
}, quick ? 500 : 1500);
console.log("| measure | value | baseline | ratio |");
console.log("|---|---|---|---|");
console.log(`| discrete Gaussian samples/s at σ = ${fmt(Math.sqrt(variance), 0)} | ${fmt(samplesPerSec, 0)} | randomBytes 8-byte words/s ${fmt(wordsPerSec, 0)} | ${fmt(samplesPerSec / wordsPerSec, 4)} |`);

// 2. encodeClientUpdate vs local training of one round.
const delta = new Float32Array(dimension);
let s = 1;
for (let i = 0; i < dimension; i++) {
  s = (s * 16807) % 2147483647;
  delta[i] = (s / 2147483647 - 0.5) * 0.02;
}
const encodeRuns = quick ? 2 : 5;
encodeClientUpdate(delta, cfg); // warm-up
let t0 = performance.now();
for (let i = 0; i < encodeRuns; i++) encodeClientUpdate(delta, cfg);
const encodeMs = (performance.now() - t0) / encodeRuns;

const backend = await initBackend("wasm");
const users = await readDevactionsDir(join(here, "data/devactions"));
const seq = { ...users[0]!, events: users.slice(0, 8).flatMap((u) => u.events) };
const ex = buildExamples(seq, DEFAULT_MODEL_SPEC);
const trainer = new Trainer(DEFAULT_MODEL_SPEC);
trainer.setWeights(initialWeights(DEFAULT_MODEL_SPEC, 1));
const B = DEFAULT_TRAINING.batchSize;
await trainer.train(ex, { epochs: 1, batchSize: B, learningRate: 0.1, seed: 1, maxSteps: 3 });
const steps = quick ? 4 : DEFAULT_TRAINING.maxLocalSteps;
t0 = performance.now();
await trainer.train(ex, { epochs: 1, batchSize: B, learningRate: 0.1, seed: 2, maxSteps: steps });
const stepMs = (performance.now() - t0) / steps;
const roundTrainMs = stepMs * DEFAULT_TRAINING.maxLocalSteps;
console.log(`| encodeClientUpdate ms (clip+rotate+round+noise, d = ${dimension}) | ${fmt(encodeMs)} | local training step ms (${backend}, batch ${B}) ${fmt(stepMs)} | ${fmt(encodeMs / stepMs, 2)} steps |`);
console.log(`| DP share of a device's round (${DEFAULT_TRAINING.maxLocalSteps} local steps + encode) | ${fmt((100 * encodeMs) / (encodeMs + roundTrainMs))} % | training ${fmt(roundTrainMs, 0)} ms | ${fmt(encodeMs / roundTrainMs, 3)} |`);

// 3. PLD vs RDP accountant time.
function timeIt(f: () => number): { ms: number; eps: number } {
  const t = performance.now();
  const eps = f();
  return { ms: performance.now() - t, eps };
}
const sampled: DpEvent = { kind: "poissonSampled", samplingProbability: 0.01, event: { kind: "gaussian", noiseMultiplier: 1 } };
const ddg = roundEvent(cfg);
const ddgSampled: DpEvent = { kind: "poissonSampled", samplingProbability: 0.01, event: ddg };
for (const [label, ev] of [
  ["Poisson q=0.01, z=1", sampled],
  ["DDG round event, Poisson q=0.01 (population ε)", ddgSampled],
  ["DDG round event, no sampling (device ε)", ddg],
] as const) {
  for (const T of [1000, 10_000]) {
    const rdp = timeIt(() => new RdpAccountant().compose(ev, T).getEpsilon(1e-6));
    const pld = timeIt(() => new PldAccountant().compose(ev, T).getEpsilon(1e-6));
    console.log(`| accountant time, ${label}, T = ${T}, δ = 1e-6 | PLD ${fmt(pld.ms, 0)} ms (ε = ${pld.eps.toFixed(3)}) | RDP ${fmt(rdp.ms, 0)} ms (ε = ${rdp.eps.toFixed(3)}) | ${fmt(pld.ms / rdp.ms, 1)}× |`);
  }
}
