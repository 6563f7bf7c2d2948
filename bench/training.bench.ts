/**
 * `npm run bench`: local training steps/s on each available tfjs backend (wasm/cpu ratio in the
 * same run), and simulation rounds per minute over every user of the shipped dataset.
 * `npm run bench -- --full` also runs the 20-round federated simulation and the centralized
 * baseline and prints the accuracy ratio (the targets).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const full = process.argv.includes("--full");
const here = new URL("..", import.meta.url).pathname;

function stepsPerSecond(backend: string): { backend: string; stepsPerSec: number; examplesPerSec: number } | undefined {
  // Each backend in its own process: tfjs allows one active backend per process.
  const code = `
    const { readDevactionsDir } = await import(${JSON.stringify(join(here, "shared/data/index.ts"))});
    const m = await import(${JSON.stringify(join(here, "shared/model/index.ts"))});
    const got = await m.initBackend(${JSON.stringify(backend)});
    if (got !== ${JSON.stringify(backend)}) { console.log(JSON.stringify({ unavailable: got })); process.exit(0); }
    const users = await readDevactionsDir(${JSON.stringify(join(here, "data/devactions"))});
    const seq = { ...users[0], events: users.slice(0, 8).flatMap((u) => u.events) };
    const spec = m.DEFAULT_MODEL_SPEC;
    const ex = m.buildExamples(seq, spec);
    const t = new m.Trainer(spec);
    t.setWeights(m.initialWeights(spec, 1));
    const B = m.DEFAULT_TRAINING.batchSize;
    await t.train(ex, { epochs: 1, batchSize: B, learningRate: 0.1, seed: 1, maxSteps: 5 });
    const steps = ${JSON.stringify(backend)} === "cpu" ? 20 : 80;
    const t0 = performance.now();
    await t.train(ex, { epochs: 1, batchSize: B, learningRate: 0.1, seed: 2, maxSteps: steps });
    const s = (performance.now() - t0) / 1000;
    console.log(JSON.stringify({ backend: got, stepsPerSec: steps / s, examplesPerSec: (steps * B) / s }));
  `;
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { cwd: here, encoding: "utf8" });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  try {
    const j = JSON.parse(line) as { backend?: string; stepsPerSec: number; examplesPerSec: number; unavailable?: string };
    if (j.unavailable) return undefined;
    return j as { backend: string; stepsPerSec: number; examplesPerSec: number };
  } catch {
    return undefined;
  }
}

function simulate(args: string[]): { metrics: { rounds: { wallSeconds: number; eval: { top3Micro: number; top1Micro: number } }[]; wallSeconds: number; final?: { eval: { top3Micro: number; top1Micro: number } } }; seconds: number } {
  const out = mkdtempSync(join(tmpdir(), "tacit-bench-"));
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [join(here, "bin/tacit.js"), "simulate", "--dataset", join(here, "data/devactions"), "--out", out, ...args], { cwd: here, encoding: "utf8", stdio: ["ignore", "ignore", "inherit"] });
  if (r.status !== 0) throw new Error(`simulate ${args.join(" ")} failed`);
  return { metrics: JSON.parse(readFileSync(join(out, "metrics.json"), "utf8")), seconds: (performance.now() - t0) / 1000 };
}

const results = ["tensorflow", "wasm", "cpu"].map(stepsPerSecond).filter((x): x is NonNullable<typeof x> => x !== undefined);
console.log("\n## Local training throughput (batch of the default training config)\n");
console.log("| backend | steps/s | examples/s |\n|---|---|---|");
for (const r of results) console.log(`| ${r.backend} | ${r.stepsPerSec.toFixed(1)} | ${r.examplesPerSec.toFixed(0)} |`);
const wasm = results.find((r) => r.backend === "wasm");
const cpu = results.find((r) => r.backend === "cpu");
if (wasm && cpu) console.log(`\nratio wasm/cpu = ${(wasm.stepsPerSec / cpu.stepsPerSec).toFixed(2)}× (same run)`);

const rounds = full ? 20 : 3;
const fed = simulate(["--rounds", String(rounds)]);
const perRound = fed.metrics.rounds.map((r) => r.wallSeconds);
const mean = perRound.reduce((a, b) => a + b, 0) / perRound.length;
console.log(`\n## Simulation over all 51 users\n\nfederated: ${rounds} rounds in ${fed.seconds.toFixed(0)} s wall (process), mean round ${mean.toFixed(1)} s → ${(60 / mean).toFixed(2)} rounds/min`);
if (full) {
  const cen = simulate(["--rounds", String(rounds), "--centralized"]);
  const f3 = fed.metrics.final!.eval.top3Micro;
  const c3 = cen.metrics.final!.eval.top3Micro;
  console.log(`centralized: ${rounds} epochs in ${cen.seconds.toFixed(0)} s`);
  console.log(`held-out top-3 (micro): federated ${(100 * f3).toFixed(2)}% vs centralized ${(100 * c3).toFixed(2)}% → ratio ${(f3 / c3).toFixed(3)} (target ≥ 0.95)`);
  console.log(`held-out top-1 (micro): federated ${(100 * fed.metrics.final!.eval.top1Micro).toFixed(2)}% vs centralized ${(100 * cen.metrics.final!.eval.top1Micro).toFixed(2)}%`);
  console.log(`20-round federated simulation: ${(fed.seconds / 60).toFixed(1)} min (target < 10 min)`);
}
