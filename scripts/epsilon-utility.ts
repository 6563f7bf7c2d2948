/**
 * The ε–utility table of bench/RESULTS.md: held-out top-3 accuracy of the federated model at
 * several device ε (no amplification, δ = 1e-6) next to the same federation without noise and
 * the centralized non-private model, all on the same users, rounds and held-out split.
 *
 *   npx tsx scripts/epsilon-utility.ts [--dataset DIR] [--clients N] [--rounds R] [--clip C] [--pretrain DIR|none] [--eval-dir DIR] [--out DIR]
 *
 * Defaults use `devactions-large` from ../shared (population scale: device-level DP needs many
 * devices per round before the noise on the mean becomes small). Each point is one real
 * `tacit simulate` run (coordinator, gRPC, SecAgg, on-device discrete Gaussian noise) with the
 * DP recipe's defaults (public pretraining on data/devactions, DP-FedAvgM, every device), and
 * reports the global and the personalized model next to the public-only model. At 934 devices a
 * point takes hours on a shared 2-core machine; scripts/dp-recipe-experiment.ts estimates the
 * same points in process.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    dataset: { type: "string", default: resolve("../shared/datasets/devactions-large") },
    clients: { type: "string" },
    rounds: { type: "string", default: "10" },
    clip: { type: "string", default: "1" },
    pretrain: { type: "string", default: "data/devactions" },
    "eval-dir": { type: "string" },
    epsilons: { type: "string", default: "inf,16,8,4,2,1" },
    // Resumable: a point whose metrics.json already exists in --out is read, not re-run.
    out: { type: "string" },
  },
});
if (!existsSync(values.dataset)) {
  process.stderr.write(`dataset ${values.dataset} not found: run from the project checkout with ../shared beside it, or pass --dataset DIR\n`);
  process.exit(2);
}
const clients = values.clients === undefined ? readdirSync(values.dataset).filter((f) => f.endsWith(".tsv")).length : Number(values.clients);
const out = values.out ?? mkdtempSync(join(tmpdir(), "tacit-eps-"));
const bin = resolve("bin/tacit.js");

interface Final {
  final: { eval: { top3Micro: number; top3Macro: number }; evalPersonalized?: { top3Micro: number }; deviceEpsilon: { max: number }; populationEpsilon: number };
  publicOnly?: { top3Micro: number };
  publicOnlyPersonalized?: { top3Micro: number };
  privacy: { noiseMultiplier: number };
  wallSeconds: number;
}

function simulate(name: string, extra: string[]): Final {
  const dir = join(out, name);
  if (existsSync(join(dir, "metrics.json"))) return JSON.parse(readFileSync(join(dir, "metrics.json"), "utf8")) as Final;
  const common = [...(values.pretrain !== "none" ? ["--pretrain", values.pretrain] : []), ...(values["eval-dir"] ? ["--eval-dir", values["eval-dir"]] : [])];
  const args = [bin, "simulate", "--dataset", values.dataset, "--clients", String(clients), "--rounds", values.rounds, "--clip", values.clip, "--out", dir, ...common, ...extra];
  process.stderr.write(`$ tacit ${args.slice(1).join(" ")}\n`);
  execFileSync(process.execPath, args, { stdio: ["ignore", "ignore", "inherit"] });
  return JSON.parse(readFileSync(join(dir, "metrics.json"), "utf8")) as Final;
}

// Noise is sized for the whole cohort minus a dropout margin (the DP recipe's default, 90 %).
const minSurvivors = String(Math.floor(clients * 0.9));
const rows: string[] = [];
const pct = (x: number | undefined): string => (x === undefined ? "–" : `${(100 * x).toFixed(2)} %`);
for (const e of values.epsilons.split(",")) {
  // Without noise, the DP recipe's optimizer and clip, so this row isolates the effect of the noise.
  const m = e === "inf" ? simulate("eps-inf", ["--noise-multiplier", "0", "--server-optimizer", "fedavgm", "--server-lr", String(2 / Number(values.clip))]) : simulate(`eps-${e}`, ["--target-epsilon", e, "--min-survivors", minSurvivors]);
  const f = m.final;
  process.stderr.write(`ε=${e}: top-3 micro ${(100 * f.eval.top3Micro).toFixed(2)} %\n`);
  rows.push(
    `| ${e === "inf" ? "∞ (no noise)" : e} | ${m.privacy.noiseMultiplier.toFixed(3)} | ${Number.isFinite(f.deviceEpsilon.max) ? f.deviceEpsilon.max.toFixed(2) : "∞"} | ${Number.isFinite(f.populationEpsilon) ? f.populationEpsilon.toFixed(2) : "∞"} | ${pct(f.eval.top3Micro)} | ${pct(f.evalPersonalized?.top3Micro)} | ${pct(f.eval.top3Macro)} | ${(m.wallSeconds / 60).toFixed(1)} min |`,
  );
}
const c = simulate("centralized", ["--centralized"]);
rows.push(`| centralized, non-private | – | – | – | ${pct(c.final.eval.top3Micro)} | ${pct(c.final.evalPersonalized?.top3Micro)} | ${pct(c.final.eval.top3Macro)} | ${(c.wallSeconds / 60).toFixed(1)} min |`);
if (c.publicOnly) rows.push(`| public-only (initial model, 0 rounds) | – | 0 | 0 | ${pct(c.publicOnly.top3Micro)} | ${pct(c.publicOnlyPersonalized?.top3Micro)} | – | – |`);

process.stdout.write(
  [
    `${clients} devices of ${values.dataset.split("/").pop()}, ${values.rounds} rounds, all devices every round, clip ${values.clip}, noise sized for ${minSurvivors} survivors, δ = 1e-6`,
    "",
    "| target device ε | noise multiplier | device ε (max) | population ε | top-3 micro | personalized top-3 micro | top-3 macro | wall |",
    "|---|---|---|---|---|---|---|---|",
    ...rows,
    "",
  ].join("\n"),
);
