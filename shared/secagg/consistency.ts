/**
 * The ConsistencyCheck round of Bonawitz et al. (CCS 2017, §4, malicious server): after
 * MaskedInput every survivor signs the survivor set it was shown, and a device reveals unmasking
 * shares only for a request that (a) names exactly the set it signed and (b) carries at least t
 * valid signatures over that same set from devices whose shares it holds. An honest device signs
 * one set per attempt, so a coordinator that shows different sets to different devices splits
 * the honest signers into disjoint groups; together with t > (k + corrupt neighbours)/2
 * (params.ts) no group is large enough to reveal both kinds of share of one device.
 */
import type { KeyObject } from "node:crypto";
import { verifyBytes } from "../crypto/ed25519.ts";

export interface SurvivorSignature {
  index: number;
  signature: Uint8Array;
}

/** What a survivor signs: the attempt (run, round, attempt, round seed) and the sorted set. */
export function consistencyPayload(d: { runId: string; round: number; attempt?: number; roundSeed: Uint8Array }, survivors: readonly number[]): Buffer {
  const sorted = [...survivors].sort((a, b) => a - b);
  return Buffer.from(`tacit-consistency-v1|${d.runId}|${d.round}|${d.attempt ?? 0}|${Buffer.from(d.roundSeed).toString("hex")}|${sorted.join(",")}`);
}

/** True when both lists hold the same indices (order ignored, duplicates count). */
export function sameSet(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  const x = [...a].sort((p, q) => p - q);
  const y = [...b].sort((p, q) => p - q);
  return x.every((v, i) => v === y[i]);
}

/**
 * The number of distinct signers among `allowed` whose signature over `payload` verifies
 * against their identity key. Signatures from anyone else, duplicates and bad signatures count
 * for nothing. Stops counting at `enough` (the count is then `enough`).
 */
export function countValidSigners(payload: Uint8Array, signatures: readonly SurvivorSignature[], allowed: ReadonlySet<number>, identityOf: (index: number) => KeyObject | undefined, enough = Infinity): number {
  const valid = new Set<number>();
  for (const s of signatures) {
    // The caller needs at least `enough`: once that many verified, the rest cannot change its decision.
    if (valid.size >= enough) break;
    if (valid.has(s.index) || !allowed.has(s.index)) continue;
    const key = identityOf(s.index);
    if (key && s.signature.length === 64 && verifyBytes(key, payload, s.signature)) valid.add(s.index);
  }
  return valid.size;
}
