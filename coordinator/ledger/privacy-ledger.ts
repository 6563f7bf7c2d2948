/**
 * The coordinator's side of the privacy ledger: turns what happens (policy installed, run
 * launched with the ML team's signed request, each round with its mechanism, cohort, survivors
 * per phase, declines and the devices' signed attestations, run end) into signed, hash-chained
 * entries. It records events and facts only; every ε is recomputed from them by `tacit verify`.
 */
import { existsSync, readFileSync } from "node:fs";
import type { Ed25519KeyPair } from "../../shared/crypto/index.ts";
import { LedgerWriter } from "../../shared/ledger/writer.ts";
import type { LedgerEntry } from "../../shared/ledger/entry.ts";
import { checkRunAgainstPolicy, verifyPolicy, type PolicyFile } from "../../shared/dp/index.ts";
import { projectRun, type RunSpec } from "../../shared/run/index.ts";
import type { RoundLedgerSink } from "../rounds/round-runner.ts";
import type { RunLifecycleSink } from "../runs/run-scheduler.ts";
import type { RunRecord } from "../runs/run-store.ts";
import type { CoordinatorPaths } from "../state/state-dir.ts";
import { RpcError } from "../server/rpc-error.ts";
import * as grpc from "@grpc/grpc-js";

export class PrivacyLedger implements RoundLedgerSink, RunLifecycleSink {
  private constructor(
    private readonly writer: LedgerWriter,
    private readonly path: string,
  ) {}

  static open(paths: CoordinatorPaths, key: Ed25519KeyPair): PrivacyLedger {
    const writer = LedgerWriter.open(paths.ledger, key.privateKey);
    const l = new PrivacyLedger(writer, paths.ledger);
    if (writer.nextSeq === 0) writer.append("genesis", { coordinatorPublicKey: Buffer.from(key.publicRaw).toString("base64"), format: "tacit-ledger-v1" });
    return l;
  }

  get repaired(): string | undefined {
    return this.writer.repaired;
  }

  validatePolicy(json: string): PolicyFile {
    try {
      return verifyPolicy(json);
    } catch (err) {
      throw new RpcError(grpc.status.INVALID_ARGUMENT, (err as Error).message);
    }
  }

  /** Refuses (FAILED_PRECONDITION) a run that would break the policy, naming rule and projected ε. */
  assertRunAllowed(spec: RunSpec, policyJson: string): void {
    const policy = verifyPolicy(policyJson);
    const proj = projectRun(spec, policy.body.delta);
    const v = checkRunAgainstPolicy({ noiseMultiplier: spec.noiseMultiplier, minSurvivors: spec.minSurvivors, signals: spec.signals, projectedDeviceEpsilon: proj.deviceEpsilon }, policy.body);
    if (v.length > 0) throw new RpcError(grpc.status.FAILED_PRECONDITION, `run refused by the privacy policy: ${v.map((x) => `[${x.rule}] ${x.message}`).join("; ")}`);
  }

  async policy(policy: PolicyFile, _json: string): Promise<void> {
    this.writer.append("policy", { policy });
  }

  async runLaunch(run: RunRecord, request: { body: string; publicKey: string; signature: string }, initialModelHash: string): Promise<void> {
    this.writer.append("run-launch", { runId: run.runId, spec: run.spec, requester: run.requester, request, initialModelHash });
  }

  async round(e: Parameters<RoundLedgerSink["round"]>[0]): Promise<void> {
    const r = e.record;
    const entry = this.writer.append("round", {
      runId: e.run.runId,
      round: r.round,
      attempt: r.attempt,
      status: r.status,
      modelHashBefore: r.modelHashBefore,
      modelHashAfter: r.modelHashAfter,
      mechanism: e.event ?? null,
      dp: { clip: e.run.spec.clip, noiseMultiplier: e.run.spec.noiseMultiplier, minSurvivors: e.run.spec.minSurvivors, delta: e.run.spec.delta },
      secagg: r.secagg,
      cohort: e.cohort,
      survivors: e.survivors,
      phases: r.phases,
      declines: e.declines,
      populationSize: e.run.spec.populationSize,
      detail: r.detail,
    });
    for (const a of e.attestations) {
      this.writer.append("attestation", { runId: e.run.runId, round: r.round, roundEntry: entry.seq, deviceId: a.deviceId, identityPublicKey: a.identityPublicKey, bodyJson: a.body, signature: Buffer.from(a.signature).toString("base64") });
    }
  }

  async runEnded(run: RunRecord, state: "completed" | "failed" | "cancelled", detail: string): Promise<void> {
    this.writer.append("run-end", { runId: run.runId, state, detail });
  }

  /** Ledger lines from `fromSeq`; a device sees only entries that name it (and the genesis). */
  async lines(fromSeq: number, deviceId?: string): Promise<string[]> {
    if (!existsSync(this.path)) return [];
    const all = readFileSync(this.path, "utf8").split("\n").filter((l) => l.length > 0);
    return all.slice(fromSeq).filter((l) => {
      if (!deviceId) return true;
      const e = JSON.parse(l) as LedgerEntry;
      if (e.type === "genesis") return true;
      const b = e.body as { cohort?: string[]; deviceId?: string };
      return b.deviceId === deviceId || (Array.isArray(b.cohort) && b.cohort.includes(deviceId));
    });
  }
}
