/**
 * `tacit model pretrain`: the ML team's public pretraining. Trains the run's model centrally on
 * public per-user files and writes a checkpoint, then prints the run-spec `initialModel` block
 * that names it (hash-pinned, `source: "public"`), ready to paste into a spec for `run launch`.
 */
import type { Command } from "commander";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { CliError, parseNumber } from "../errors.ts";
import {
  bucketVocabulary, contextIds, DEFAULT_MODEL_SPEC, DEFAULT_PRETRAIN, exportRelease, exportReleasedMixture, labelPredictions, loadCheckpoint, mixWithAnchor, predictDistribution, pretrainToCheckpoint, PretrainError,
  readExportedModel, topBuckets, validateModelSpec, type ModelSpec, type Prediction,
} from "../../shared/model/index.ts";
import { findRelease, modelReleases, type ModelRelease } from "../../shared/ledger/model-releases.ts";
import { coordinatorPaths, DEFAULT_COORDINATOR_STATE_DIR } from "../../coordinator/state/state-dir.ts";
import { CheckpointStore } from "../../coordinator/runs/checkpoint-store.ts";
import { RoundDecisions } from "../../coordinator/runs/round-decisions.ts";
import { defaultStoreUrl, openDurableStore } from "../../coordinator/store/open-store.ts";
import { readLedgerText } from "../../coordinator/ledger/segment-writer.ts";
import { ActionStore } from "../../client/store/action-store.ts";
import { clientPaths } from "../../client/state/client-dirs.ts";
import { tokensByFrequency } from "../../client/suggest/suggest.ts";
import { formatPredictions } from "../format-predictions.ts";

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

  model
    .command("export")
    .description("write a released global model as a TensorFlow.js LayersModel (model.json + weights.bin) and tacit-model.json")
    .requiredOption("--run <id>", "run id")
    .option("--round <r>", "the model after this round (default: the run's last completed round)")
    .requiredOption("--out <dir>", "directory to write the export into")
    .option("--release-mix <w>", "export the mixture (1 − W)·the run's public initial model + W·this model (its public half goes to OUT/public; tacit model predict applies it)")
    .option("--state-dir <dir>", "the coordinator's state directory", DEFAULT_COORDINATOR_STATE_DIR)
    .option("--json", "print JSON")
    .action(async (o: ExportOptions & { json?: boolean }) => {
      const result = await exportFromStateDir(o);
      const mixed = result.mixture ? `, mixed at weight ${result.mixture.federatedWeight} with the run's public initial model ${result.mixture.publicModelHash}` : "";
      process.stdout.write(o.json ? JSON.stringify(result, null, 2) + "\n" : `exported the model after round ${result.round} of run ${result.runId} (model hash ${result.modelHash}, ledger entry ${result.ledgerSeq})${mixed} to ${result.out}\n`);
    });

  model
    .command("predict")
    .description("the most likely next actions after a context, from an exported model")
    .requiredOption("--model <dir>", "an export (tacit model export / tacit simulate --out …/model)")
    .requiredOption("--context <tokens>", "the recent actions of the session, oldest first, separated by spaces")
    .option("--top <k>", "how many predictions", "5")
    .option("--vocab <file>", "tokens, one per line, most frequent first: predictions are shown as these tokens")
    .option("--client-state-dir <dir>", "on a laptop: map buckets back through this device's own stored actions instead")
    .option("--json", "print {\"predictions\": [{\"token\"|\"bucket\": …, \"p\": …}]}")
    .action(async (o: PredictOptions & { json?: boolean }) => {
      const { predictions, context, modelHash } = predictFromExport(o);
      process.stdout.write(o.json ? JSON.stringify({ predictions }) + "\n" : `next actions after ${context.length ? `"${context.join(" ")}"` : "the start of a session"} (model ${modelHash.slice(0, 12)}):\n${formatPredictions(predictions)}\n`);
    });
}

/** Options of `tacit model export`, as commander parses them. */
export interface ExportOptions { run: string; round?: string; out: string; stateDir: string; releaseMix?: string }

