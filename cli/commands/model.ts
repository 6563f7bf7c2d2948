/**
 * `tacit model pretrain`: the ML team's public pretraining. Trains the run's model centrally on
 * public per-user files and writes a checkpoint, then prints the run-spec `initialModel` block
 * that names it (hash-pinned, `source: "public"`), ready to paste into a spec for `run launch`.
 */
import type { Command } from "commander";
import { existsSync, readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { CliError, parseNumber } from "../errors.ts";
import { DEFAULT_MODEL_SPEC, DEFAULT_PRETRAIN, pretrainToCheckpoint, PretrainError, validateModelSpec, type ModelSpec } from "../../shared/model/index.ts";

export function registerModelCommands(program: Command): void {
  const model = program.command("model").description("model tools for the ML team");
  model
    .command("pretrain")
    .description("train the initial model centrally on PUBLIC per-user files (no privacy cost) and write a checkpoint")
    .requiredOption("--dataset <dir>", "directory of public per-user TSV files (<unix seconds>\\t<token>)")
    .requiredOption("--out <dir>", "checkpoint directory to write (model.json + weights.bin)")
    .option("--model-spec <file>", "JSON model spec (default: the default tied model)")
    .option("--epochs <n>", "epochs over the pooled data", String(DEFAULT_PRETRAIN.epochs))
    .option("--batch-size <n>", "batch size", String(DEFAULT_PRETRAIN.batchSize))
    .option("--learning-rate <lr>", "Adam learning rate", String(DEFAULT_PRETRAIN.learningRate))
    .option("--seed <s>", "initialisation and shuffling seed", String(DEFAULT_PRETRAIN.seed))
    .action(async (o: Record<string, string | undefined>) => {
      const dataset = String(o.dataset);
      if (!existsSync(dataset) || !statSync(dataset).isDirectory()) throw new CliError(`--dataset ${dataset}: no such directory`);
      let spec: ModelSpec = DEFAULT_MODEL_SPEC;
      if (o.modelSpec) {
        try {
          spec = validateModelSpec(JSON.parse(readFileSync(o.modelSpec, "utf8")));
        } catch (err) {
          throw new CliError(`--model-spec ${o.modelSpec}: ${(err as Error).message}`);
        }
      }
      const recipe = {
        epochs: parseNumber("--epochs", String(o.epochs), { min: 1, max: 1000, integer: true }),
        batchSize: parseNumber("--batch-size", String(o.batchSize), { min: 1, max: 4096, integer: true }),
        learningRate: parseNumber("--learning-rate", String(o.learningRate), { min: 1e-9, max: 10 }),
        optimizer: "adam" as const,
        seed: parseNumber("--seed", String(o.seed), { min: 0, integer: true }),
      };
      try {
        const r = await pretrainToCheckpoint(dataset, spec, String(o.out), recipe, (e, loss) => process.stderr.write(`epoch ${e + 1}/${recipe.epochs}: loss ${loss.toFixed(4)}\n`));
        process.stderr.write(`checkpoint written to ${r.checkpoint}\n`);
        process.stdout.write(JSON.stringify({ initialModel: { checkpoint: r.checkpoint, sha256: r.sha256, source: "public", dataset: resolve(dataset) }, model: spec }, null, 2) + "\n");
      } catch (err) {
        if (err instanceof PretrainError) throw new CliError(err.message);
        throw err;
      }
    });
}
