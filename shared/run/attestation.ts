/**
 * A device's attestation of one round: what it added (the DP event of its noise share) and the
 * parameters it added it under. The device builds it from the signed RoundConfig; the
 * coordinator refuses one that does not describe its round, so one lying or confused device
 * cannot put a mechanism into the ledger that differs from what everyone else was charged.
 */
import { canonicalJson } from "../crypto/canonical-json.ts";
import type { DpEvent } from "../dp/index.ts";
import type { RoundConfig } from "./round-config.ts";

export interface AttestationBody {
  type: "tacit-attestation-v1";
  deviceId: string;
  runId: string;
  round: number;
  attempt: number;
  modelHash: string;
  mechanism: string;
  clip: number;
  noiseMultiplier: number;
  minSurvivors: number;
  event: DpEvent;
}

export function attestationBody(cfg: RoundConfig, deviceId: string, event: DpEvent): AttestationBody {
  return {
    type: "tacit-attestation-v1",
    deviceId,
    runId: cfg.runId,
    round: cfg.round,
    attempt: cfg.attempt,
    modelHash: cfg.modelHash,
    mechanism: cfg.dp.mechanism,
    clip: cfg.dp.clip,
    noiseMultiplier: cfg.dp.noiseMultiplier,
    minSurvivors: cfg.dp.minSurvivors,
    event,
  };
}

function same(a: unknown, b: unknown): boolean {
  try {
    return canonicalJson(a) === canonicalJson(b);
  } catch {
    return false; // a missing or non-finite field never matches
  }
}

/** Every field of `body` that differs from what `deviceId` should attest for this round. */
export function attestationMismatches(body: unknown, cfg: RoundConfig, deviceId: string, event: DpEvent): string[] {
  if (typeof body !== "object" || body === null) return ["the attestation is not an object"];
  const want = attestationBody(cfg, deviceId, event) as unknown as Record<string, unknown>;
  const got = body as Record<string, unknown>;
  return Object.keys(want)
    .filter((k) => !same(got[k], want[k]))
    .map((k) => `${k} is ${JSON.stringify(got[k])?.slice(0, 120)}, the round's is ${JSON.stringify(want[k])?.slice(0, 120)}`);
}
