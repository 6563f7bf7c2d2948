/**
 * The coordinator's side of the privacy ledger: turns what happens (policy installed, run
 * launched with the ML team's signed request, each round with its mechanism, cohort, survivors
 * per phase, declines and the devices' signed attestations, run end) into signed, hash-chained
 * entries. It records events and facts only; every ε is recomputed from them by `tacit verify`.
 */
import type { EvaluationLedgerSink } from "../rounds/evaluation-round.ts";
import { readFileSync } from "node:fs";
import { LedgerLineIndex } from "./line-index.ts";
import type { Ed25519KeyPair } from "../../shared/crypto/index.ts";
import { LedgerWriter } from "../../shared/ledger/writer.ts";
import type { EntryType, LedgerEntry } from "../../shared/ledger/entry.ts";
import { checkRunAgainstPolicy, verifyPolicy, type PolicyFile } from "../../shared/dp/index.ts";
import { projectRun, type RunSpec } from "../../shared/run/index.ts";
import type { RoundLedgerSink } from "../rounds/round-runner.ts";
import type { RunLifecycleSink } from "../runs/run-scheduler.ts";
import type { RunRecord } from "../runs/run-store.ts";
import type { CoordinatorPaths } from "../state/state-dir.ts";
import { failedPrecondition, invalid } from "../server/request-errors.ts";
import { faultpoint } from "../runs/failpoint.ts";

/** Nothing about a run is written after its run-end entry: the end is final in the ledger too. */
export class LedgerClosedError extends Error {
  override name = "LedgerClosedError";
}

/**
 * Bound on one entry's body. The largest honest entry is a round of a big cohort (an id of 24
 * bytes per member, a few times over); policy and launch entries are bounded by their RPC caps.
 */
export const MAX_ENTRY_BODY_BYTES = 1024 * 1024;
/** A policy is a handful of numbers and signal names. */
export const MAX_POLICY_BYTES = 8 * 1024;

/**
 * A bound on every entry, checked before it is written: no request can bloat the ledger that
 * every reviewer and device reads (the 12 MiB policy line of finding L3).
 */
function checkEntryBound(type: EntryType, body: Record<string, unknown>): void {
  const bodyBytes = Buffer.byteLength(JSON.stringify(body));
  if (bodyBytes > MAX_ENTRY_BODY_BYTES) throw invalid(`ledger ${type} entry of ${bodyBytes} bytes is over the ${MAX_ENTRY_BODY_BYTES}-byte bound`);
}

export class PrivacyLedger implements RoundLedgerSink, RunLifecycleSink, EvaluationLedgerSink {
  /**
   * What the ledger already holds, so that a restarted coordinator redoing a round's commit
   * appends each entry exactly once: round entries by run/round/attempt, attestations by
   * run/round/device, run ends and launches by run.
   */
  private readonly rounds = new Map<string, string>();
  private readonly roundSeqs = new Map<string, number>();
  private readonly attested = new Set<string>();
  /** Evaluation entries by run/round (one per evaluation, whatever its status). */
  private readonly evaluations = new Map<string, number>();
  private readonly ended = new Set<string>();
  private readonly launched = new Set<string>();
  /** Offences recorded per device (see state/offences.ts). */
  private readonly offenceCounts = new Map<string, number>();
  /** Each launched run's spec, as the ledger recorded it with the ML team's signed request. */
  private readonly launchedSpecs = new Map<string, RunSpec>();

  private readonly lineIndex: LedgerLineIndex;

  private constructor(private readonly writer: LedgerWriter, path: string) {
    this.lineIndex = new LedgerLineIndex(path);
  }

  static open(paths: CoordinatorPaths, key: Ed25519KeyPair): PrivacyLedger {
    const writer = LedgerWriter.open(paths.ledger, key.privateKey);
    const l = new PrivacyLedger(writer, paths.ledger);
    if (writer.nextSeq === 0) l.append("genesis", { coordinatorPublicKey: Buffer.from(key.publicRaw).toString("base64"), format: "tacit-ledger-v1" });
    else
      for (const line of readFileSync(paths.ledger, "utf8").split("\n")) {
        if (!line) continue;
        const e = JSON.parse(line) as LedgerEntry;
        l.index(e);
        l.lineIndex.add(e, Buffer.byteLength(line) + 1);
      }
    return l;
  }

  private index(e: Pick<LedgerEntry, "type" | "body" | "seq">): void {
    const b = e.body as { runId?: string; round?: number; attempt?: number; status?: string; deviceId?: string };
    if (e.type === "round") {
      this.rounds.set(`${b.runId}/${b.round}/${b.attempt ?? 0}`, String(b.status));
      this.roundSeqs.set(`${b.runId}/${b.round}/${b.attempt ?? 0}`, e.seq);
    } else if (e.type === "evaluation") this.evaluations.set(`${b.runId}/${b.round}`, e.seq);
    else if (e.type === "attestation") this.attested.add(`${b.runId}/${b.round}/${b.deviceId}`);
    else if (e.type === "run-end") this.ended.add(String(b.runId));
    else if (e.type === "device-offence") this.offenceCounts.set(String(b.deviceId), (this.offenceCounts.get(String(b.deviceId)) ?? 0) + 1);
    else if (e.type === "run-launch") {
      this.launched.add(String(b.runId));
      this.launchedSpecs.set(String(b.runId), (e.body as { spec: RunSpec }).spec);
    }
  }

