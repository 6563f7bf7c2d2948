/**
 * A device's contribution to an evaluation round: its held-out counts checked against the
 * round's signed bounds (a device never sends counts it could not have — eval-counts.ts
 * refuses them) and its share of the round's noise, as the vector secure aggregation masks.
 */
import { encodeEvalCounts, noiseEvalVector, type EvalCounts } from "../../shared/eval/index.ts";
import type { ModularVector } from "../../shared/modular/index.ts";
import { evalDpFor, type RoundConfig } from "../../shared/run/index.ts";

export function evalInput(cfg: RoundConfig, counts: EvalCounts): ModularVector {
  if (!cfg.evaluation) throw new Error(`round ${cfg.round} is not an evaluation round`);
  return noiseEvalVector(encodeEvalCounts(counts, cfg.evaluation.maxExamplesPerDevice), evalDpFor(cfg));
}
