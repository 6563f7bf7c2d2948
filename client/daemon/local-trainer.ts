/**
 * Local training for rounds: the person's stored actions become training windows (sessions cut
 * at idle gaps, as in the simulation) and a low-priority worker thread trains the round's
 * model on them. Only the model delta comes back; the actions never leave this module.
 */
import { Worker } from "node:worker_threads";
import type { Examples } from "../../shared/model/index.ts";
import { lastExamples, localSplit, type EvalCounts } from "../../shared/eval/index.ts";
import { localTrainOptions, type RoundConfig } from "../../shared/run/index.ts";
import type { LocalUpdate } from "../participant/round-participant.ts";
import type { ActionRecord } from "../store/action-store.ts";
import type { TrainJob, TrainReply } from "./train-worker.ts";

/** Newest actions used for one round: bounds memory and keeps training time per round flat. */
const MAX_ACTIONS_PER_ROUND = 50_000;

export class NotEnoughDataError extends Error {
  override name = "NotEnoughDataError";
}

/**
 * Turns stored actions (time-ordered or not) into the model's windows: training windows, and —
 * when the run evaluates — the held-out windows of the most recent `heldOutFraction` of the
 * store, which training never sees (shared/eval/held-out.ts).
 */
export function splitActions(records: readonly ActionRecord[], cfg: RoundConfig): { train: Examples; heldOut: Examples } {
  const sorted = [...records].sort((a, b) => a.at - b.at).slice(-MAX_ACTIONS_PER_ROUND);
  return localSplit({ userId: "self", source: "local-store", events: sorted.map((r) => ({ time: Math.floor(r.at / 1000), token: r.token })) }, cfg.model, cfg.training.heldOutFraction);
}

/** The training windows only (the held-out slice excluded when the run evaluates). */
export function examplesFromActions(records: readonly ActionRecord[], cfg: RoundConfig): Examples {
  return splitActions(records, cfg).train;
}

export class LocalTrainer {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: TrainReply) => void; reject: (e: Error) => void }>();
  backend: string | undefined;

  constructor(private readonly minExamples = 16) {}

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL("./train-worker-entry.mjs", import.meta.url));
    w.on("message", (r: TrainReply) => {
      const p = this.pending.get(r.id);
      this.pending.delete(r.id);
      p?.resolve(r);
    });
    const failAll = (err: Error): void => {
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      this.worker = undefined;
    };
    w.on("error", failAll);
    w.on("exit", (code) => failAll(new Error(`training thread exited (code ${code})`)));
    w.unref();
    this.worker = w;
    return w;
  }

  private run(job: Omit<TrainJob, "id">): Promise<TrainReply> {
    const id = this.nextId++;
    return new Promise<TrainReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ensureWorker().postMessage({ ...job, id });
    });
  }

  async train(cfg: RoundConfig, weights: Float32Array, records: readonly ActionRecord[]): Promise<LocalUpdate> {
    const examples = examplesFromActions(records, cfg);
    if (examples.count < this.minExamples) throw new NotEnoughDataError(`only ${examples.count} training windows stored (need ${this.minExamples})`);
    const reply = await this.run({ spec: cfg.model, weights, examples, options: localTrainOptions(cfg) });
    if (!reply.ok) throw new Error(`local training failed: ${reply.message}`);
    if (reply.counts) throw new Error("training thread answered a training job with counts");
    this.backend = reply.backend;
    return { delta: reply.delta, loss: reply.loss, examples: examples.count };
  }

  /** Evaluates the global model on the held-out slice (at most the round's bound, newest first kept). */
  async evaluate(cfg: RoundConfig, weights: Float32Array, records: readonly ActionRecord[]): Promise<EvalCounts> {
    if (!cfg.evaluation) throw new Error("not an evaluation round");
    const heldOut = lastExamples(splitActions(records, cfg).heldOut, cfg.evaluation.maxExamplesPerDevice);
    const reply = await this.run({ spec: cfg.model, weights, examples: heldOut, options: localTrainOptions(cfg), evaluate: true });
    if (!reply.ok) throw new Error(`local evaluation failed: ${reply.message}`);
    if (!reply.counts) throw new Error("training thread answered an evaluation job without counts");
    return reply.counts;
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}
