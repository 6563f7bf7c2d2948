/** Protocol messages (byte arrays, ready for protobuf `bytes` fields). */
import type { KeyObject } from "node:crypto";
import type { SurvivorSignature } from "./consistency.ts";

export interface SecAggConfig {
  runId: string;
  round: number;
  /** Attempt of the round (bound into key derivation and the consistency signatures). */
  attempt?: number;
  bits: number;
  vectorLength: number;
  threshold: number;
  /** Neighbours per device; ≥ n − 1 means the full graph. */
  degree: number;
  /** Public 32-byte seed of this round (neighbour graph). */
  roundSeed: Uint8Array;
  /** The round releases a sum only over at least this many inputs (the DP noise is sized for it). */
  minSurvivors?: number;
}

export interface AdvertisedKeys {
  index: number;
  cPk: Uint8Array;
  sPk: Uint8Array;
  /** SHA-256 commitment to the self-mask seed b (prg.ts `selfMaskCommitment`), 32 bytes. */
  selfMaskCommitment: Uint8Array;
  signature: Uint8Array;
}

export type RosterEntry = AdvertisedKeys & { identityPublicKey: KeyObject | Uint8Array };

export interface EncryptedShare {
  from: number;
  to: number;
  ciphertext: Uint8Array;
}

export interface RevealedShare {
  owner: number;
  share: Uint8Array;
}

export interface UnmaskShares {
  from: number;
  selfMaskShares: RevealedShare[];
  secretKeyShares: RevealedShare[];
}

export interface UnmaskRequest {
  survivors: number[];
  dropouts: number[];
  /** ConsistencyCheck signatures over the survivor set (consistency.ts). */
  signatures?: SurvivorSignature[];
}

/**
 * What a device signs when it advertises its round keys: c_pk, s_pk and its commitment to the
 * self-mask seed b. The round seed is fresh for every attempt, so keys advertised for an aborted
 * attempt cannot be replayed into its re-run.
 */
export function advertisePayload(cfg: { runId: string; round: number; roundSeed: Uint8Array }, index: number, cPk: Uint8Array, sPk: Uint8Array, selfMaskCommitment: Uint8Array): Buffer {
  const head = `tacit-advertise-v3|${cfg.runId}|${cfg.round}|${Buffer.from(cfg.roundSeed).toString("hex")}|${index}|`;
  return Buffer.concat([Buffer.from(head), Buffer.from(cPk), Buffer.from(sPk), Buffer.from(selfMaskCommitment)]);
}

/** Advertised keys as the protobuf `AdvertisedKeys` message carries them (roster and AdvertiseKeys). */
export function wireAdvertisedKeys(k: AdvertisedKeys): { index: number; cPk: Buffer; sPk: Buffer; selfMaskCommitment: Buffer; signature: Buffer } {
  return { index: k.index, cPk: Buffer.from(k.cPk), sPk: Buffer.from(k.sPk), selfMaskCommitment: Buffer.from(k.selfMaskCommitment), signature: Buffer.from(k.signature) };
}
