/**
 * The next actions this person is likely to take, computed on the laptop from the device's
 * current model and the person's own recent actions, personalized with the device's own context
 * counts and recent actions (shared/model/personalize.ts) and shown as the person's own tokens (the model only
 * knows hash buckets; the bucket → token map comes from this store). Pure: the caller reads the
 * store and the model, and nothing here writes, logs or sends anything.
 */
import { applyMixture, bucketVocabulary, buildExamples, contextIds, currentSession, DEFAULT_PERSONALIZATION, labelPredictions, localCounts, personalMixture, predictDistribution, topBuckets, validatePersonalization, type PersonalizationConfig, type Prediction } from "../../shared/model/index.ts";
import type { ActionRecord } from "../store/action-store.ts";
import type { DeviceModel } from "./device-model.ts";

/** Newest actions used for the personal statistics (as many as one round trains on). */
const MAX_ACTIONS = 50_000;

export interface Suggestions {
  suggestions: Prediction[];
  /** True when the device's own counts or its recent actions shaped the answer. */
  personalized: boolean;
  /** How many of the current session's actions the model saw (at most its window). */
  contextActions: number;
  model: { runId: string; round: number; modelHash: string };
}

/** Distinct tokens, most frequent first (ties: most recent first), for the bucket → token map. */
export function tokensByFrequency(records: readonly ActionRecord[]): string[] {
  const n = new Map<string, { count: number; last: number }>();
  for (const r of records) {
    const e = n.get(r.token) ?? { count: 0, last: 0 };
    e.count += 1;
    e.last = Math.max(e.last, r.at);
    n.set(r.token, e);
  }
  return [...n.entries()].sort((a, b) => b[1].count - a[1].count || b[1].last - a[1].last).map(([t]) => t);
}

export function suggestNext(model: DeviceModel, records: readonly ActionRecord[], o: { top: number; nowMs: number; personalization?: PersonalizationConfig }): Suggestions {
  const spec = model.spec;
  const personalization = validatePersonalization(o.personalization ?? DEFAULT_PERSONALIZATION);
  const sorted = [...records].sort((a, b) => a.at - b.at).slice(-MAX_ACTIONS);
  const events = sorted.map((r) => ({ time: Math.floor(r.at / 1000), token: r.token }));
  const session = currentSession(events, Math.floor(o.nowMs / 1000), spec);
  const ids = contextIds(session, spec);
  const probs = predictDistribution(spec, model.weights, ids);
  const counts = localCounts(buildExamples({ userId: "self", source: "local-store", events }, spec), spec.window, personalization.maxOrder);
  const mixture = personalMixture(counts, ids, 0, personalization);
  applyMixture(probs, mixture);
  const vocab = bucketVocabulary(tokensByFrequency(sorted), spec);
  return {
    suggestions: labelPredictions(topBuckets(probs, o.top), vocab),
    personalized: mixture.add.size > 0,
    contextActions: Math.min(session.length, spec.window),
    model: { runId: model.runId, round: model.round, modelHash: model.modelHash },
  };
}
