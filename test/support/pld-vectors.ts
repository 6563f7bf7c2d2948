/**
 * dp_accounting 0.6 reference records (scripts/dp-reference/generate-vectors.py) as the PLD tests use
 * them, and Tacit's PLD ε for one record through the CLI's own parameter path.
 */
import { readReferenceVectors, type ReferenceVector } from "../../scripts/dp-reference/reference-vectors.ts";
import { epsilonFor } from "../../cli/commands/privacy.ts";

export const vectors = readReferenceVectors();
export const pldVectors = vectors.filter((v): v is ReferenceVector & { pld: number } => typeof v.pld === "number");

export const pldEpsilon = (v: ReferenceVector): number =>
  epsilonFor({ noiseMultiplier: v.z, sampleRate: v.q, steps: v.steps, delta: v.delta, accountant: "pld", sampling: v.sampling, population: v.population ?? 1_000_000 });
