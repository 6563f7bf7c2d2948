/**
 * Adaptive clipping across rounds (shared/dp/adaptive-clip.ts): which C a round uses and the C
 * the next one will. C is server state, carried in the checkpoint's metadata beside the
 * optimizer state, so a retried attempt or a restarted coordinator uses the same C; the ledger
 * records each completed round's (C, b̄, next C) and `verify` recomputes the chain.
 */
import { decodeCenteredCount, MAX_CLIP, MIN_CLIP, nextClip, unclippedFraction, type DistributedDpConfig } from "../dp/index.ts";
import type { ModularVector } from "../modular/index.ts";
import type { RunSpec } from "./run-spec.ts";

/** What a completed round of an adaptive-clip run records (ledger `privacy.adaptiveClip`). */
export interface AdaptiveClipRecord {
  /** C this round clipped to. */
  clip: number;
  /** b̄: the noised fraction of survivors whose update was not clipped. */
  unclippedFraction: number;
  /** C the next round clips to: clip · exp(−η (b̄ − γ)). */
  nextClip: number;
}

/** The round's C: the spec's clip until a round has moved it (checkpoint metadata `clip`). */
export function roundClip(spec: Pick<RunSpec, "clip" | "adaptiveClip">, serverState: unknown): number {
  if (!spec.adaptiveClip) return spec.clip;
  const c = (serverState as { clip?: unknown } | null | undefined)?.clip;
  return typeof c === "number" && Number.isFinite(c) && c >= MIN_CLIP && c <= MAX_CLIP ? c : spec.clip;
}

/** After decoding a round's sum: b̄ and the next C (undefined when the run clips at a fixed C). */
export function adaptClip(spec: Pick<RunSpec, "adaptiveClip">, dp: DistributedDpConfig, sum: ModularVector, survivors: number): AdaptiveClipRecord | undefined {
  if (!spec.adaptiveClip) return undefined;
  const fraction = unclippedFraction(decodeCenteredCount(sum, dp), survivors);
  return { clip: dp.clip, unclippedFraction: fraction, nextClip: nextClip(dp.clip, fraction, spec.adaptiveClip) };
}
