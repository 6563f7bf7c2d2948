/**
 * The ε–utility table of bench/RESULTS.md: held-out top-3 accuracy of the federated model at
 * several device ε (no amplification, δ = 1e-6) next to the same federation without noise and
 * the centralized non-private model, all on the same users, rounds and held-out split.
 *
 *   npx tsx scripts/epsilon-utility.ts [--dataset DIR] [--clients N] [--rounds R] [--clip C] [--out DIR]
 *
 * Defaults use `devactions-large` from ../shared (population scale: device-level DP needs many
 * devices per round before the noise on the mean becomes small). Each point is one real
 * `tacit simulate` run (coordinator, gRPC, SecAgg, on-device discrete Gaussian noise).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    dataset: { type: "string", default: resolve("../shared/datasets/devactions-large") },
    clients: { type: "string", default: "100" },
    rounds: { type: "string", default: "10" },
    clip: { type: "string", default: "1" },
    epsilons: { type: "string", default: "inf,16,8,4,1" },
    // Resumable: a point whose metrics.json already exists in --out is read, not re-run.
    out: { type: "string" },
  },
});
if (!existsSync(values.dataset)) {
  process.stderr.write(`dataset ${values.dataset} not found: run from the project checkout with ../shared beside it, or pass --dataset DIR\n`);
  process.exit(2);
}
const clients = Number(values.clients);
const out = values.out ?? mkdtempSync(join(tmpdir(), "tacit-eps-"));
const bin = resolve("bin/tacit.js");

interface Final {
  final: { eval: { top3Micro: number; top3Macro: number }; deviceEpsilon: { max: number }; populationEpsilon: number };
  privacy: { noiseMultiplier: number };
  wallSeconds: number;
}

function simulate(name: string, extra: string[]): Final {
  const dir = join(out, name);
  if (existsSync(join(dir, "metrics.json"))) return JSON.parse(readFileSync(join(dir, "metrics.json"), "utf8")) as Final;
  const args = [bin, "simulate", "--dataset", values.dataset, "--clients", String(clients), "--rounds", values.rounds, "--clip", values.clip, "--out", dir, ...extra];
  process.stderr.write(`$ tacit ${args.slice(1).join(" ")}\n`);
  execFileSync(process.execPath, args, { stdio: ["ignore", "ignore", "inherit"] });
  return JSON.parse(readFileSync(join(dir, "metrics.json"), "utf8")) as Final;
}

// Noise is sized for the whole cohort minus a small dropout margin, as a production run would.
const minSurvivors = String(Math.floor(clients * 0.95));
const rows: string[] = [];
for (const e of values.epsilons.split(",")) {
  const m = e === "inf" ? simulate("eps-inf", ["--noise-multiplier", "0"]) : simulate(`eps-${e}`, ["--target-epsilon", e, "--min-survivors", minSurvivors]);
  const f = m.final;
  process.stderr.write(`ε=${e}: top-3 micro ${(100 * f.eval.top3Micro).toFixed(2)} %\n`);
  rows.push(
    `| ${e === "inf" ? "∞ (no noise)" : e} | ${m.privacy.noiseMultiplier.toFixed(3)} | ${Number.isFinite(f.deviceEpsilon.max) ? f.deviceEpsilon.max.toFixed(2) : "∞"} | ${Number.isFinite(f.populationEpsilon) ? f.populationEpsilon.toFixed(2) : "∞"} | ${(100 * f.eval.top3Micro).toFixed(2)} % | ${(100 * f.eval.top3Macro).toFixed(2)} % | ${(m.wallSeconds / 60).toFixed(1)} min |`,
  );
}
const c = simulate("centralized", ["--centralized"]);
rows.push(`| centralized, non-private | – | – | – | ${(100 * c.final.eval.top3Micro).toFixed(2)} % | ${(100 * c.final.eval.top3Macro).toFixed(2)} % | ${(c.wallSeconds / 60).toFixed(1)} min |`);

process.stdout.write(
  [
    `${clients} devices of ${values.dataset.split("/").pop()}, ${values.rounds} rounds, all devices every round, clip ${values.clip}, noise sized for ${minSurvivors} survivors, δ = 1e-6`,
    "",
    "| target device ε | noise multiplier | device ε (max) | population ε | top-3 micro | top-3 macro | wall |",
    "|---|---|---|---|---|---|---|",
    ...rows,
    "",
  ].join("\n"),
);
