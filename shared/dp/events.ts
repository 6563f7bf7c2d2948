/**
 * Privacy spending as immutable events, shaped like dp_accounting's `dp_event.py`. The ledger
 * stores these; every ε is recomputed from them. The meaning of an event kind never changes
 * once shipped.
 */
import { z } from "zod";

export interface DistributedDiscreteGaussianEvent {
  kind: "distributedDiscreteGaussian";
  /** L2 sensitivity of one device's scaled, rotated, rounded contribution (integer domain). */
  l2Sensitivity: number;
  /** L1 sensitivity bound in the integer domain. */
  l1Sensitivity: number;
  /** Variance of each device's discrete Gaussian noise (integer domain). */
  perDeviceVariance: number;
  /** Number of honest devices whose noise is counted (the run's minSurvivors). */
  devices: number;
  /** Dimension of the noised vector (after padding for the rotation). */
  dimension: number;
}

export type DpEvent =
  | { kind: "noOp" }
  | { kind: "nonPrivate" }
  | { kind: "gaussian"; noiseMultiplier: number }
  | { kind: "poissonSampled"; samplingProbability: number; event: DpEvent }
  | { kind: "sampledWithoutReplacement"; sourceDatasetSize: number; sampleSize: number; event: DpEvent }
  | { kind: "selfComposed"; event: DpEvent; count: number }
  | { kind: "composed"; events: DpEvent[] }
  | DistributedDiscreteGaussianEvent;

export const dpEventSchema: z.ZodType<DpEvent> = z.lazy(() =>
  z.union([
    z.object({ kind: z.literal("noOp") }).strict(),
    z.object({ kind: z.literal("nonPrivate") }).strict(),
    z.object({ kind: z.literal("gaussian"), noiseMultiplier: z.number().min(0) }).strict(),
    z.object({ kind: z.literal("poissonSampled"), samplingProbability: z.number().min(0).max(1), event: dpEventSchema }).strict(),
    z.object({ kind: z.literal("sampledWithoutReplacement"), sourceDatasetSize: z.number().int().min(1), sampleSize: z.number().int().min(0), event: dpEventSchema }).strict(),
    z.object({ kind: z.literal("selfComposed"), event: dpEventSchema, count: z.number().int().min(0) }).strict(),
    z.object({ kind: z.literal("composed"), events: z.array(dpEventSchema) }).strict(),
    z
      .object({
        kind: z.literal("distributedDiscreteGaussian"),
        l2Sensitivity: z.number().positive(),
        l1Sensitivity: z.number().positive(),
        perDeviceVariance: z.number().min(0),
        devices: z.number().int().min(1),
        dimension: z.number().int().min(1),
      })
      .strict(),
  ]),
);

export class UnsupportedEventError extends Error {
  override name = "UnsupportedEventError";
}

export const KNOWN_EVENT_KINDS = ["noOp", "nonPrivate", "gaussian", "poissonSampled", "sampledWithoutReplacement", "selfComposed", "composed", "distributedDiscreteGaussian"] as const;

export function parseDpEvent(x: unknown): DpEvent {
  if (typeof x === "object" && x !== null && "kind" in x && !KNOWN_EVENT_KINDS.includes((x as { kind: string }).kind as (typeof KNOWN_EVENT_KINDS)[number])) {
    throw new UnsupportedEventError(`unknown mechanism '${String((x as { kind: unknown }).kind)}'`);
  }
  const r = dpEventSchema.safeParse(x);
  if (!r.success) throw new UnsupportedEventError(`malformed DP event: ${r.error.issues[0]?.path.join(".")}: ${r.error.issues[0]?.message}`);
  return r.data;
}
