/** `tacit simulate`: the federated simulation on a dataset dir (see simulation/simulate.ts). */
import type { Command } from "commander";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { CliError, parseNumber } from "../errors.ts";
import { runSimulation, SimulationInterrupted, writeMetrics } from "../../simulation/simulate.ts";
import { RecipeError } from "../../simulation/recipe.ts";
import { InitialModelSetupError } from "../../simulation/initial-model.ts";
import { ShutdownSignals } from "../shutdown.ts";
import { jsonWithInfinity } from "../../simulation/write-json-atomic.ts";
import { LEARNING_RATE_SCHEDULES, type LearningRateSchedule } from "../../shared/model/index.ts";

export function registerSimulateCommand(program: Command): void {
  program
    .command("simulate")
    .description("run a federated simulation: a real coordinator and one device client per user file, over gRPC on loopback")
    .requiredOption("--dataset <dir>", "directory of per-user TSV files (<unix seconds>\\t<token>)")
    .option("--clients <n>", "use only the first N user files")
    .option("--rounds <r>", "federated rounds (or centralized epochs); default 10 with DP noise, else 20")
    .option("--eval-dir <dir>", "evaluate on these files instead of the last 10% of each user")
    .option("--out <dir>", "where metrics.json (and ledger, policy) are written", "out/simulation")
    .option("--json", "print the final metrics object on stdout")
    .option("--centralized", "train the same model on the pooled data instead (baseline)")
    .option("--dropout <p>", "each device drops with probability P at a random phase of each round", "0")
    .option("--corrupt-tolerance <f>", "fraction of each cohort that may collude with a malicious coordinator (SecAgg thresholds and noise are sized for it; small cohorts then tolerate fewer dropouts)", "0.1")
    .option("--noise-multiplier <z>", "DP noise multiplier (0 = clipping and SecAgg only)")
    .option("--target-epsilon <eps>", "calibrate the noise multiplier so device ε after all rounds is this")
    .option("--clip <c>", "L2 clip norm of each device's update; default 1 with DP noise (server step scaled to it), else 5")
    .option("--adaptive-clip", "adaptive clipping (Andrew et al. 2021): --clip is the initial C, moved each round towards the median update norm; the clip count's noise is part of the noise multiplier")
    .option("--pretrain <dir>", "pretrain the initial model centrally on these PUBLIC per-user files (cached), then federate from it")
    .option("--release-mix <w>", "release (1 − W)·public model + W·federated model, evaluated as the global model (needs --pretrain; default 0.75 for DP runs, 1 = the federated model alone)")
    .option("--server-optimizer <opt>", "fedavg | fedavgm | fedadam (default: fedavgm with DP noise, where fedadam is refused; else fedadam)")
    .option("--server-lr <lr>", "server learning rate (default: 2/clip with DP noise, else 0.1)")
    .option("--server-lr-schedule <s>", "constant | cosine: the server learning rate over the rounds (default: constant with DP noise, else cosine)")
    .option("--personalization-strength <a>", "on-device personalization: base prior strength α of the global model over the device's own context counts (shared/model/personalize.ts)")
    .option("--min-survivors <n>", "devices that must survive for a round to release (noise sized for them)")
    .option("--delta <d>", "DP delta", "1e-6")
    .option("--cohort <k>", "devices per round (default: all)")
    .option("--local-epochs <e>", "local epochs per round")
    .option("--max-local-steps <n>", "cap on a device's SGD steps per round (default 16 with DP noise or --pretrain, else 32)")
    .option("--workers <w>", "device-host worker threads")
    .option("--state-dir <dir>", "coordinator state dir (default: a temporary dir)")
    .option("--seed <s>", "seed of the model initialisation", "1")
    .action((o: Record<string, string | boolean | undefined>) => simulate(o));
}

