/**
 * The coordinator-signed description of one round, sent with every invitation. Devices verify
 * the signature and check every field against their own limits (the device guard) before they
 * spend any privacy budget on it.
 */
import { z } from "zod";
import type { KeyObject } from "node:crypto";
import { canonicalJson } from "../crypto/canonical-json.ts";
import { signBytes, verifyBytes } from "../crypto/ed25519.ts";
import { modelSpecSchema, SIGNAL_KINDS } from "./run-spec.ts";
import { MAX_BITS } from "../dp/distributed-dp.ts";

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const b64 = z.string().regex(BASE64, "base64");

export const roundConfigSchema = z
  .object({
    /** tacit-eval-v1: a federated evaluation round (`evaluation` present), no model update. */
    protocol: z.enum(["tacit-round-v1", "tacit-eval-v1"]),
    runId: z.string().min(1).max(128),
    round: z.number().int().min(0),
    attempt: z.number().int().min(0),
    modelHash: z.string().regex(/^[0-9a-f]{64}$/),
    parameterCount: z.number().int().min(1).max(50_000_000),
    model: modelSpecSchema,
    training: z
      .object({
        localEpochs: z.number().int().min(1).max(100),
        maxLocalSteps: z.number().int().min(1),
        batchSize: z.number().int().min(1).max(4096),
        learningRate: z.number().positive().max(100),
        optimizer: z.enum(["sgd", "adam"]),
        seed: z.number().int().min(0),
        /** The most recent fraction of the store held out for evaluation: never trained on. */
        heldOutFraction: z.number().min(0.01).max(0.5).optional(),
      })
      .strict(),
    dp: z
      .object({
        mechanism: z.enum(["ddgauss", "skellam"]),
        clip: z.number().positive(),
        noiseMultiplier: z.number().min(0),
        minSurvivors: z.number().int().min(1),
        expectedSurvivors: z.number().int().min(1),
        /** Survivors assumed to collude with the coordinator: σ² is sized for the others alone. */
        colluders: z.number().int().min(0),
        delta: z.number().gt(0).lt(1),
        rotationSeed: b64,
        /**
         * Adaptive clipping (shared/dp/adaptive-clip.ts): `clip` is this round's C, and every
         * device adds its clip bit to the vector with count noise σ_b; the device computes the
         * combined event itself, so its guard judges what it really spends.
         */
        adaptiveClip: z.object({ targetQuantile: z.number().gt(0).lt(1), learningRate: z.number().gt(0).max(10), countStddev: z.number().positive().max(1e6) }).strict().optional(),
      })
      .strict(),
    secagg: z
      .object({
        bits: z.number().int().min(32).max(MAX_BITS),
        threshold: z.number().int().min(1),
        degree: z.number().int().min(1),
        mode: z.enum(["full", "secagg+"]),
        roundSeed: b64,
        guarantee: z.string(),
      })
      .strict(),
    signals: z.array(z.enum(SIGNAL_KINDS)),
    /**
     * The cohort as a commitment (cohort-commitment.ts): its size and the Merkle tree head over
     * each member's index and identity key. Peers are shown only what the protocol needs — no
     * device id (finding L1), and only the keys of their own neighbours, each with its proof.
     */
    cohort: z.object({ size: z.number().int().min(1).max(1_000_000), root: z.string().regex(/^[0-9a-f]{64}$/) }).strict(),
    /** Population size behind the sampling claim (population ε). */
    populationSize: z.number().int().min(1),
    deadlines: z
      .object({ advertise: z.number().int(), share: z.number().int(), maskedInput: z.number().int(), unmask: z.number().int() })
      .strict(),
    issuedAt: z.number().int(),
    /** Present exactly in evaluation rounds: which training round's model, and the count bounds. */
    evaluation: z
      .object({
        afterRound: z.number().int().min(0),
        maxExamplesPerDevice: z.number().int().min(1).max(100_000),
        noiseMultiplier: z.number().min(0).max(1000),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((c) => (c.protocol === "tacit-eval-v1") === (c.evaluation !== undefined), { message: "evaluation is present exactly in tacit-eval-v1 rounds", path: ["evaluation"] })
  .refine((c) => c.evaluation === undefined || c.training.heldOutFraction !== undefined, { message: "an evaluation round names the held-out fraction", path: ["training", "heldOutFraction"] });

export type RoundConfig = z.infer<typeof roundConfigSchema>;

export class RoundConfigError extends Error {
  override name = "RoundConfigError";
}

export function signRoundConfig(cfg: RoundConfig, coordinatorKey: KeyObject): { json: string; signature: Uint8Array } {
  const json = canonicalJson(cfg);
  return { json, signature: signBytes(coordinatorKey, json) };
}

/** Verifies the coordinator's signature, then the schema. Throws RoundConfigError naming the fault. */
export function openRoundConfig(json: string, signature: Uint8Array, coordinatorPublicKey: KeyObject): RoundConfig {
  if (!verifyBytes(coordinatorPublicKey, json, signature)) {
    throw new RoundConfigError("round config signature does not verify against the coordinator key");
  }
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new RoundConfigError("round config is not JSON");
  }
  const parsed = roundConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new RoundConfigError(`round config invalid: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  }
  return parsed.data;
}

/** The local-training options a device uses for this round (the model's TrainOptions shape). */
export function localTrainOptions(cfg: Pick<RoundConfig, "training">): { epochs: number; maxSteps: number; batchSize: number; learningRate: number; optimizer: "sgd" | "adam"; seed: number } {
  const t = cfg.training;
  return { epochs: t.localEpochs, maxSteps: t.maxLocalSteps, batchSize: t.batchSize, learningRate: t.learningRate, optimizer: t.optimizer, seed: t.seed };
}
