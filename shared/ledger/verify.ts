/**
 * The reviewer's verification of a ledger, from the entries alone: the hash chain, every
 * coordinator and device signature, ordering and gaps; device ε per device (composition of the
 * rounds it survived, no amplification) and population ε (amplified by the sampling the
 * coordinator claims) recomputed with Tacit's accountant — never read from figures the
 * coordinator wrote; and every run checked against the policy in force at its launch.
 *
 * Every ε is judged at the policy's δ (a `--delta` only adds a column). Every survivor of every
 * completed round must have signed an attestation of exactly that round's mechanism and
 * parameters, so the mechanism the accountant composes is one each charged device vouched for.
 */
import { canonicalJson } from "../crypto/canonical-json.ts";
import { publicKeyFromRaw, verifyBytes } from "../crypto/ed25519.ts";
import { checkRunAgainstPolicy, deviceEpsilon, parseDpEvent, populationEpsilonFixedSize, verifyPolicy, type DpEvent, type PolicyFile } from "../dp/index.ts";
import { evalDpInputs, parseRunSpec, projectRun, type RunSpec } from "../run/index.ts";
import { calibrateEvalDp, evalDpEvent } from "../eval/eval-dp.ts";
import { corruptCount } from "../secagg/params.ts";
import { ClipChain } from "./adaptive-clip-check.ts";
import { firstRoundModelProblem, launchInitialModelProblems } from "./initial-model-check.ts";
import { memberKeyProblem } from "./member-commitment.ts";
import { ENTRY_TYPES, entryHash, entrySignatureValid, GENESIS_PREV, strictBase64, type LedgerEntry } from "./entry.ts";

export interface Violation {
  code: string;
  line?: number;
  message: string;
}

export interface RoundFigures {
  round: number;
  /** δ every ε of this round is computed at (the policy's in force at the run's launch). */
  delta: number;
  attempt: number;
  status: string;
  cohort: number;
  survivors: number;
  worstDeviceEpsilon: number;
  medianDeviceEpsilon: number;
  populationEpsilon: number;
}

/** An evaluation round as the ledger records it, with its charge recomputed from the spec. */
export interface EvaluationFigures {
  round: number;
  afterRound: number;
  status: string;
  survivors: number;
  /** Summed counts as recorded (noise included, if any). */
  counts: unknown;
  noiseMultiplier: number;
  /** ε of the worst-charged cohort member after this evaluation (∞ when the counts were exact). */
  worstDeviceEpsilon: number;
}

export interface RunFigures {
  runId: string;
  evaluations?: EvaluationFigures[];
  launchedAtLine: number;
  spec: RunSpec | undefined;
  policyLine: number | undefined;
  rounds: RoundFigures[];
  state: string;
}

export interface Findings {
  ok: boolean;
  entries: number;
  /** The policy's δ (the latest policy in the ledger): device budgets are judged here. */
  delta: number;
  /** A δ the reviewer asked for as well (`--delta`): only adds `epsilonAtRequestedDelta` figures. */
  requestedDelta?: number;
  coordinatorPublicKey: string | undefined;
  runs: RunFigures[];
  devices: { deviceId: string; rounds: number; deviceEpsilon: number; epsilonAtRequestedDelta?: number }[];
  /** Devices the coordinator named for provably malformed messages, with their offence counts. */
  offences: { deviceId: string; count: number }[];
  /** Enrollment tokens created and devices enrolled, per principal that created the tokens. */
  enrollments: { creator: string; tokens: number; devices: number }[];
  violations: Violation[];
}

export class LedgerFormatError extends Error {
  override name = "LedgerFormatError";
}

