/**
 * The coordinator's side of the privacy ledger: turns what happens (policy installed, run
 * launched with the ML team's signed request, each round with its mechanism, cohort, survivors
 * per phase, declines and the devices' signed attestations, run end) into signed, hash-chained
 * entries. It records events and facts only; every ε is recomputed from them by `tacit verify`.
 */
import { LedgerLineIndex } from "./line-index.ts";
import type { EvaluationLedgerSink } from "../rounds/evaluation-round.ts";
import type { Ed25519KeyPair } from "../../shared/crypto/index.ts";
import { randomBytes } from "node:crypto";
import { SegmentLedgerWriter } from "./segment-writer.ts";
import { DeviceViews } from "./device-views.ts";
import { importLegacyLedger } from "./legacy-ledger.ts";
import type { DurableStore } from "../store/durable-store.ts";
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
  private readonly endStates = new Map<string, "completed" | "failed" | "cancelled">();
  private readonly launched = new Set<string>();
  /** Offences recorded per device (see state/offences.ts). */
  private readonly offenceCounts = new Map<string, number>();
  /** The latest policy entry's signed policy: the one in force, for every coordinator sharing this ledger. */
  private latestPolicy: unknown;
  /** Each launched run's spec, as the ledger recorded it with the ML team's signed request. */
  private readonly launchedSpecs = new Map<string, RunSpec>();

  private readonly lineIndex: LedgerLineIndex;
  private readonly views = new DeviceViews();
  private readonly writer: SegmentLedgerWriter;
  /** What importing a pre-segment ledger.jsonl did, for the start-up log. */
  migrated: string | undefined;

  private constructor(store: DurableStore, key: Ed25519KeyPair) {
    this.lineIndex = new LedgerLineIndex(store);
    this.writer = new SegmentLedgerWriter(store, key.privateKey, (e, at) => {
      this.index(e);
      this.lineIndex.add(e, at);
    });
  }

  /** Opens the ledger in `store` (importing the state dir's legacy ledger.jsonl once), writing its genesis if it is new. */
  static async open(store: DurableStore, paths: Pick<CoordinatorPaths, "ledger">, key: Ed25519KeyPair): Promise<PrivacyLedger> {
    const l = new PrivacyLedger(store, key);
    l.migrated = await importLegacyLedger(store, paths.ledger, key.privateKey);
    await l.writer.refresh();
    if (l.writer.nextSeq === 0) {
      // Another coordinator opening the same new store may write the genesis first: fine.
      await l.writer.tryAppend([{ type: "genesis", body: { coordinatorPublicKey: Buffer.from(key.publicRaw).toString("base64"), format: "tacit-ledger-v1" } }]);
    }
    return l;
  }

  /** Reads what other coordinators appended since this one last looked. */
  async refresh(): Promise<void> {
    await this.writer.refresh();
  }

  private index(e: Pick<LedgerEntry, "type" | "body" | "seq">): void {
    const b = e.body as { runId?: string; round?: number; attempt?: number; status?: string; deviceId?: string };
    if (e.type === "round") {
      this.rounds.set(`${b.runId}/${b.round}/${b.attempt ?? 0}`, String(b.status));
      this.roundSeqs.set(`${b.runId}/${b.round}/${b.attempt ?? 0}`, e.seq);
    } else if (e.type === "evaluation") this.evaluations.set(`${b.runId}/${b.round}`, e.seq);
    else if (e.type === "attestation") this.attested.add(`${b.runId}/${b.round}/${b.deviceId}`);
    else if (e.type === "run-end") {
      this.ended.add(String(b.runId));
      this.endStates.set(String(b.runId), (e.body as { state: "completed" | "failed" | "cancelled" }).state);
    }
    else if (e.type === "policy") this.latestPolicy = (e.body as { policy?: unknown }).policy;
    else if (e.type === "device-offence") this.offenceCounts.set(String(b.deviceId), (this.offenceCounts.get(String(b.deviceId)) ?? 0) + 1);
    else if (e.type === "run-launch") {
      this.launched.add(String(b.runId));
      this.launchedSpecs.set(String(b.runId), (e.body as { spec: RunSpec }).spec);
    }
  }

  /**
   * Appends one event. Losing the race for the next seq (another coordinator wrote there) only
   * means re-reading and appending after it: an event that happened here is still to be recorded.
   */
  private async append(type: EntryType, body: Record<string, unknown>): Promise<LedgerEntry> {
    checkEntryBound(type, body);
    for (;;) {
      const written = await this.writer.tryAppend([{ type, body }]);
      if (written) return written[0]!;
    }
  }

  /** The status the ledger records for one round attempt, if it has one. */
  roundStatus(runId: string, round: number, attempt: number): string | undefined {
    return this.rounds.get(`${runId}/${round}/${attempt}`);
  }

  runEndState(runId: string): "completed" | "failed" | "cancelled" | undefined {
    return this.endStates.get(runId);
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

  /**
   * The policy in force as JSON: the latest policy entry of the ledger, which every coordinator
   * sharing the store reads (a state dir's policy.json would be one coordinator's alone).
   */
  async policyInForce(): Promise<string | undefined> {
    await this.writer.refresh();
    return this.latestPolicy === undefined ? undefined : JSON.stringify(this.latestPolicy);
  }

  async policy(policy: PolicyFile, _json: string): Promise<void> {
    await this.append("policy", { policy });
  }

  /** A device sent a provably malformed message: named here, for the reviewer and for quarantine. */
  async offence(e: { deviceId: string; runId: string; round: number; reason: string }): Promise<void> {
    await this.append("device-offence", { deviceId: e.deviceId, runId: e.runId, round: e.round, reason: e.reason.slice(0, 200) });
  }

  offences(deviceId: string): number {
    return this.offenceCounts.get(deviceId) ?? 0;
  }

  /** A principal created an enrollment token (the token itself is never written, only its id). */
  async enrollmentToken(t: { tokenId: string; creator: string; label: string; expiresAt: number }): Promise<void> {
    await this.append("enrollment-token", { tokenId: t.tokenId, creator: t.creator, label: t.label, expiresAt: t.expiresAt });
  }

  /** A device enrolled: whose token, its label, and its identity key's fingerprint. */
  async enrollment(e: { deviceId: string; keyFingerprint: string; label: string; creator: string; tokenId: string; tokenLabel: string }): Promise<void> {
    await this.append("enrollment", { ...e });
  }

  async runLaunch(run: RunRecord, request: { body: string; publicKey: string; signature: string }, initialModelHash: string): Promise<void> {
    await this.append("run-launch", { runId: run.runId, spec: run.spec, requester: run.requester, request, initialModelHash });
  }

  /**
   * Appends a round and its attestations as one segment; idempotent, so a redone commit never
   * writes twice. When another coordinator wrote the next segment first, what it wrote is read
   * and the round decided again: if that was this very round, nothing is left to write.
   */
  async round(e: Parameters<RoundLedgerSink["round"]>[0]): Promise<void> {
    const r = e.record;
    const runId = e.run.runId;
    const closed = `round ${r.round} attempt ${r.attempt} cannot be recorded after it`;
    // A round of an ended run is refused first, before anything (an injected fault included)
    // can make it look like an ordinary append failure.
    await this.writer.refresh();
    if (this.ended.has(runId)) throw new LedgerClosedError(`run ${runId} has ended in the ledger: ${closed}`);
    faultpoint("ledger-append", r.round);
    await this.appendAggregation({
      runId,
      round: r.round,
      closed,
      recordedSeq: () => this.roundSeqs.get(`${runId}/${r.round}/${r.attempt}`),
      entry: () => ({ type: "round", body: {
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
        memberKey: newMemberKey(),
        phases: r.phases,
        // Who declined, never why: a decline reason states that person's privacy limits. Members
        // are served a view of this entry that proves their own roles only (finding L1).
        declined: Object.keys(e.declines).sort(),
        populationSize: e.run.spec.populationSize,
        detail: r.detail,
      } }),
      attestations: e.attestations,
    });
  }

  /** Whether the ledger holds the entry of evaluation round `round` of the run (any status). */
  hasEvaluation(runId: string, round: number): boolean {
    return this.evaluations.has(`${runId}/${round}`);
  }

  /**
   * Appends an evaluation round and its attestations as one segment: its counts (the only thing
   * released), the noise mechanism each survivor was charged — `nonPrivate` when the counts were
   * released without noise, so `tacit verify` reports ε = ∞ for those devices rather than
   * pretend — and the survivors' attestations of that mechanism. Idempotent per run and
   * evaluation round, and decided again when another coordinator wrote the next segment first.
   */
  async evaluation(e: Parameters<EvaluationLedgerSink["evaluation"]>[0]): Promise<void> {
    const r = e.record;
    const runId = e.run.runId;
    await this.appendAggregation({
      runId,
      round: r.round,
      closed: `its evaluation after round ${r.afterRound} cannot be recorded after it`,
      recordedSeq: () => this.evaluations.get(`${runId}/${r.round}`),
      entry: () => ({ type: "evaluation", body: {
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
        memberKey: newMemberKey(),
        counts: r.sums ?? null,
        errorBound: r.errorBound ?? null,
        detail: r.detail,
      } }),
      attestations: e.attestations,
    });
  }

  /**
   * Appends a round's or an evaluation's entry (unless the ledger already holds it) and the
   * attestations not yet recorded, as one segment. When another coordinator wrote the next
   * segment first, what it wrote is read and the batch decided again; nothing is appended to a
   * run that has ended in the ledger.
   */
  private async appendAggregation(o: {
    runId: string;
    round: number;
    /** What cannot be recorded once the run has ended, for the LedgerClosedError. */
    closed: string;
    /** The seq of the entry if the ledger already holds it. */
    recordedSeq: () => number | undefined;
    entry: () => { type: EntryType; body: Record<string, unknown> };
    attestations: Parameters<RoundLedgerSink["round"]>[0]["attestations"];
  }): Promise<void> {
    for (;;) {
      await this.writer.refresh();
      if (this.ended.has(o.runId)) throw new LedgerClosedError(`run ${o.runId} has ended in the ledger: ${o.closed}`);
      const batch: { type: EntryType; body: Record<string, unknown> }[] = [];
      let entrySeq = o.recordedSeq();
      if (entrySeq === undefined) {
        entrySeq = this.writer.nextSeq;
        batch.push(o.entry());
      }
      batch.push(...this.newAttestations(o.runId, o.round, entrySeq, o.attestations));
      for (const b of batch) checkEntryBound(b.type, b.body);
      // An empty batch (entry and attestations all recorded) appends nothing and is done.
      if (await this.writer.tryAppend(batch)) return;
    }
  }

  /** Attestation entries for the devices not yet attested in this round (each once), pointing at its entry. */
  private newAttestations(runId: string, round: number, roundEntry: number, attestations: Parameters<RoundLedgerSink["round"]>[0]["attestations"]): { type: EntryType; body: Record<string, unknown> }[] {
    const seen = new Set<string>();
    return attestations
      .filter((a) => !this.attested.has(`${runId}/${round}/${a.deviceId}`) && !seen.has(a.deviceId) && seen.add(a.deviceId))
      .map((a) => ({ type: "attestation", body: { runId, round, roundEntry, deviceId: a.deviceId, identityPublicKey: a.identityPublicKey, bodyJson: a.body, signature: Buffer.from(a.signature).toString("base64") } }));
  }

  async runEnded(run: RunRecord, state: "completed" | "failed" | "cancelled", detail: string): Promise<void> {
    for (;;) {
      await this.writer.refresh();
      if (this.ended.has(run.runId)) return;
      if (await this.writer.tryAppend([{ type: "run-end", body: { runId: run.runId, state, detail } }])) return;
    }
  }

  /**
   * Ledger lines from `fromSeq` in pages read from the store's segments through the in-memory index; a
   * device sees only entries that name it (and the genesis), each round and evaluation as its own
   * view: its roles with a proof, never the other members (finding L1).
   */
  async *pages(fromSeq: number, deviceId?: string): AsyncGenerator<string[]> {
    const pages = this.lineIndex.pages(this.lineIndex.seqs(fromSeq, deviceId));
    if (deviceId === undefined) yield* pages;
    else for await (const page of pages) yield page.map((line) => this.views.lineFor(line, deviceId));
  }

  async lines(fromSeq: number, deviceId?: string): Promise<string[]> {
    const out: string[] = [];
    for await (const p of this.pages(fromSeq, deviceId)) out.push(...p);
    return out;
  }
}

/** A fresh key per round entry: its member salts and list digest are opened only with it. */
function newMemberKey(): string {
  return randomBytes(32).toString("hex");
}