  private append(type: EntryType, body: Record<string, unknown>): LedgerEntry {
    checkEntryBound(type, body);
    const entry = this.writer.append(type, body);
    this.appended(entry);
    return entry;
  }

  /** Several entries in one group commit (one fsync); each bounded and indexed like `append`'s. */
  private appendBatch(batch: { type: EntryType; body: Record<string, unknown> }[]): void {
    for (const b of batch) checkEntryBound(b.type, b.body);
    for (const entry of this.writer.appendBatch(batch)) this.appended(entry);
  }

  /** Every appended entry enters both indexes: the facts and the line offsets pages are read from. */
  private appended(entry: LedgerEntry): void {
    this.index(entry);
    // The writer writes exactly JSON.stringify(entry) + "\n" (shared/ledger/writer.ts).
    this.lineIndex.add(entry, Buffer.byteLength(JSON.stringify(entry)) + 1);
  }

  /** The status the ledger records for one round attempt, if it has one. */
  roundStatus(runId: string, round: number, attempt: number): string | undefined {
    return this.rounds.get(`${runId}/${round}/${attempt}`);
  }

  hasRunEnd(runId: string): boolean {
    return this.ended.has(runId);
  }

  /** The spec the ledger recorded when `runId` was launched, if it was. */
  launchedSpec(runId: string): RunSpec | undefined {
    return this.launchedSpecs.get(runId);
  }

  hasLaunch(runId: string): boolean {
    return this.launched.has(runId);
  }

  get repaired(): string | undefined {
    return this.writer.repaired;
  }

  /** MAX_POLICY_BYTES of JSON at most, signed by one of the reviewer keys registered at `coordinator init`. */
  validatePolicy(json: string, reviewerKeys: readonly string[]): PolicyFile {
    if (json.length > MAX_POLICY_BYTES) throw invalid(`policy is ${json.length} bytes; at most ${MAX_POLICY_BYTES} are accepted`);
    if (reviewerKeys.length === 0) throw failedPrecondition("no reviewer key is registered in principals.json: a policy cannot be trusted");
    try {
      return verifyPolicy(json, reviewerKeys);
    } catch (err) {
      throw invalid((err as Error).message);
    }
  }

  /** Refuses (FAILED_PRECONDITION) a run that would break the policy, naming rule and projected ε. */
  assertRunAllowed(spec: RunSpec, policyJson: string): void {
    const policy = verifyPolicy(policyJson);
    const proj = projectRun(spec, policy.body.delta);
    const v = checkRunAgainstPolicy({ noiseMultiplier: spec.noiseMultiplier, minSurvivors: spec.minSurvivors, signals: spec.signals, projectedDeviceEpsilon: proj.deviceEpsilon }, policy.body);
    if (v.length > 0) throw failedPrecondition(`run refused by the privacy policy: ${v.map((x) => `[${x.rule}] ${x.message}`).join("; ")}`);
  }

  async policy(policy: PolicyFile, _json: string): Promise<void> {
    this.append("policy", { policy });
  }

  /** A device sent a provably malformed message: named here, for the reviewer and for quarantine. */
  async offence(e: { deviceId: string; runId: string; round: number; reason: string }): Promise<void> {
    this.append("device-offence", { deviceId: e.deviceId, runId: e.runId, round: e.round, reason: e.reason.slice(0, 200) });
  }

  offences(deviceId: string): number {
    return this.offenceCounts.get(deviceId) ?? 0;
  }

  /** A principal created an enrollment token (the token itself is never written, only its id). */
  async enrollmentToken(t: { tokenId: string; creator: string; label: string; expiresAt: number }): Promise<void> {
    this.append("enrollment-token", { tokenId: t.tokenId, creator: t.creator, label: t.label, expiresAt: t.expiresAt });
  }

  /** A device enrolled: whose token, its label, and its identity key's fingerprint. */
  async enrollment(e: { deviceId: string; keyFingerprint: string; label: string; creator: string; tokenId: string; tokenLabel: string }): Promise<void> {
    this.append("enrollment", { ...e });
  }

  async runLaunch(run: RunRecord, request: { body: string; publicKey: string; signature: string }, initialModelHash: string): Promise<void> {
    this.append("run-launch", { runId: run.runId, spec: run.spec, requester: run.requester, request, initialModelHash });
  }

