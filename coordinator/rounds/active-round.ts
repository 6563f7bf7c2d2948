/**
 * In-memory state of the one round a run is executing: the signed config, the SecAgg server
 * (which holds only public keys, ciphertexts, masked inputs and revealed shares — never one
 * device's update), and the gate of the current phase. RPC handlers route device messages
 * here; every message is checked against the phase and the cohort before use.
 */
import type { KeyObject } from "node:crypto";
import { SecAggServer, type AdvertisedKeys, type EncryptedShare, type UnmaskShares } from "../../shared/secagg/index.ts";
import type { ModularVector } from "../../shared/modular/index.ts";
import { aggregationLength, attestationMismatches, roundDpEvent, type CohortTree, type RoundConfig } from "../../shared/run/index.ts";
import type { DpEvent } from "../../shared/dp/index.ts";
import { PhaseGate } from "./phase-gate.ts";
import { RpcError, failedPrecondition, denied } from "../server/rpc-error.ts";
import * as grpc from "@grpc/grpc-js";
import { publicKeyFromRaw, verifyBytes } from "../../shared/crypto/index.ts";

export type Phase = "advertise" | "share" | "masked-input" | "consistency" | "unmask" | "finished";

export interface Attestation {
  deviceId: string;
  identityPublicKey: string;
  body: string;
  signature: Uint8Array;
}

export class ActiveRound {
  phase: Phase = "advertise";
  gate: PhaseGate | undefined;
  readonly indexByDevice = new Map<string, number>();
  readonly deviceByIndex = new Map<number, string>();
  readonly declines = new Map<number, string>();
  readonly attestations = new Map<number, Attestation>();
  private readonly identityKeys = new Map<number, KeyObject>();
  readonly answered: Record<Exclude<Phase, "finished">, Set<number>> = {
    advertise: new Set(),
    share: new Set(),
    "masked-input": new Set(),
    consistency: new Set(),
    unmask: new Set(),
  };
  readonly secagg: SecAggServer;
  private expectedEvent: DpEvent | undefined;

  /**
   * `deviceIds[i]` is the device at cohort index i: known to the coordinator alone (the config
   * names no device, only the commitment to `cohort`'s identity keys).
   */
  constructor(
    readonly config: RoundConfig,
    readonly cohort: CohortTree,
    deviceIds: readonly string[],
  ) {
    if (deviceIds.length !== cohort.size) throw new Error(`round ${config.runId}/${config.round}: ${deviceIds.length} device ids for a cohort of ${cohort.size}`);
    if (config.cohort.size !== cohort.size || config.cohort.root !== cohort.commitment.root) throw new Error(`round ${config.runId}/${config.round}: the signed config commits to another cohort than the one given`);
    deviceIds.forEach((deviceId, index) => {
      this.indexByDevice.set(deviceId, index);
      this.deviceByIndex.set(index, deviceId);
      this.identityKeys.set(index, publicKeyFromRaw(cohort.identityKeys[index]!));
    });
    this.secagg = new SecAggServer(
      {
        runId: config.runId,
        round: config.round,
        attempt: config.attempt,
        bits: config.secagg.bits,
        vectorLength: aggregationLength(config),
        minSurvivors: config.dp.minSurvivors,
        threshold: config.secagg.threshold,
        degree: config.secagg.degree,
        roundSeed: Buffer.from(config.secagg.roundSeed, "base64"),
      },
      this.cohortIndices(),
      this.identityKeys,
    );
  }

  /** Every cohort index, 0 … n − 1. */
  cohortIndices(): number[] {
    return [...this.deviceByIndex.keys()];
  }

  /** Every cohort member's device id, by index. */
  cohortDevices(): string[] {
    return [...this.deviceByIndex.values()];
  }

  /** What a peer needs to check member `index`'s signatures: its identity key and the proof the signed cohort holds it. */
  memberProof(index: number): { index: number; identityPublicKey: Buffer; path: Buffer[] } {
    return { index, identityPublicKey: Buffer.from(this.cohort.identityKeys[index]!), path: this.cohort.proof(index) };
  }

  get key(): string {
    return `${this.config.runId}/${this.config.round}`;
  }

  /** The cohort index of a calling device, or PERMISSION_DENIED if it is not in this round. */
  memberIndex(deviceId: string): number {
    const idx = this.indexByDevice.get(deviceId);
    if (idx === undefined) throw denied(`device ${deviceId} is not in the cohort of round ${this.key}`);
    return idx;
  }

  private expectPhase(p: Phase, idx: number): void {
    if (this.phase !== p) throw failedPrecondition(`round ${this.key} is in phase ${this.phase}, not ${p}`);
    if (!this.gate?.expects(idx)) {
      throw new RpcError(grpc.status.FAILED_PRECONDITION, `device index ${idx} is not expected in phase ${p} of round ${this.key} (dropped, duplicate, or not a survivor of the previous phase)`);
    }
  }