/** The `simulate` action: checks the paths and flags, runs the simulation, writes and reports its metrics. */
async function simulate(o: Record<string, string | boolean | undefined>): Promise<void> {
  const dataset = String(o.dataset);
  if (!existsSync(dataset) || !statSync(dataset).isDirectory()) throw new CliError(`--dataset ${dataset}: no such directory`);
  if (o.evalDir && (!existsSync(String(o.evalDir)) || !statSync(String(o.evalDir)).isDirectory())) throw new CliError(`--eval-dir ${o.evalDir}: no such directory`);
  if (o.noiseMultiplier !== undefined && o.targetEpsilon !== undefined) throw new CliError("give either --noise-multiplier or --target-epsilon, not both");
  if (o.pretrain && (!existsSync(String(o.pretrain)) || !statSync(String(o.pretrain)).isDirectory())) throw new CliError(`--pretrain ${o.pretrain}: no such directory`);
  if (o.releaseMix !== undefined && o.centralized) throw new CliError("--release-mix mixes a federated model with the public one; a --centralized run has none");
  const serverOptimizer = o.serverOptimizer === undefined ? undefined : String(o.serverOptimizer);
  if (serverOptimizer !== undefined && serverOptimizer !== "fedavg" && serverOptimizer !== "fedavgm" && serverOptimizer !== "fedadam") throw new CliError(`--server-optimizer must be fedavg, fedavgm or fedadam, got '${serverOptimizer}'`);
  const schedule = o.serverLrSchedule === undefined ? undefined : String(o.serverLrSchedule);
  if (schedule !== undefined && !(LEARNING_RATE_SCHEDULES as readonly string[]).includes(schedule)) throw new CliError(`--server-lr-schedule must be ${LEARNING_RATE_SCHEDULES.join(" or ")}, got '${schedule}'`);
  const num = (k: string, flag: string, lim: Parameters<typeof parseNumber>[2]) => (o[k] === undefined ? undefined : parseNumber(flag, String(o[k]), lim));
  const out = String(o.out);
  const shutdown = new ShutdownSignals();
  const metrics = await runSimulation({
    pretrain: o.pretrain ? String(o.pretrain) : undefined,
    serverOptimizer,
    adaptiveClip: Boolean(o.adaptiveClip),
    serverLearningRate: num("serverLr", "--server-lr", { min: 1e-6, max: 100 }),
    serverLearningRateSchedule: schedule as LearningRateSchedule | undefined,
    releaseMix: num("releaseMix", "--release-mix", { min: 1e-6, max: 1 }),
    personalizationStrength: num("personalizationStrength", "--personalization-strength", { min: 1e-6, max: 1e6 }),
    dataset,
    clients: num("clients", "--clients", { min: 2, integer: true }),
    rounds: num("rounds", "--rounds", { min: 1, max: 10_000, integer: true }),
    evalDir: o.evalDir ? String(o.evalDir) : undefined,
    out: String(o.out),
    centralized: Boolean(o.centralized),
    dropout: num("dropout", "--dropout", { min: 0, max: 0.9 })!,
    corruptTolerance: num("corruptTolerance", "--corrupt-tolerance", { min: 0, max: 0.5 })!,
    noiseMultiplier: num("noiseMultiplier", "--noise-multiplier", { min: 0, max: 1000 }),
    targetEpsilon: num("targetEpsilon", "--target-epsilon", { min: 1e-3, max: 1e6 }),
    clip: num("clip", "--clip", { min: 1e-9, max: 1e6 }),
    minSurvivors: num("minSurvivors", "--min-survivors", { min: 2, integer: true }),
    delta: num("delta", "--delta", { min: 1e-15, max: 0.1 })!,
    cohort: num("cohort", "--cohort", { min: 2, integer: true }),
    localEpochs: num("localEpochs", "--local-epochs", { min: 1, max: 100, integer: true }),
    maxLocalSteps: num("maxLocalSteps", "--max-local-steps", { min: 1, max: 100_000, integer: true }),
    workers: num("workers", "--workers", { min: 1, max: 64, integer: true }),
    stateDir: o.stateDir ? String(o.stateDir) : undefined,
    seed: num("seed", "--seed", { min: 0, integer: true })!,
    quiet: false,
    signal: shutdown.signal,
    // Progress survives a kill or a hang: metrics.json after every round, `complete: false`.
    onRound: (partial) => writeMetrics(out, partial),
  })
    .catch((err: unknown) => {
      // The recipe's refusals (FedAdam under DP, pretraining on private data) are the user's to fix.
      if (err instanceof RecipeError || err instanceof InitialModelSetupError) throw new CliError(err.message);
      return exitIfInterrupted(err, shutdown, out);
    })
    .finally(() => shutdown.dispose());
  const path = writeMetrics(out, metrics);
  process.stderr.write(`metrics written to ${path}\n`);
  reportInitialModelGain(metrics);
  if (o.json) process.stdout.write(jsonWithInfinity(metrics) + "\n");
}

/** Says plainly whether the federated rounds beat the initial (public-only) model. */
function reportInitialModelGain(metrics: Awaited<ReturnType<typeof runSimulation>>): void {
  if (!metrics.publicOnly || !metrics.final) return;
  const pct = (x: number | undefined): string => (x === undefined ? "–" : `${(100 * x).toFixed(1)}%`);
  const gain = metrics.final.eval.top3Micro - metrics.publicOnly.top3Micro;
  process.stderr.write(
    `top-3 (micro): initial model ${pct(metrics.publicOnly.top3Micro)} → final ${pct(metrics.final.eval.top3Micro)} (${gain >= 0 ? "+" : ""}${(100 * gain).toFixed(1)} points${gain <= 0 ? ": the rounds did not beat the initial model" : ""}); ` +
      `personalized ${pct(metrics.publicOnlyPersonalized?.top3Micro)} → ${pct(metrics.final.evalPersonalized?.top3Micro)}\n`,
  );
}

/** A simulation stopped by a signal has cleaned up after itself: say where its figures are and exit. */
function exitIfInterrupted(err: unknown, shutdown: ShutdownSignals, out: string): never {
  if (!(err instanceof SimulationInterrupted)) throw err;
  const metrics = join(out, "metrics.json");
  const where = existsSync(metrics) ? `the metrics so far (complete: false) are in ${metrics}` : "no round had been recorded, so there are no metrics";
  process.stderr.write(`tacit: simulation ${err.message}; ${where}\n`);
  process.exit(shutdown.exitCode() ?? 1);
}
