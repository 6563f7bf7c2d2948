/**
 * Test support: an ActiveRound of `devices` members (ids dev-0…), all surviving, with the signed
 * RoundConfig it was started from and each member's identity key, for tests of the checks a
 * running round makes on the messages it is sent.
 */
import { generateEd25519 } from "../../shared/crypto/index.ts";
import { CohortTree, type RoundConfig } from "../../shared/run/index.ts";
import { ActiveRound } from "../../coordinator/rounds/active-round.ts";
import type * as grpc from "@grpc/grpc-js";
import { toServiceError } from "../../coordinator/server/status-boundary.ts";
import { tinyRunSpec } from "./cluster.ts";

export function activeRoundFixture(o: { devices: number; runId: string; round: number; modelHash: string }) {
  const n = o.devices;
  const spec = tinyRunSpec({ noiseMultiplier: 1, cohortSize: n, minSurvivors: 2, populationSize: n });
  const ids = Array.from({ length: n }, () => generateEd25519());
  const tree = new CohortTree(ids.map((k) => k.publicRaw));
  const config = {
    protocol: "tacit-round-v1",
    runId: o.runId,
    round: o.round,
    attempt: 0,
    modelHash: o.modelHash,
    parameterCount: 100,
    model: spec.model,
    dp: { mechanism: "ddgauss", clip: 5, noiseMultiplier: 1, minSurvivors: 2, expectedSurvivors: n, delta: 1e-6, rotationSeed: Buffer.alloc(32).toString("base64") },
    secagg: { bits: 32, threshold: 2, degree: n - 1, mode: "full", roundSeed: Buffer.alloc(32, 1).toString("base64"), guarantee: "" },
    cohort: tree.commitment,
  } as unknown as RoundConfig;
  const active = new ActiveRound(config, tree, ids.map((_, i) => `dev-${i}`));
  return { config, ids, active };
}

/** The status a thrown refusal becomes at the RPC boundary, and its message. */
export function refusal(f: () => void): { code: grpc.status; details: string } {
  try {
    f();
  } catch (err) {
    const e = toServiceError(err);
    return { code: e.code, details: e.details };
  }
  throw new Error("expected a refusal");
}
