/** The dp_accounting reference values in test/fixtures (made by generate-vectors.py), typed. */
import { readFileSync } from "node:fs";

export interface ReferenceVector {
  z: number;
  q: number;
  steps: number;
  delta: number;
  sampling: "poisson" | "fixed";
  population?: number;
  rdp: number;
  pld?: number;
}

export const REFERENCE_VECTORS_FILE = "test/fixtures/dp-accounting-vectors.json";

export function readReferenceVectors(file = REFERENCE_VECTORS_FILE): ReferenceVector[] {
  return (JSON.parse(readFileSync(file, "utf8")) as { vectors: ReferenceVector[] }).vectors;
}