function median(xs: number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Parses one line strictly; throws LedgerFormatError naming the line and the problem. */
export function parseEntry(line: string, lineNo: number): LedgerEntry {
  let e: unknown;
  try {
    e = JSON.parse(line);
  } catch {
    throw new LedgerFormatError(`line ${lineNo}: not JSON (truncated or corrupted entry)`);
  }
  const x = e as Partial<LedgerEntry>;
  if (typeof x !== "object" || x === null) throw new LedgerFormatError(`line ${lineNo}: not a JSON object`);
  if (!Number.isInteger(x.seq)) throw new LedgerFormatError(`line ${lineNo}: missing or non-integer seq`);
  if (typeof x.prevHash !== "string" || !/^[0-9a-f]{64}$/.test(x.prevHash)) throw new LedgerFormatError(`line ${lineNo}: missing or malformed prevHash`);
  if (typeof x.time !== "number") throw new LedgerFormatError(`line ${lineNo}: missing time`);
  if (typeof x.type !== "string" || !(ENTRY_TYPES as readonly string[]).includes(x.type)) throw new LedgerFormatError(`line ${lineNo}: unknown entry type '${String(x.type)}'`);
  if (typeof x.body !== "object" || x.body === null) throw new LedgerFormatError(`line ${lineNo}: missing body`);
  const memberProblem = memberKeyProblem(x.body);
  if (memberProblem) throw new LedgerFormatError(`line ${lineNo}: ${memberProblem}`);
  if (typeof x.hash !== "string" || !/^[0-9a-f]{64}$/.test(x.hash)) throw new LedgerFormatError(`line ${lineNo}: missing or malformed hash`);
  if (typeof x.signature !== "string") throw new LedgerFormatError(`line ${lineNo}: missing signature`);
  return x as LedgerEntry;
}

export interface VerifyOptions {
  /** A policy file the reviewer holds: must match a policy entry of the ledger. */
  policy?: PolicyFile;
  /** Base64 raw ed25519 key the reviewer trusts as the coordinator's. */
  trustedCoordinatorKey?: string;
  /**
   * An extra δ to report ε at. Budgets are always judged at the policy's δ; without any policy
   * in the ledger this δ (default 1e-6) is used for everything.
   */
  delta?: number;
  /**
   * The head (last entry's seq and hash) obtained out of band — from a device's local copy, the
   * coordinator's signed run status or an earlier verification. A chain cut at an entry boundary
   * is otherwise indistinguishable from a shorter ledger.
   */
  expectedHead?: { seq: number; hash: string };
  /** Check only the chain, hashes and signatures (no budgets): for bulk tamper scans. */
  integrityOnly?: boolean;
}

type Add = (code: string, line: number | undefined, message: string) => void;

/** A run as the walk over the ledger knows it: its figures plus what later entries are checked against. */
type RunState = RunFigures & {
  clipChain: ClipChain;
  initialModelHash: unknown;
  eventByRound: Map<number, DpEvent>;
  nextRound: number;
  policyAtLaunch?: PolicyFile;
  survivorsByRound: Map<number, Set<string>>;
  sampledByRound: Map<number, { event: DpEvent; eligible: number; cohort: number }>;
  completed: Map<number, RoundFacts>;
  attested: Map<number, Set<string>>;
};

/** What the semantic walk accumulates, entry by entry. */
interface Walk {
  add: Add;
  /** The δ budgets are judged at: the latest policy's, else the requested one. */
  delta: number;
  policy: { file: PolicyFile; line: number } | undefined;
  policyLines: { file: PolicyFile; line: number }[];
  runs: Map<string, RunState>;
  deviceEvents: Map<string, DpEvent[]>;
  enrollments: Map<string, { creator: string; tokens: number; devices: number }>;
  offences: Map<string, number>;
}

export function verifyLedger(text: string, opts: VerifyOptions = {}): Findings {
  if (text.length === 0) throw new LedgerFormatError("ledger is empty");
  if (!text.endsWith("\n")) throw new LedgerFormatError(`line ${text.split("\n").length}: truncated (no newline at the end of the last entry)`);
  const entries = text.slice(0, -1).split("\n").map((l, i) => parseEntry(l, i + 1));
  const v: Violation[] = [];
  const add: Add = (code, line, message) => {
    v.push({ code, ...(line !== undefined ? { line } : {}), message });
  };
  const coordinatorKeyB64 = checkIntegrity(entries, opts, add);
  if (opts.integrityOnly) {
    return { ok: v.length === 0, entries: entries.length, delta: opts.delta ?? 1e-6, coordinatorPublicKey: coordinatorKeyB64, runs: [], devices: [], enrollments: [], offences: [], violations: v };
  }
  // Semantics: policies, runs, rounds, attestations.
  const requested = opts.delta ?? 1e-6;
  const w: Walk = { add, delta: lastPolicyDelta(entries) ?? requested, policy: undefined, policyLines: [], runs: new Map(), deviceEvents: new Map(), enrollments: new Map(), offences: new Map() };
  const afterEnd = runEndGuard();
  entries.forEach((e, i) => {
    afterEnd(e, i + 1, add);
    checkEntry(w, e, i + 1);
  });
  return summarize(w, opts, requested, { entries: entries.length, coordinatorKeyB64, violations: v });
}

/** Chain, hashes, coordinator signatures and the out-of-band head; returns the genesis key. */
function checkIntegrity(entries: LedgerEntry[], opts: VerifyOptions, add: Add): string | undefined {
  const genesis = entries[0]!;
  let coordinatorKeyB64: string | undefined;
  if (genesis.type !== "genesis") add("NO_GENESIS", 1, "the first entry is not the genesis entry");
  else coordinatorKeyB64 = String((genesis.body as { coordinatorPublicKey?: unknown }).coordinatorPublicKey ?? "");
  if (opts.trustedCoordinatorKey && coordinatorKeyB64 !== opts.trustedCoordinatorKey) add("UNTRUSTED_COORDINATOR", 1, "the genesis key is not the coordinator key you trust");
  let coordinatorKey: ReturnType<typeof publicKeyFromRaw> | undefined;
  try {
    coordinatorKey = publicKeyFromRaw(Buffer.from(coordinatorKeyB64 ?? "", "base64"));
  } catch {
    add("BAD_GENESIS_KEY", 1, "the genesis entry does not carry a valid ed25519 key");
  }
  entries.forEach((e, i) => {
    const line = i + 1;
    if (e.seq !== i) add("SEQUENCE", line, `entry has seq ${e.seq}, expected ${i} (an entry was deleted, duplicated or reordered)`);
    const prev = i === 0 ? GENESIS_PREV : entries[i - 1]!.hash;
    if (e.prevHash !== prev) add("CHAIN", line, "prevHash does not match the previous entry's hash (chain broken)");
    if (entryHash(e) !== e.hash) add("HASH", line, "the entry's content does not match its hash (edited)");
    if (coordinatorKey && !entrySignatureValid(e, coordinatorKey)) add("SIGNATURE", line, "the coordinator's signature does not verify");
    if (i > 0 && e.type === "genesis") add("GENESIS_AGAIN", line, "a second genesis entry");
  });
  if (opts.expectedHead) {
    const h = entries[opts.expectedHead.seq];
    if (!h) add("TRUNCATED", undefined, `the ledger ends at seq ${entries.length - 1}, but entry ${opts.expectedHead.seq} is known to exist (entries were cut off)`);
    else if (h.hash !== opts.expectedHead.hash) add("HEAD_MISMATCH", opts.expectedHead.seq + 1, `entry ${opts.expectedHead.seq} is not the one known out of band (history was rewritten)`);
  }
  return coordinatorKeyB64;
}

/** One checker per entry type. */
function checkEntry(w: Walk, e: LedgerEntry, line: number): void {
  const b = e.body as Record<string, unknown>;
  const byCreator = (creator: string): { creator: string; tokens: number; devices: number } => {
    const x = w.enrollments.get(creator) ?? { creator, tokens: 0, devices: 0 };
    w.enrollments.set(creator, x);
    return x;
  };
  if (e.type === "policy") checkPolicyEntry(w, b, line);
  else if (e.type === "run-launch") checkRunLaunch(w, b, line);
  else if (e.type === "round") checkAggregation(w, b, line, TRAINING_ROUND);
  else if (e.type === "evaluation") checkAggregation(w, b, line, EVALUATION);
  else if (e.type === "attestation") checkAttestation(w, b, line);
  else if (e.type === "enrollment-token") byCreator(String(b.creator)).tokens++;
  else if (e.type === "enrollment") byCreator(String(b.creator)).devices++;
  else if (e.type === "device-offence") w.offences.set(String(b.deviceId), (w.offences.get(String(b.deviceId)) ?? 0) + 1);
  else if (e.type === "run-end") {
    const run = w.runs.get(String(b.runId));
    if (!run) w.add("END_WITHOUT_RUN", line, `run ${String(b.runId)} ended but was never launched`);
    else run.state = String(b.state);
  }
}

function checkPolicyEntry(w: Walk, b: Record<string, unknown>, line: number): void {
  try {
    w.policy = { file: verifyPolicy(b.policy), line };
    w.policyLines.push(w.policy);
  } catch (err) {
    w.add("POLICY_SIGNATURE", line, (err as Error).message);
  }
}

function checkRunLaunch(w: Walk, b: Record<string, unknown>, line: number): void {
  const runId = String(b.runId);
  if (w.runs.has(runId)) w.add("RUN_TWICE", line, `run ${runId} launched twice`);
  let spec: RunSpec | undefined;
  try {
    spec = parseRunSpec(b.spec);
  } catch (err) {
    w.add("RUN_SPEC", line, (err as Error).message);
  }
  const req = b.request as { body?: string; publicKey?: string; signature?: string } | undefined;
  try {
    if (!req?.body || !req.publicKey || !req.signature || !verifyBytes(publicKeyFromRaw(Buffer.from(req.publicKey, "base64")), req.body, Buffer.from(req.signature, "base64"))) {
      w.add("LAUNCH_REQUEST", line, `run ${runId}: the ML team's signed request does not verify`);
    } else if (spec && canonicalJson(JSON.parse(req.body)) !== canonicalJson(spec)) {
      w.add("LAUNCH_REQUEST", line, `run ${runId}: the recorded spec differs from what the ML team signed`);
    }
  } catch {
    w.add("LAUNCH_REQUEST", line, `run ${runId}: malformed signed request`);
  }
  const policy = w.policy;
  for (const m of launchInitialModelProblems({ runId, spec, initialModelHash: b.initialModelHash })) w.add("INITIAL_MODEL", line, m);
  w.runs.set(runId, { runId, launchedAtLine: line, spec, clipChain: new ClipChain(spec), initialModelHash: b.initialModelHash, policyLine: policy?.line, rounds: [], state: "launched", nextRound: 0, ...(policy ? { policyAtLaunch: policy.file } : {}), survivorsByRound: new Map(), eventByRound: new Map(), sampledByRound: new Map(), completed: new Map(), attested: new Map() });
  if (spec && policy) {
    const proj = projectRun(spec, policy.file.body.delta);
    for (const pv of checkRunAgainstPolicy({ noiseMultiplier: spec.noiseMultiplier, minSurvivors: spec.minSurvivors, signals: spec.signals, projectedDeviceEpsilon: proj.deviceEpsilon }, policy.file.body)) {
      w.add(`POLICY_${pv.rule}`, line, `run ${runId}: ${pv.message}`);
    }
  }
}

/** A round or evaluation entry as the generic checker reads it (unparsed fields stay in `body`). */
interface AggregationEntry {
  run: RunState;
  body: Record<string, unknown>;
  line: number;
  round: number;
  status: string;
  cohort: string[];
  survivors: string[];
}

/**
 * What differs between a training round and an evaluation round: both are SecAgg rounds whose
 * survivors are charged one DP event, so one checker walks them (checkAggregation) and these
 * hooks add what only one kind has.
 */
interface AggregationKind {
  /** How the entry is named in messages ("round", "evaluation"). */
  noun: string;
  /** The violation code of an entry whose run was never launched. */
  withoutRun: string;
  /** Checks that come before the cohort's (the training round's order and initial model). */
  checkFirst?: (w: Walk, e: AggregationEntry) => void;
  /** A completed entry's checks; returns the DP event its survivors are charged. */
  checkCompleted: (w: Walk, e: AggregationEntry) => DpEvent | undefined;
  /** The pool the cohort was sampled from, for population ε. */
  eligible: (e: AggregationEntry) => number;
  /** Whose device ε the entry's figures report. */
  reported: (deviceId: string, e: AggregationEntry) => boolean;
  /** Adds the entry's figures to its run. */
  record: (e: AggregationEntry, figures: { delta: number; epsNow: number[] }) => void;
}

/** A round or evaluation entry: its survivors within its cohort, their charge, and the run's figures. */
function checkAggregation(w: Walk, b: Record<string, unknown>, line: number, kind: AggregationKind): void {
  const runId = String(b.runId);
  const run = w.runs.get(runId);
  if (!run) {
    w.add(kind.withoutRun, line, `${kind.noun} of run ${runId}, which was never launched`);
    return;
  }
  // A device's view replaces the lists with a commitment: it verifies, but says nothing of who
  // was charged, so it is no ledger to count budgets from.
  if ("members" in b && !Array.isArray(b.cohort)) w.add("MEMBERS_WITHHELD", line, `run ${runId} ${kind.noun} ${String(b.round)}: the member lists are withheld (a device's view, not the ledger): nobody's ε can be counted from it`);
  const cohort = Array.isArray(b.cohort) ? (b.cohort as string[]) : [];
  const survivors = Array.isArray(b.survivors) ? (b.survivors as string[]) : [];
  const e: AggregationEntry = { run, body: b, line, round: Number(b.round), status: String(b.status), cohort, survivors };
  kind.checkFirst?.(w, e);
  if (survivors.some((s) => !cohort.includes(s))) w.add("SURVIVOR_NOT_IN_COHORT", line, `run ${runId} ${kind.noun} ${e.round}: a survivor is not in the cohort`);
  const event = e.status === "completed" ? kind.checkCompleted(w, e) : undefined;
  run.survivorsByRound.set(e.round, new Set(survivors));
  if (event) {
    run.eventByRound.set(e.round, event);
    run.sampledByRound.set(e.round, { event, eligible: kind.eligible(e), cohort: Math.max(1, cohort.length) });
    for (const d of survivors) {
      const list = w.deviceEvents.get(d) ?? [];
      list.push(event);
      w.deviceEvents.set(d, list);
    }
  }
  // A run's figures are at the δ of the policy in force at its launch.
  const delta = run.policyAtLaunch?.body.delta ?? w.delta;
  const epsNow = [...w.deviceEvents.entries()].filter(([d]) => kind.reported(d, e)).map(([, evs]) => safeEps(evs, delta));
  kind.record(e, { delta, epsNow });
}

const TRAINING_ROUND: AggregationKind = {
  noun: "round",
  withoutRun: "ROUND_WITHOUT_RUN",
  checkFirst: (w, { run, body: b, line, round }) => {
    const firstModel = firstRoundModelProblem(run.runId, run.initialModelHash, round, Number(b.attempt ?? 0), b.modelHashBefore);
    if (firstModel) w.add("INITIAL_MODEL", line, firstModel);
    if (round !== run.nextRound) w.add("ROUND_ORDER", line, `run ${run.runId}: round ${round} recorded when round ${run.nextRound} was expected`);
  },
  checkCompleted: (w, e) => checkCompletedRound(w, e.run, e.body, e.line, e),
  // The pool the cohort was drawn from, as the coordinator recorded it; without it, no
  // amplification is claimed (eligible = cohort).
  eligible: ({ body: b, cohort }) => {
    const eligible = Number((b.privacy as { eligible?: unknown } | undefined)?.eligible ?? cohort.length);
    return Number.isInteger(eligible) && eligible >= cohort.length ? eligible : cohort.length;
  },
  reported: (d, { cohort, survivors }) => cohort.includes(d) || survivors.includes(d),
  record: ({ run, body: b, round, status, cohort, survivors }, { delta, epsNow }) => {
    run.rounds.push({
      round,
      delta,
      attempt: Number(b.attempt ?? 0),
      status,
      cohort: cohort.length,
      survivors: survivors.length,
      worstDeviceEpsilon: epsNow.length ? Math.max(...epsNow) : 0,
      medianDeviceEpsilon: median(epsNow),
      populationEpsilon: safePop([...run.sampledByRound.values()], delta),
    });
  },
};

/** A federated evaluation: its survivors, and its charge recomputed from the signed spec, never taken on trust. */
const EVALUATION: AggregationKind = {
  noun: "evaluation",
  withoutRun: "EVALUATION_WITHOUT_RUN",
  checkCompleted: (w, e) => checkCompletedEvaluation(w, e.run, e.body, e.line, e),
  // An evaluation claims no amplification: its pool is its cohort.
  eligible: ({ cohort }) => cohort.length,
  reported: (d, { survivors }) => survivors.includes(d),
  record: ({ run, body: b, round, status, survivors }, { epsNow }) => {
    (run.evaluations ??= []).push({ round, afterRound: Number(b.afterRound), status, survivors: survivors.length, counts: b.counts ?? null, noiseMultiplier: Number(b.noiseMultiplier ?? 0), worstDeviceEpsilon: epsNow.length ? Math.max(...epsNow) : 0 });
  },
};

/** A released round: its mechanism, survivor floor and collusion margin; returns its DP event. */
function checkCompletedRound(w: Walk, run: RunState, b: Record<string, unknown>, line: number, r: { round: number; cohort: string[]; survivors: string[] }): DpEvent | undefined {
  const { round, cohort, survivors } = r;
  let event: DpEvent | undefined;
  try {
    event = parseDpEvent(b.mechanism);
  } catch (err) {
    w.add("MECHANISM", line, `run ${run.runId} round ${round}: ${(err as Error).message}`);
  }
  run.nextRound = round + 1;
  const minSurvivors = run.spec?.minSurvivors ?? 0;
  if (survivors.length < minSurvivors) w.add("TOO_FEW_SURVIVORS", line, `run ${run.runId} round ${round}: released with ${survivors.length} survivors < minSurvivors ${minSurvivors}`);
  const collusion = event && run.spec ? collusionShortfall(event, run.spec, cohort.length) : undefined;
  if (collusion) w.add("NOISE_IGNORES_COLLUDERS", line, `run ${run.runId} round ${round}: ${collusion}`);
  for (const m of run.clipChain.completed(round, b.privacy)) w.add("ADAPTIVE_CLIP", line, `run ${run.runId} ${m}`);
  run.completed.set(round, { line, attempt: Number(b.attempt ?? 0), modelHashBefore: typeof b.modelHashBefore === "string" ? b.modelHashBefore : undefined, survivors, clip: run.clipChain.clipOf(b.privacy) });
  return event;
}

function checkCompletedEvaluation(w: Walk, run: RunState, b: Record<string, unknown>, line: number, r: { round: number; cohort: string[]; survivors: string[] }): DpEvent | undefined {
  const { round, cohort, survivors } = r;
  const runId = run.runId;
  let event: DpEvent | undefined;
  try {
    event = parseDpEvent(b.mechanism);
  } catch (err) {
    w.add("MECHANISM", line, `run ${runId} evaluation ${round}: ${(err as Error).message}`);
  }
  if (run.spec && survivors.length < run.spec.minSurvivors) w.add("TOO_FEW_SURVIVORS", line, `run ${runId} evaluation ${round}: released with ${survivors.length} survivors < minSurvivors ${run.spec.minSurvivors}`);
  if (event && run.spec?.evaluation) {
    const s = run.spec;
    let want: DpEvent | undefined;
    try {
      want = evalDpEvent(calibrateEvalDp(evalDpInputs(s.evaluation!, { minSurvivors: s.minSurvivors, colluders: corruptCount(cohort.length, s.corruptTolerance), maxSummands: cohort.length, bits: s.bits })));
    } catch (err) {
      w.add("EVALUATION_MECHANISM", line, `run ${runId} evaluation ${round}: ${(err as Error).message}`);
    }
    if (want && canonicalJson(want) !== canonicalJson(event)) w.add("EVALUATION_MECHANISM", line, `run ${runId} evaluation ${round}: the recorded mechanism is not the one the run's evaluation spec implies for a cohort of ${cohort.length}`);
  } else if (event) w.add("EVALUATION_MECHANISM", line, `run ${runId} evaluation ${round}: the run's spec asks for no evaluation`);
  return event;
}

function checkAttestation(w: Walk, b: Record<string, unknown>, line: number): void {
  const runId = String(b.runId);
  const round = Number(b.round);
  const deviceId = String(b.deviceId);
  try {
    const key = publicKeyFromRaw(Buffer.from(String(b.identityPublicKey), "base64"));
    const sig = strictBase64(b.signature, 64);
    if (!sig || !verifyBytes(key, String(b.bodyJson), sig)) w.add("ATTESTATION_SIGNATURE", line, `device ${deviceId}'s attestation for run ${runId} round ${round} does not verify`);
    const body = JSON.parse(String(b.bodyJson)) as { deviceId?: string; runId?: string; round?: number; event?: unknown };
    if (body.deviceId !== deviceId || body.runId !== runId || body.round !== round) w.add("ATTESTATION_MISMATCH", line, `attestation body names another device, run or round`);
    const run = w.runs.get(runId);
    // Each round's mechanism depends on that round's cohort: compare with this round's own.
    const roundEvent = run?.eventByRound.get(round);
    if (roundEvent && canonicalJson(body.event) !== canonicalJson(roundEvent)) w.add("ATTESTATION_MECHANISM", line, `device ${deviceId} attests a mechanism that differs from round ${round}'s`);
    if (!run?.survivorsByRound.get(round)?.has(deviceId)) w.add("ATTESTATION_NOT_SURVIVOR", line, `device ${deviceId} attests round ${round} of ${runId} but is not among its survivors`);
    const facts = run?.completed.get(round);
    if (run && facts) {
      for (const m of attestationParameterMismatches(body as Record<string, unknown>, run.spec, facts)) w.add("ATTESTATION_PARAMETERS", line, `device ${deviceId}'s attestation for run ${runId} round ${round}: ${m}`);
      const set = run.attested.get(round) ?? new Set<string>();
      set.add(deviceId);
      run.attested.set(round, set);
    }
  } catch {
    w.add("ATTESTATION_MALFORMED", line, "malformed attestation");
  }
}

/** The checks that need the whole ledger (the reviewer's policy, missing attestations, budgets) and the findings. */
function summarize(w: Walk, opts: VerifyOptions, requested: number, o: { entries: number; coordinatorKeyB64: string | undefined; violations: Violation[] }): Findings {
  const { add, delta } = w;
  if (opts.policy) {
    const want = canonicalJson(opts.policy);
    if (!w.policyLines.some((p) => canonicalJson(p.file) === want)) add("POLICY_NOT_IN_LEDGER", undefined, "the policy file you hold is not the one recorded in the ledger");
  }
  for (const run of w.runs.values()) for (const m of missingAttestations(run)) add("MISSING_ATTESTATION", m.line, m.message);
  const extra = requested !== delta;
  const devices = [...w.deviceEvents.entries()].map(([deviceId, evs]) => ({ deviceId, rounds: evs.length, deviceEpsilon: safeEps(evs, delta), ...(extra ? { epsilonAtRequestedDelta: safeEps(evs, requested) } : {}) }));
  const limit = w.policy?.file.body.maxDeviceEpsilon;
  if (limit !== undefined) for (const d of devices) if (!(d.deviceEpsilon <= limit)) add("DEVICE_BUDGET", undefined, `device ${d.deviceId} reached ε ${fmt(d.deviceEpsilon)} > policy maximum ${limit} at the policy's δ = ${delta}`);
  return {
    ok: o.violations.length === 0,
    entries: o.entries,
    delta,
    ...(extra ? { requestedDelta: requested } : {}),
    coordinatorPublicKey: o.coordinatorKeyB64,
    runs: [...w.runs.values()].map(({ runId, launchedAtLine, spec, policyLine, rounds, state, evaluations }) => ({ runId, launchedAtLine, spec, policyLine, rounds, state, ...(evaluations ? { evaluations } : {}) })),
    devices,
    enrollments: [...w.enrollments.values()],
    offences: [...w.offences].map(([deviceId, count]) => ({ deviceId, count })),
    violations: o.violations,
  };
}

/** Nothing about a run may follow its run-end entry (e.g. a round released after a cancel). */
function runEndGuard(): (e: LedgerEntry, line: number, add: (code: string, line: number | undefined, message: string) => void) => void {
  const ended = new Map<string, number>();
  return (e, line, add) => {
    const runId = (e.body as { runId?: unknown }).runId;
    if (typeof runId !== "string") return;
    const endLine = ended.get(runId);
    if (endLine !== undefined) add("AFTER_RUN_END", line, `run ${runId}: a ${e.type} entry after the run ended (line ${endLine})`);
    else if (e.type === "run-end") ended.set(runId, line);
  };
}

/** What verify knows of a completed round when its attestations arrive. */
interface RoundFacts {
  line: number;
  attempt: number;
  modelHashBefore: string | undefined;
  survivors: string[];
  /** The C this round clipped to: the spec's, or with adaptive clipping the round's recorded one. */
  clip: number | undefined;
}

/** The δ of the last signed policy entry, if any (read before the semantic pass). */
function lastPolicyDelta(entries: readonly LedgerEntry[]): number | undefined {
  let d: number | undefined;
  for (const e of entries) {
    if (e.type !== "policy") continue;
    try {
      d = verifyPolicy((e.body as { policy?: unknown }).policy).body.delta;
    } catch {
      // reported as POLICY_SIGNATURE by the semantic pass
    }
  }
  return d;
}

/**
 * The parameters a device attests must be the round's: its attempt and starting model, and the
 * run's mechanism, clip, noise multiplier and minimum survivors. A device that attested other
 * parameters did not vouch for the mechanism this round is charged with.
 */
function attestationParameterMismatches(body: Record<string, unknown>, spec: RunSpec | undefined, facts: RoundFacts): string[] {
  const out: string[] = [];
  const want: [string, unknown][] = [["attempt", facts.attempt]];
  if (facts.modelHashBefore !== undefined) want.push(["modelHash", facts.modelHashBefore]);
  if (spec) want.push(["mechanism", spec.mechanism], ["clip", facts.clip ?? spec.clip], ["noiseMultiplier", spec.noiseMultiplier], ["minSurvivors", spec.minSurvivors]);
  for (const [k, v] of want) if (body[k] !== v) out.push(`${k} is ${JSON.stringify(body[k])}, the round's is ${JSON.stringify(v)}`);
  return out;
}

/**
 * The noise must be counted only for the honest survivors: minSurvivors minus the colluders the
 * run tolerates (⌈corruptTolerance · cohort⌉). A mechanism counting more noise shares than that
 * overstates the noise a coalition of colluders leaves in.
 */
function collusionShortfall(event: DpEvent, spec: RunSpec, cohort: number): string | undefined {
  if (event.kind !== "distributedDiscreteGaussian") return undefined;
  const honest = spec.minSurvivors - corruptCount(cohort, spec.corruptTolerance);
  return event.devices > honest ? `the mechanism counts ${event.devices} noise shares, but only ${honest} honest survivors are assured (minSurvivors ${spec.minSurvivors} − ⌈${spec.corruptTolerance} · ${cohort}⌉ colluders)` : undefined;
}

/** Survivors of completed rounds with no attestation: their charge rests on the coordinator's word alone. */
function missingAttestations(run: { runId: string; completed: Map<number, RoundFacts>; attested: Map<number, Set<string>> }): { line: number; message: string }[] {
  const out: { line: number; message: string }[] = [];
  for (const [round, facts] of run.completed) {
    const got = run.attested.get(round) ?? new Set<string>();
    const missing = facts.survivors.filter((d) => !got.has(d));
    if (missing.length > 0) out.push({ line: facts.line, message: `run ${run.runId} round ${round}: ${missing.length} survivor(s) without a signed attestation (${missing.slice(0, 5).join(", ")}${missing.length > 5 ? ", …" : ""})` });
  }
  return out;
}

function safeEps(evs: DpEvent[], delta: number): number {
  try {
    return deviceEpsilon(evs, delta);
  } catch {
    return Infinity;
  }
}

function safePop(rounds: readonly { event: DpEvent; eligible: number; cohort: number }[], delta: number): number {
  try {
    return populationEpsilonFixedSize(rounds, delta);
  } catch {
    return Infinity;
  }
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toFixed(3) : "∞";
}
