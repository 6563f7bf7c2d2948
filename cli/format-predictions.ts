/** How predictions read on a terminal: rank, the token (or its bucket), probability. */
import type { Prediction } from "../shared/model/index.ts";

export function formatPredictions(preds: readonly Prediction[]): string {
  return preds.map((p, i) => `  ${String(i + 1).padStart(2)}. ${"token" in p ? p.token : `bucket ${p.bucket} (no token in the vocabulary)`}  ${(100 * p.p).toFixed(1)}%`).join("\n");
}