  decline(deviceId: string, reason: string): void {
    const idx = this.memberIndex(deviceId);
    if (this.phase !== "advertise") throw failedPrecondition(`round ${this.key} is past the invitation (phase ${this.phase})`);
    if (!this.gate?.expects(idx)) throw failedPrecondition(`device index ${idx} already answered the invitation`);
    this.declines.set(idx, reason.slice(0, 200));
    this.gate.settle(idx);
  }

  advertise(deviceId: string, keys: AdvertisedKeys): void {
    const idx = this.memberIndex(deviceId);
    if (keys.index !== idx) throw denied(`advertised keys claim index ${keys.index}, caller is ${idx}`);
    this.expectPhase("advertise", idx);
    this.secagg.receiveKeys(keys);
    this.answered.advertise.add(idx);
    this.gate!.settle(idx);
  }

  shares(deviceId: string, shares: EncryptedShare[]): void {
    const idx = this.memberIndex(deviceId);
    this.expectPhase("share", idx);
    this.secagg.receiveShares(idx, shares);
    this.answered.share.add(idx);
    this.gate!.settle(idx);
  }

  attest(deviceId: string, body: string, signature: Uint8Array): void {
    const idx = this.memberIndex(deviceId);
    if (this.phase !== "masked-input" && this.phase !== "share") throw failedPrecondition(`round ${this.key} does not take attestations in phase ${this.phase}`);
    if (this.attestations.has(idx)) throw new RpcError(grpc.status.ALREADY_EXISTS, `device index ${idx} already attested round ${this.key}`);
    if (!verifyBytes(this.identityKeys.get(idx)!, body, signature)) {
      throw new RpcError(grpc.status.INVALID_ARGUMENT, "attestation signature does not verify against the device identity");
    }
    let parsed: { deviceId?: unknown; runId?: unknown; round?: unknown };
    try {
      parsed = JSON.parse(body) as typeof parsed;
    } catch {
      throw new RpcError(grpc.status.INVALID_ARGUMENT, "attestation body is not JSON");
    }
    if (parsed.deviceId !== deviceId || parsed.runId !== this.config.runId || parsed.round !== this.config.round) {
      throw new RpcError(grpc.status.INVALID_ARGUMENT, "attestation names another device, run or round");
    }
    // The attested mechanism and parameters must be this round's: one lying device must not put
    // a mechanism into the ledger that spoils verification for everyone (it is refused, and
    // without an accepted attestation it cannot send its masked input).
    this.expectedEvent ??= roundDpEvent(this.config);
    const wrong = attestationMismatches(parsed, this.config, deviceId, this.expectedEvent);
    if (wrong.length > 0) throw new RpcError(grpc.status.INVALID_ARGUMENT, `attestation does not match round ${this.key}: ${wrong.join("; ")}`);
    this.attestations.set(idx, { deviceId, identityPublicKey: Buffer.from(this.cohort.identityKeys[idx]!).toString("base64"), body, signature });
  }

  maskedInput(deviceId: string, y: ModularVector): void {
    const idx = this.memberIndex(deviceId);
    this.expectPhase("masked-input", idx);
    // Every input summed has an accepted attestation, so the ledger holds one per survivor.
    if (!this.attestations.has(idx)) throw failedPrecondition(`device index ${idx} sent its masked input before an accepted attestation of round ${this.key}`);
    this.secagg.receiveMaskedInput(idx, y);
    this.answered["masked-input"].add(idx);
    this.gate!.settle(idx);
  }

  /** ConsistencyCheck: the device's signature over the survivor set it was shown. */
  signSurvivors(deviceId: string, signature: Uint8Array): void {
    const idx = this.memberIndex(deviceId);
    this.expectPhase("consistency", idx);
    this.secagg.receiveConsistency({ index: idx, signature });
    this.answered.consistency.add(idx);
    this.gate!.settle(idx);
  }

  /** The caller's index if it is a member expected in the unmask phase now; refuses as `unmask` would otherwise. */
  unmaskingSender(deviceId: string): number {
    const idx = this.memberIndex(deviceId);
    this.expectPhase("unmask", idx);
    return idx;
  }

  unmask(deviceId: string, u: UnmaskShares): void {
    const idx = this.memberIndex(deviceId);
    if (u.from !== idx) throw denied(`unmasking shares claim sender ${u.from}, caller is ${idx}`);
    this.expectPhase("unmask", idx);
    this.secagg.receiveUnmask(u);
    this.answered.unmask.add(idx);
    this.gate!.settle(idx);
  }

  /** A device's stream closed: drop it from the current phase at once. */
  dropDevice(deviceId: string): void {
    const idx = this.indexByDevice.get(deviceId);
    if (idx !== undefined) this.gate?.settle(idx);
  }
}
