/**
 * What a round (training or evaluation) needs from the coordinator around it. Kept apart from
 * round-runner.ts so that the phase steps both kinds of round share can name it without an
 * import cycle.
 */
import type { Logger } from "pino";
import type { Ed25519KeyPair } from "../../shared/crypto/index.ts";
import type { DpEvent } from "../../shared/dp/index.ts";
import type { DeviceHub } from "./device-hub.ts";
import type { ActiveRound, Attestation } from "./active-round.ts";
import type { DeviceRegistry } from "../state/registry.ts";
import type { CheckpointStore } from "../runs/checkpoint-store.ts";
import type { PhaseCounts, RoundRecord, RunRecord } from "../runs/run-store.ts";
import type { OffenceLedger } from "../state/offences.ts";

export interface RoundLedgerSink {
  /** Called once per finished round (completed or aborted) with everything the ledger records. */
  round(entry: {
    run: RunRecord;
    record: RoundRecord;
    cohort: string[];
    survivors: string[];
    declines: Record<string, string>;
    event: DpEvent | undefined;
    attestations: Attestation[];
  }): Promise<void>;
}

export interface RoundContext {
  hub: DeviceHub;
  registry: DeviceRegistry;
  checkpoints: CheckpointStore;
  signingKey: Ed25519KeyPair;
  log: Logger;
  active: Map<string, ActiveRound>;
  ledger: RoundLedgerSink;
  /** Publishes a committed round (ledger, LATEST, run state); idempotent. */
  commit(runId: string, round: number): Promise<void>;
  /** Persists the round's progress (phase, attempt, cohort, counts) in Redis. */
  onPhase?: (runId: string, round: number, phase: string, state: { attempt: number; cohort: string[]; counts: PhaseCounts }) => Promise<void>;
  /** True once the run was cancelled (by this or another coordinator process): read at each phase boundary. */
  isCancelled?: (runId: string) => Promise<boolean>;
  /** Where devices the SecAgg server proved to have sent wrong shares are named (state/offences.ts). */
  offences?: OffenceLedger;
}
