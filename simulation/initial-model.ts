/**
 * The simulation's starting point and the on-device statistics it evaluates with:
 * - `--pretrain DIR` trains the initial model centrally on DIR's public files (or reuses the
 *   cached checkpoint of the same data, spec and recipe) and names it in the run spec, so the
 *   coordinator starts from it and the ledger records its hash as public, at no privacy cost;
 *   otherwise the coordinator's seeded random initialisation.
 * - every eval user's own bigram counts come from that device's own training data only.
 */
import { resolve } from "node:path";
import { buildExamples, initialWeights, localCounts, pretrainCached, weightsHash, type InitialModelRef, type ModelSpec } from "../shared/model/index.ts";
import type { UserSequence } from "../shared/data/index.ts";
import type { EvalSet } from "./evaluation.ts";
import type { InitialModelInfo } from "./metrics-types.ts";

export interface InitialModel {
  weights: Float32Array;
  ref?: InitialModelRef;
  info: InitialModelInfo;
}

export class InitialModelSetupError extends Error {
  override name = "InitialModelSetupError";
}

export async function prepareInitialModel(o: { pretrain?: string; dataset: string; evalDir?: string; seed: number; quiet?: boolean }, spec: ModelSpec): Promise<InitialModel> {
  if (!o.pretrain) {
    const weights = initialWeights(spec, o.seed);
    return { weights, info: { source: "random", sha256: weightsHash(weights), privacyCost: "none" } };
  }
  // Pretraining on the federation's own files (or the eval files) would train on private or held-out data.
  for (const [flag, dir] of [["--dataset", o.dataset], ["--eval-dir", o.evalDir]] as const) {
    if (dir && resolve(dir) === resolve(o.pretrain)) throw new InitialModelSetupError(`--pretrain ${o.pretrain} is the ${flag} directory: pretraining must use separate public data`);
  }
  const t0 = Date.now();
  const r = await pretrainCached(o.pretrain, spec, undefined, (e, loss) => {
    if (!o.quiet) process.stderr.write(`pretraining on ${o.pretrain}: epoch ${e + 1}, loss ${loss.toFixed(4)}\n`);
  });
  return {
    weights: r.weights,
    ref: { checkpoint: r.checkpoint, sha256: r.sha256, source: "public", dataset: resolve(o.pretrain) },
    info: { source: "public", sha256: r.sha256, dataset: resolve(o.pretrain), checkpoint: r.checkpoint, cached: r.cached, pretrainSeconds: (Date.now() - t0) / 1000, privacyCost: "none" },
  };
}

/** Gives every eval set its device's own context counts, computed from that device's training sequence. */
export function withLocalStatistics<P extends { train: UserSequence[]; evalSets: EvalSet[] }>(data: P, spec: ModelSpec): P {
  const byId = new Map(data.train.map((u) => [u.userId, u]));
  return {
    ...data,
    evalSets: data.evalSets.map((s) => {
      const own = byId.get(s.userId);
      return own ? { ...s, local: localCounts(buildExamples(own, spec), spec.window) } : s;
    }),
  };
}