/** `tacit model export` without a process: throws an expected error (CliError and friends) on bad input. */
export async function exportFromStateDir(o: ExportOptions): Promise<{ out: string; runId: string; round: number; modelHash: string; ledgerSeq: number; mixture?: { federatedWeight: number; publicModelHash: string } }> {
  const round = o.round === undefined ? undefined : parseNumber("--round", o.round, { min: -1, integer: true });
  const federatedWeight = o.releaseMix === undefined ? undefined : parseNumber("--release-mix", o.releaseMix, { min: 1e-6, max: 1 });
  const paths = coordinatorPaths(o.stateDir);
  // The coordinator's durable store holds the ledger segments and the checkpoints.
  const store = openDurableStore(process.env.TACIT_STORE_URL ?? defaultStoreUrl(paths.root));
  const ledger = await readLedgerText(store);
  if (ledger === "") throw new CliError(`no ledger in ${store.url}: is --state-dir ${o.stateDir} the coordinator's state directory?`);
  // Only a model the ledger records as released is exported, named by the ledger's hash.
  const releases = modelReleases(ledger);
  const release = findRelease(releases, o.run, round);
  // A directory store holds the checkpoints; from S3 they are fetched into the state dir's cache.
  const decisions = new RoundDecisions(store);
  const checkpoints = store.localRoot
    ? new CheckpointStore(join(store.localRoot, "checkpoints"), decisions, "tacit-model-export")
    : new CheckpointStore(join(paths.root, "checkpoint-cache"), decisions, "tacit-model-export", store);
  const released = async (r: ModelRelease) => {
    const commit = r.round < 0 ? undefined : await checkpoints.committed(r.runId, r.round);
    const missing = new CliError(`no checkpoint for ${r.round < 0 ? "the initial model" : `round ${r.round}`} of run ${r.runId} in ${store.url}`);
    const name = commit ? commit.checkpoint.dir : checkpoints.dirFor(r.runId, r.round);
    const dir = await checkpoints.localDir(r.runId, name).catch(() => Promise.reject(missing));
    if (!existsSync(dir)) throw missing;
    return { release: r, checkpoint: { ...(await loadCheckpoint(dir)), path: dir } };
  };
  const federated = await released(release);
  const done = { out: resolve(o.out), runId: release.runId, round: release.round, ledgerSeq: release.seq };
  if (federatedWeight === undefined || federatedWeight === 1) {
    const { modelHash } = await exportRelease(o.out, release, federated.checkpoint, "coordinator-run");
    return { ...done, modelHash };
  }
  // The public half is the run's own initial model, as its launch entry pins it.
  const initial = releases.find((r) => r.runId === release.runId && r.round === -1);
  if (!initial?.public) throw new CliError(`--release-mix: run ${release.runId} started from a random initialisation; there is no public model to mix with`);
  const { modelHash, publicModelHash } = await exportReleasedMixture(o.out, federated, await released(initial), federatedWeight, "coordinator-run");
  return { ...done, modelHash, mixture: { federatedWeight, publicModelHash } };
}

/** Options of `tacit model predict`, as commander parses them. */
export interface PredictOptions { model: string; context: string; top: string; vocab?: string; clientStateDir?: string }

/** `tacit model predict` without a process. */
export function predictFromExport(o: PredictOptions): { predictions: Prediction[]; context: string[]; modelHash: string } {
  const top = parseNumber("--top", o.top, { min: 1, max: 1000, integer: true });
  if (o.vocab && o.clientStateDir) throw new CliError("give either --vocab or --client-state-dir, not both");
  const m = readExportedModel(o.model);
  const context = o.context.split(/\s+/).filter((t) => t.length > 0);
  // The global model carries no tokens: the vocabulary is the caller's (or this laptop's own).
  let tokens: string[] | undefined;
  if (o.vocab) {
    try {
      tokens = readFileSync(o.vocab, "utf8").split("\n").map((l) => l.trim()).filter((l) => l.length > 0);
    } catch {
      throw new CliError(`cannot read --vocab ${o.vocab}`);
    }
  } else if (o.clientStateDir) {
    const store = clientPaths(o.clientStateDir).store;
    if (!existsSync(store)) throw new CliError(`--client-state-dir ${o.clientStateDir} has no action store`);
    const s = ActionStore.open(store);
    tokens = tokensByFrequency(s.read().records);
    s.close();
  }
  const ids = contextIds(context, m.spec);
  const probs = predictDistribution(m.spec, m.weights, ids);
  // A mixture export predicts with (1 − w)·public + w·federated, as the run released it.
  if (m.mixture) mixWithAnchor(probs, predictDistribution(m.spec, m.mixture.publicModel.weights, ids), m.mixture.federatedWeight);
  const predictions = labelPredictions(topBuckets(probs, top), tokens ? bucketVocabulary(tokens, m.spec) : undefined);
  return { predictions, context, modelHash: m.modelHash };
}