  /** Appends a round and its attestations; idempotent, so a redone commit never writes twice. */
  async round(e: Parameters<RoundLedgerSink["round"]>[0]): Promise<void> {
    const r = e.record;
    const runId = e.run.runId;
    if (this.ended.has(runId)) throw new LedgerClosedError(`run ${runId} has ended in the ledger: round ${r.round} attempt ${r.attempt} cannot be recorded after it`);
    faultpoint("ledger-append", r.round);
    if (this.roundStatus(runId, r.round, r.attempt) === undefined) {
      this.append("round", {
        runId,
        round: r.round,
        attempt: r.attempt,
        status: r.status,
        modelHashBefore: r.modelHashBefore,
        modelHashAfter: r.modelHashAfter,
        mechanism: e.event ?? null,
        // With adaptive clipping, the C this round clipped to (privacy.adaptiveClip has the chain).
        dp: { clip: r.privacy?.adaptiveClip?.clip ?? e.run.spec.clip, noiseMultiplier: e.run.spec.noiseMultiplier, minSurvivors: e.run.spec.minSurvivors, delta: e.run.spec.delta },
        secagg: r.secagg,
        ...(r.privacy ? { privacy: r.privacy } : {}),
        cohort: e.cohort,
        survivors: e.survivors,
        phases: r.phases,
        // Who declined, never why: a decline reason states that person's privacy limits, and
        // every cohort member can read this entry (finding L1).
        declined: Object.keys(e.declines).sort(),
        populationSize: e.run.spec.populationSize,
        detail: r.detail,
      });
    }
    const roundEntry = this.roundSeq(runId, r.round, r.attempt);
    // All of the round's new attestations in one group commit (one fsync, not one per survivor).
    const inBatch = new Set<string>();
    const batch = e.attestations
      .filter((a) => !this.attested.has(`${runId}/${r.round}/${a.deviceId}`) && !inBatch.has(a.deviceId) && inBatch.add(a.deviceId))
      .map((a) => ({ type: "attestation" as const, body: { runId, round: r.round, roundEntry, deviceId: a.deviceId, identityPublicKey: a.identityPublicKey, bodyJson: a.body, signature: Buffer.from(a.signature).toString("base64") } }));
    this.appendBatch(batch);
  }

  /** Whether the ledger holds the entry of evaluation round `round` of the run (any status). */
  hasEvaluation(runId: string, round: number): boolean {
    return this.evaluations.has(`${runId}/${round}`);
  }

  /**
   * Appends an evaluation round: its counts (the only thing released), the noise mechanism
   * each survivor was charged — `nonPrivate` when the counts were released without noise, so
   * `tacit verify` reports ε = ∞ for those devices rather than pretend — and the survivors'
   * attestations of that mechanism. Idempotent per run and evaluation round.
   */
  async evaluation(e: Parameters<EvaluationLedgerSink["evaluation"]>[0]): Promise<void> {
    const r = e.record;
    const runId = e.run.runId;
    if (this.ended.has(runId)) throw new LedgerClosedError(`run ${runId} has ended in the ledger: its evaluation after round ${r.afterRound} cannot be recorded after it`);
    if (!this.evaluations.has(`${runId}/${r.round}`)) {
      this.append("evaluation", {
        runId,
        round: r.round,
        afterRound: r.afterRound,
        status: r.status,
        modelHash: r.modelHash,
        mechanism: e.event ?? null,
        noiseMultiplier: r.noiseMultiplier,
        maxExamplesPerDevice: e.run.spec.evaluation?.maxExamplesPerDevice ?? null,
        cohort: e.cohort,
        survivors: e.survivors,
        declined: e.declined,
        counts: r.sums ?? null,
        errorBound: r.errorBound ?? null,
        detail: r.detail,
      });
    }
    const entrySeq = this.evaluations.get(`${runId}/${r.round}`)!;
    const inBatch = new Set<string>();
    this.appendBatch(
      e.attestations
        .filter((a) => !this.attested.has(`${runId}/${r.round}/${a.deviceId}`) && !inBatch.has(a.deviceId) && inBatch.add(a.deviceId))
        .map((a) => ({ type: "attestation" as const, body: { runId, round: r.round, roundEntry: entrySeq, deviceId: a.deviceId, identityPublicKey: a.identityPublicKey, bodyJson: a.body, signature: Buffer.from(a.signature).toString("base64") } })),
    );
  }

  private roundSeq(runId: string, round: number, attempt: number): number {
    const seq = this.roundSeqs.get(`${runId}/${round}/${attempt}`);
    if (seq === undefined) throw new Error(`no ledger entry for round ${round} attempt ${attempt} of run ${runId}`);
    return seq;
  }

  async runEnded(run: RunRecord, state: "completed" | "failed" | "cancelled", detail: string): Promise<void> {
    if (this.ended.has(run.runId)) return;
    this.append("run-end", { runId: run.runId, state, detail });
  }

  /**
   * Ledger lines from `fromSeq` in pages read from the file through the in-memory index; a
   * device sees only entries that name it (and the genesis).
   */
  *pages(fromSeq: number, deviceId?: string): Generator<string[]> {
    yield* this.lineIndex.pages(this.lineIndex.seqs(fromSeq, deviceId));
  }

  async lines(fromSeq: number, deviceId?: string): Promise<string[]> {
    return [...this.pages(fromSeq, deviceId)].flat();
  }
}
