/**
 * The daemon's training thread. It lowers its own scheduling priority first (on Linux
 * setpriority(0) applies to the calling thread only), so local training yields the cores to
 * whatever the person is doing and capture on the main thread is never starved.
 */
import { setPriority } from "node:os";
import { parentPort } from "node:worker_threads";
import { initBackend, Trainer, type Examples, type ModelSpec, type TrainOptions } from "../../shared/model/index.ts";
import { evaluateLocally, type EvalCounts } from "../../shared/eval/index.ts";

/** A training job, or (with `evaluate`) a forward pass over held-out windows that returns counts only. */
export interface TrainJob {
  id: number;
  spec: ModelSpec;
  weights: Float32Array;
  examples: Examples;
  options: TrainOptions;
  evaluate?: boolean;
}

export type TrainReply =
  | { id: number; ok: true; delta: Float32Array; loss: number; backend: string; counts?: undefined }
  | { id: number; ok: true; counts: EvalCounts; backend: string }
  | { id: number; ok: false; message: string };

try {
  setPriority(19);
} catch {
  // Not permitted in some sandboxes; training still works at normal priority.
}

let trainer: Trainer | undefined;
let trainerSpec = "";
let backend: string | undefined;

parentPort!.on("message", (job: TrainJob) => {
  void (async () => {
    try {
      backend ??= await initBackend();
      const key = JSON.stringify(job.spec);
      if (!trainer || trainerSpec !== key) {
        trainer?.dispose();
        trainer = new Trainer(job.spec);
        trainerSpec = key;
      }
      if (job.evaluate) {
        parentPort!.postMessage({ id: job.id, ok: true, counts: evaluateLocally(trainer, job.weights, job.examples), backend } satisfies TrainReply);
        return;
      }
      trainer.setWeights(job.weights);
      const res = await trainer.train(job.examples, job.options);
      const after = trainer.getWeights();
      const delta = new Float32Array(after.length);
      for (let i = 0; i < after.length; i++) delta[i] = after[i]! - job.weights[i]!;
      const reply: TrainReply = { id: job.id, ok: true, delta, loss: res.loss, backend };
      parentPort!.postMessage(reply, [delta.buffer]);
    } catch (err) {
      parentPort!.postMessage({ id: job.id, ok: false, message: (err as Error).message } satisfies TrainReply);
    }
  })();
});
