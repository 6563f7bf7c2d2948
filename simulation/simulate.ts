/**
 * `tacit simulate`: a real coordinator (gRPC on loopback, BullMQ on Redis) and one real device
 * client per user file, hosted on worker threads; an ML team launches one run and this harness
 * evaluates every new global checkpoint on held-out data. `--centralized` trains the same model
 * on the pooled training data instead, reporting the same metrics.
 */
import { Worker } from "node:worker_threads";
import { availableParallelism } from "node:os";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, copyFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { tmpdir } from "node:os";
import pino from "pino";
import { readDevactionsDir, splitHoldout, type UserSequence } from "../shared/data/index.ts";
import { buildExamples, concatExamples, DEFAULT_MODEL_SPEC, describePersonalization, exportModel, exportRelease, exportReleasedMixture, initBackend, loadCheckpoint, parameterCount, Trainer, type LearningRateSchedule } from "../shared/model/index.ts";
import { findRelease, modelReleases } from "../shared/ledger/model-releases.ts";
import { DEFAULT_DEADLINES, parseRunSpec, perRoundEvent, projectRun, type RunSpec } from "../shared/run/index.ts";
import { privateKeyFromPem, signBytes } from "../shared/crypto/index.ts";
import { calibrateDistributedDp, calibrateNoiseMultiplier, deviceEpsilon, populationEpsilon, roundEvent, signPolicy, type DpEvent } from "../shared/dp/index.ts";
import { startCoordinator, type Coordinator, type CoordinatorOptions } from "../coordinator/coordinator.ts";
import { DEFAULT_SERVER_LIMITS } from "../coordinator/server/server-limits.ts";
import { DEFAULT_ADDRESS_LIMITS } from "../coordinator/server/authenticator.ts";
import { readLedgerText } from "../coordinator/ledger/segment-writer.ts";
import { CoordinatorClient, type RunStatus } from "../client/transport/coordinator-client.ts";
import { AnchorDistributions, evaluateModel, evaluateModelYielding, type EvalMetrics, type EvalSet, type Evaluation, type ReleaseMix } from "./evaluation.ts";
import { DEFAULT_CORRUPT_TOLERANCE, resolveRecipe, type Recipe } from "./recipe.ts";
import { prepareInitialModel, withLocalStatistics, type InitialModel } from "./initial-model.ts";
import type { HostInit, HostMessage, SimDeviceSpec } from "./messages.ts";
import { writeJsonAtomic } from "./write-json-atomic.ts";
import { SimulationProgress } from "./progress.ts";
import { addDeviceLoss, type RoundLoss } from "./round-loss.ts";
import type { FederatedEvalMetrics, RoundMetrics, SimulationMetrics } from "./metrics-types.ts";
import type { EvaluationRecord } from "../coordinator/rounds/evaluation-round.ts";
import { LOSS_CAP_NATS } from "../shared/eval/index.ts";

export type { RoundMetrics, SimulationMetrics };

export interface SimulateOptions {
  dataset: string;
  clients?: number;
  /** Default: 10 for DP runs, 20 otherwise (simulation/recipe.ts). */
  rounds?: number;
  evalDir?: string;
  /** Public per-user files to pretrain the initial model on (cached), e.g. data/devactions. */
  pretrain?: string;
  out: string;
  centralized: boolean;
  dropout: number;
  /** Fraction of the cohort SecAgg and the noise must tolerate as colluders (default DEFAULT_CORRUPT_TOLERANCE, 0.1). */
  corruptTolerance?: number;
  noiseMultiplier?: number;
  targetEpsilon?: number;
  /** Default: 1 for DP runs, 5 otherwise. */
  clip?: number;
  minSurvivors?: number;
  delta: number;
  workers?: number;
  stateDir?: string;
  cohort?: number;
  localEpochs?: number;
  /** Cap on a device's SGD steps per round (default: the recipe's). */
  maxLocalSteps?: number;
  serverOptimizer?: "fedavg" | "fedavgm" | "fedadam";
  serverLearningRate?: number;
  serverLearningRateSchedule?: LearningRateSchedule;
  /** Prior strength α of on-device personalization (shared/model/personalize.ts). */
  personalizationStrength?: number;
  /** Adaptive clipping (Andrew et al. 2021) with the reference defaults; `clip` is the initial C. */
  adaptiveClip?: boolean;
  /** The federated model's weight in the released mixture with the public model (default: recipe). */
  releaseMix?: number;
  seed: number;
  quiet?: boolean;
  /** Aborting it stops the simulation at once; its coordinator, Redis and devices are stopped. */
  signal?: AbortSignal;
  /** Called after every round with the metrics so far (`complete: false`). */
  onRound?: (partial: SimulationMetrics) => void;
}

export class SimulationError extends Error {
  override name = "SimulationError";
}

/** The simulation was stopped (a signal) before its run ended. */
export class SimulationInterrupted extends Error {
  override name = "SimulationInterrupted";
}

function throwIfStopped(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new SimulationInterrupted(signal.reason instanceof Error ? signal.reason.message : "interrupted");
}

/** Rejects with SimulationInterrupted when `signal` aborts; never settles otherwise. */
function rejectWhenStopped(signal: AbortSignal | undefined): Promise<never> {
  return new Promise((_, reject) => signal?.addEventListener("abort", () => reject(new SimulationInterrupted("interrupted")), { once: true }));
}

interface Prepared {
  users: UserSequence[];
  train: UserSequence[];
  /** The eval set is the last HELD_OUT_FRACTION of each user: devices can hold it out themselves. */
  heldOutIsEvalSet: boolean;
  evalSets: EvalSet[];
  evalSource: string;
}

/** The eval set's share of each user's sequence (the most recent part), also the devices' held-out slice. */
const HELD_OUT_FRACTION = 0.1;

/**
 * Federated evaluation after every round, when the devices' held-out slices are exactly the
 * eval set and the run is not DP (noised evaluation would spend budget the ε calibration did
 * not plan for; exact counts would void a DP run's ε). Undefined when it cannot apply.
 */
function simulationEvaluation(data: Prepared, spec: RunSpec): RunSpec["evaluation"] {
  if (!data.heldOutIsEvalSet || spec.noiseMultiplier > 0) return undefined;
  const largest = Math.max(1, ...data.evalSets.map((s) => s.examples.count));
  const evaluation = { everyRounds: 1, heldOutFraction: HELD_OUT_FRACTION, maxExamplesPerDevice: Math.min(100_000, largest), noiseMultiplier: 0 };
  try {
    parseRunSpec({ ...spec, evaluation });
    return evaluation;
  } catch {
    return undefined; // e.g. the counts would not fit the modulus: no federated evaluation
  }
}

async function prepare(opts: SimulateOptions): Promise<Prepared> {
  let users = await readDevactionsDir(opts.dataset);
  if (opts.clients !== undefined) {
    if (opts.clients > users.length) throw new SimulationError(`--clients ${opts.clients} exceeds the ${users.length} user files in ${opts.dataset}`);
    users = users.slice(0, opts.clients);
  }
  const spec = DEFAULT_MODEL_SPEC;
  if (opts.evalDir) {
    const evalUsers = await readDevactionsDir(opts.evalDir);
    const byId = new Map(users.map((u) => [u.userId, u]));
    return {
      users,
      train: users,
      heldOutIsEvalSet: false,
      evalSets: evalUsers.map((e) => {
        const ctx = byId.get(e.userId);
        return { userId: e.userId, examples: buildExamples(e, spec, ctx ? { contextFrom: ctx } : undefined) };
      }),
      evalSource: resolve(opts.evalDir),
    };
  }
  const splits = users.map((u) => ({ u, ...splitHoldout(u, HELD_OUT_FRACTION) }));
  return {
    users,
    train: splits.map((s) => s.train),
    heldOutIsEvalSet: true,
    evalSets: splits.map((s) => ({ userId: s.u.userId, examples: buildExamples(s.eval, spec, { contextFrom: s.train }) })),
    evalSource: "last 10% of each user's sequence",
  };
}

function privacyNote(z: number): string {
  return z > 0
    ? "device ε: composition over the rounds a device joined, no amplification; population ε assumes the coordinator's uniform cohort sampling"
    : "noise multiplier 0: updates are clipped and securely aggregated but carry no DP noise (ε = ∞)";
}

function median(xs: number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export async function runSimulation(opts: SimulateOptions): Promise<SimulationMetrics> {
  const started = Date.now();
  const data = withLocalStatistics(await prepare(opts), DEFAULT_MODEL_SPEC);
  const recipe = resolveRecipe({ ...opts, dp: !opts.centralized && ((opts.noiseMultiplier ?? 0) > 0 || opts.targetEpsilon !== undefined), pretrained: Boolean(opts.pretrain) }, data.train.length);
  const initial = await prepareInitialModel(opts, recipe.model);
  const backend = await initBackend();
  const spec = recipe.model;
  const evalTrainer = new Trainer(spec);
  const progress = new SimulationProgress(recipe.rounds, Boolean(opts.quiet));
  const trainEvents = data.train.reduce((a, u) => a + u.events.length, 0);
  const evalEvents = data.evalSets.reduce((a, s) => a + s.examples.count, 0);
  try {
    // The public model's distributions are recorded in the same pass when the run releases a mixture with it.
    const anchor = recipe.releaseMix !== undefined ? new AnchorDistributions(evalTrainer.outputs) : undefined;
    const publicOnly = evaluateModel(evalTrainer, initial.weights, data.evalSets, recipe.personalization, { record: anchor });
    const mix = anchor && { anchor, federatedWeight: recipe.releaseMix! };
    const release = mix ? { release: { federatedWeight: mix.federatedWeight, publicModelSha256: initial.info.sha256 } } : {};
    const extra = { initialModel: initial.info, publicOnly: publicOnly.eval, publicOnlyPersonalized: publicOnly.evalPersonalized, personalization: describePersonalization(recipe.personalization), ...release };
    // Every metrics.json written along the way carries the public-only baseline too.
    const run = { ...opts, onRound: opts.onRound && ((m: SimulationMetrics) => opts.onRound!({ ...m, ...extra })) };
    if (opts.centralized) return { ...(await runCentralized(run, recipe, initial, data, backend, evalTrainer, progress, started, trainEvents, evalEvents)), ...extra };
    return { ...(await runFederated(run, recipe, initial, data, backend, evalTrainer, progress, started, trainEvents, evalEvents, mix)), ...extra };
  } finally {
    progress.stop();
    evalTrainer.dispose();
  }
}

async function runCentralized(opts: SimulateOptions, recipe: Recipe, initial: InitialModel, data: Prepared, backend: string, trainer: Trainer, progress: SimulationProgress, started: number, trainEvents: number, evalEvents: number): Promise<SimulationMetrics> {
  const spec = recipe.model;
  const parts = data.train.map((u) => buildExamples(u, spec));
  const pooled = concatExamples(parts, spec.window);
  let weights = initial.weights;
  const rounds: RoundMetrics[] = [];
  const snapshot = (complete: boolean): SimulationMetrics => ({
    mode: "centralized", complete, dataset: resolve(opts.dataset), evalSource: data.evalSource, users: data.users.length, trainEvents, evalEvents,
    rounds, final: rounds.at(-1), backend, parameterCount: parameterCount(spec), wallSeconds: (Date.now() - started) / 1000,
    privacy: { noiseMultiplier: 0, clip: 0, delta: opts.delta, minSurvivors: 0, mechanism: "none", note: "centralized baseline: pooled raw data, no privacy" },
  });
  for (let r = 0; r < recipe.rounds; r++) {
    throwIfStopped(opts.signal);
    const t0 = Date.now();
    progress.startRound(r, 1, "centralized epoch");
    trainer.setWeights(weights);
    const res = await trainer.train(pooled, { epochs: 1, ...recipe.centralized, seed: opts.seed + r });
    weights = trainer.getWeights();
    const ev = evaluateModel(trainer, weights, data.evalSets, recipe.personalization);
    const m: RoundMetrics = {
      round: r, status: "completed", trainLoss: res.loss, eval: ev.eval, evalPersonalized: ev.evalPersonalized, cohort: 1, survivors: 1, declines: 0, phases: null,
      deviceEpsilon: { max: Infinity, median: Infinity }, populationEpsilon: Infinity, wallSeconds: (Date.now() - t0) / 1000,
    };
    rounds.push(m);
    progress.endRound(r, m);
    opts.onRound?.(snapshot(false));
  }
  // The final model, exported as `tacit model export` writes one (no ledger: no privacy here).
  await exportModel(join(opts.out, "model"), spec, weights, { kind: "centralized-simulation", epochs: recipe.rounds });
  return snapshot(true);
}

function buildRunSpec(opts: SimulateOptions, recipe: Recipe, initial: InitialModel, n: number, noiseMultiplier: number): RunSpec {
  return {
    name: "simulation",
    model: recipe.model,
    rounds: recipe.rounds,
    cohortSize: recipe.cohort,
    minSurvivors: recipe.minSurvivors,
    populationSize: n,
    ...recipe.training,
    ...(initial.ref ? { initialModel: initial.ref } : {}),
    ...(recipe.adaptiveClip ? { adaptiveClip: recipe.adaptiveClip } : {}),
    clip: recipe.clip,
    noiseMultiplier,
    delta: opts.delta,
    mechanism: "ddgauss",
    bits: 32,
    dropoutTolerance: Math.min(0.9, Math.max(0.1, opts.dropout * 1.5)),
    corruptTolerance: opts.corruptTolerance ?? DEFAULT_CORRUPT_TOLERANCE,
    signals: ["commit", "file-change"],
    deadlines: { ...DEFAULT_DEADLINES, selectionMs: 30_000, advertiseMs: 60_000, shareMs: 60_000, maskedInputMs: 900_000, unmaskMs: 60_000 },
    seed: opts.seed,
  };
}

/**
 * The noise multiplier of the run: the one asked for, or with --target-epsilon the smallest
 * that keeps a device within the target over all rounds.
 */
function calibratedNoise(opts: SimulateOptions, recipe: Recipe, initial: InitialModel, n: number): number {
  if (opts.targetEpsilon === undefined) return opts.noiseMultiplier ?? 0;
  // Calibrate against the real per-round event (distributed discrete Gaussian with its
  // rounding inflation), so that devices consenting to the target accept every round.
  const base = buildRunSpec(opts, recipe, initial, n, 1);
  // With adaptive clipping z must stay below 2σ_b; at and above it the count alone (multiplier
  // 2σ_b) is the most noise there can be, so the search sees ε flatten there and stops short.
  const countCap = recipe.adaptiveClip ? 2 * recipe.adaptiveClip.countStddev : Infinity;
  const noiseMultiplier = calibrateNoiseMultiplier({ targetEpsilon: opts.targetEpsilon, delta: opts.delta, rounds: recipe.rounds, eventFor: (z) => (z >= countCap ? { kind: "gaussian", noiseMultiplier: countCap } : perRoundEvent({ ...base, noiseMultiplier: z })) });
  if (noiseMultiplier >= countCap) throw new SimulationError(`adaptive clipping: ε ${opts.targetEpsilon} needs noise multiplier ≥ ${countCap.toFixed(3)} = 2σ_b (σ_b = 0.05 · cohort ${recipe.cohort}); the clip count alone would spend it — use more devices or fixed clipping`);
  return noiseMultiplier;
}

/** What a federated simulation holds once its coordinator is up; each stage below reads it. */
interface FederatedSim {
  opts: SimulateOptions;
  recipe: Recipe;
  data: Prepared;
  spec: RunSpec;
  noiseMultiplier: number;
  coordinator: Coordinator;
  address: string;
  caFile: string;
  /** Every device host started so far: terminated however the simulation ends. */
  workers: Worker[];
  progress: SimulationProgress;
  /** The released mixture with the public model, when the run releases one (recipe.releaseMix). */
  mix: ReleaseMix | undefined;
}

/** The simulated devices' reports, gathered from the host threads as they arrive. */
interface DeviceReports {
  /** The DP events each device was charged (one per round it submitted to). */
  perDevice: Map<string, { events: DpEvent[] }>;
  /** Example-weighted training loss per round over the devices that submitted, and how many diverged. */
  roundLoss: Map<number, RoundLoss>;
  roundDeclines: Map<number, number>;
  /** Set when a device host fails: the polling loop stops the simulation with it. */
  fatal: string | undefined;
  /** The per-round DP event of this run (what each submitting device is charged). */
  roundEvent: DpEvent;
}

/**
 * Every simulated device is a real client with its own connection and its own enrollment, and
 * all of them come from loopback: to the coordinator the whole fleet is one address, like a
 * NAT'd office. Its per-address bounds (defences against one remote peer hoarding sockets, 64,
 * or enrolling faster than 100 at once then 10/s) would refuse the 65th device, so the
 * simulation's own coordinator admits the fleet: twice its size in connections (a device that
 * goes offline and comes back may hold a closing socket beside its new one) plus the principals'
 * clients, and one enrollment per device in a single burst.
 */
export function simulationCoordinatorBounds(devices: number): Pick<CoordinatorOptions, "limits" | "addressLimits"> {
  return {
    limits: { maxConnectionsPerPeer: Math.max(DEFAULT_SERVER_LIMITS.maxConnectionsPerPeer, 2 * devices + 16) },
    addressLimits: { ...DEFAULT_ADDRESS_LIMITS, enroll: { ...DEFAULT_ADDRESS_LIMITS.enroll, burst: Math.max(DEFAULT_ADDRESS_LIMITS.enroll.burst, devices + 16) } },
  };
}

async function runFederated(opts: SimulateOptions, recipe: Recipe, initial: InitialModel, data: Prepared, backend: string, evalTrainer: Trainer, progress: SimulationProgress, started: number, trainEvents: number, evalEvents: number, mix: ReleaseMix | undefined): Promise<SimulationMetrics> {
  const n = data.train.length;
  const ownState = !opts.stateDir;
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), "tacit-sim-"));
  const logger = pino({ level: process.env.TACIT_LOG_LEVEL ?? "warn" }, pino.destination(2));
  const noiseMultiplier = calibratedNoise(opts, recipe, initial, n);
  const trainingSpec = buildRunSpec(opts, recipe, initial, n, noiseMultiplier);
  const evaluation = simulationEvaluation(data, trainingSpec);
  const spec: RunSpec = evaluation ? { ...trainingSpec, evaluation } : trainingSpec;
  let coordinator: Coordinator | undefined;
  const workers: Worker[] = [];
  try {
    coordinator = await startCoordinator({ stateDir, autoInit: true, logger, ...simulationCoordinatorBounds(n) });
    const sim: FederatedSim = { opts, recipe, data, spec, noiseMultiplier, coordinator, address: `localhost:${coordinator.port}`, caFile: join(coordinator.paths.root, "tls", "ca.pem"), workers, progress, mix };
    const admin = principalClient(sim, "admin-1");
    const mlTeam = principalClient(sim, "ml-team-1");
    // With federated evaluation each device holds its whole sequence and keeps the held-out
    // slice (the eval set's part of that user) out of training itself.
    const devices = await enrollmentTokens(admin, evaluation ? data.users : data.train);
    const reports = await startDeviceHosts(sim, devices);
    await waitForDevices(sim, n);
    if (noiseMultiplier > 0) await installReviewerPolicy(sim);
    const specJson = JSON.stringify(spec);
    const mlTeamKey = principalKey(sim, "ml-team-1");
    const launched = await mlTeam.unary<object, RunStatus>("RunControl", "LaunchRun", { specJson, requestSignature: Buffer.from(signBytes(mlTeamKey.privateKey, specJson)) });
    const runId = launched.runId;
    const rounds: RoundMetrics[] = [];
    const snapshot = (complete: boolean): SimulationMetrics => ({
      mode: "federated", complete, dataset: resolve(opts.dataset), evalSource: data.evalSource, users: n, trainEvents, evalEvents,
      rounds, final: rounds.filter((x) => x.status === "completed").at(-1), backend, parameterCount: parameterCount(spec.model), wallSeconds: (Date.now() - started) / 1000,
      spec, runId,
      privacy: { noiseMultiplier, clip: spec.clip, delta: opts.delta, minSurvivors: spec.minSurvivors, mechanism: spec.mechanism, note: privacyNote(noiseMultiplier) },
    });
    await followRun(sim, { mlTeam, runId, reports, rounds, evalTrainer, onRound: () => opts.onRound?.(snapshot(false)) });
    await writeRunOutputs(sim, runId);
    admin.close();
    mlTeam.close();
    return snapshot(true);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
    await coordinator?.stop();
    if (ownState) rmSync(stateDir, { recursive: true, force: true });
  }
}

/** The key a principal the coordinator created at init (admin-1, ml-team-1, reviewer-1) signs with. */
function principalKey(sim: FederatedSim, keyId: string): ReturnType<typeof privateKeyFromPem> {
  return privateKeyFromPem(readFileSync(join(sim.coordinator.paths.keysOut, `${keyId}.key`), "utf8"));
}

/** A gRPC client that authenticates as that principal. */
function principalClient(sim: FederatedSim, keyId: string): CoordinatorClient {
  return new CoordinatorClient({ address: sim.address, caFile: sim.caFile, credentials: { keyId, privateKey: principalKey(sim, keyId).privateKey } });
}

/** One single-use enrollment token per simulated person, created by the admin as an operator would. */
async function enrollmentTokens(admin: CoordinatorClient, users: UserSequence[]): Promise<SimDeviceSpec[]> {
  const devices: SimDeviceSpec[] = [];
  for (const u of users) {
    const t = await admin.unary<object, { token: string }>("Enrollment", "CreateToken", { ttlSeconds: 3600, label: u.userId });
    devices.push({ userId: u.userId, token: t.token, events: u.events.map((e) => [e.time, e.token]) });
  }
  return devices;
}

/** Starts the worker threads that host the devices; resolves once every host has enrolled and is ready. */
async function startDeviceHosts(sim: FederatedSim, devices: SimDeviceSpec[]): Promise<DeviceReports> {
  const { opts, spec } = sim;
  const hostCount = Math.max(1, Math.min(opts.workers ?? Math.min(2, availableParallelism()), devices.length));
  // Each simulated person consents to the target ε (if any): the device guard enforces it.
  // They accept the collusion rate the simulation is configured for (the SecAgg floors).
  const limits = { maxDeviceEpsilon: opts.targetEpsilon ?? Infinity, delta: opts.delta, minNoiseMultiplier: 0, minSurvivors: 2, secagg: { dropoutFraction: 0, corruptFraction: spec.corruptTolerance } };
  const dpProbe = calibrateDistributedDp({ mechanism: spec.mechanism, clip: spec.clip, noiseMultiplier: sim.noiseMultiplier, minSurvivors: spec.minSurvivors, expectedSurvivors: spec.minSurvivors, bits: spec.bits, dimension: parameterCount(spec.model), rotationSeed: new Uint8Array(32), ...(spec.adaptiveClip ? { adaptiveClip: { countStddev: spec.adaptiveClip.countStddev } } : {}) });
  const reports: DeviceReports = { perDevice: new Map(), roundLoss: new Map(), roundDeclines: new Map(), fatal: undefined, roundEvent: roundEvent(dpProbe) };
  const ready: Promise<void>[] = [];
  for (let h = 0; h < hostCount; h++) {
    const init: HostInit = { address: sim.address, caFile: sim.caFile, devices: devices.filter((_, i) => i % hostCount === h), limits, dropout: opts.dropout, hostIndex: h };
    const w = new Worker(new URL("./worker-entry.mjs", import.meta.url), { workerData: init });
    sim.workers.push(w);
    ready.push(
      new Promise<void>((res, rej) => {
        w.on("message", (m: HostMessage) => {
          if (m.type === "ready") res();
          else if (m.type === "fatal") {
            reports.fatal = m.message;
            rej(new SimulationError(`device host ${h} failed: ${m.message}`));
          } else if (m.type === "event") recordDeviceEvent(reports, m, sim.progress);
          else if (m.type === "disconnected") sim.coordinator.log.info({ userId: m.userId, detail: m.detail }, "simulated device lost its Subscribe stream");
          else if (m.type === "stalled") sim.coordinator.log.warn({ host: m.hostIndex, blockedMs: m.blockedMs }, "a device host's event loop was blocked: its devices' keepalive pings waited meanwhile");
        });
        w.on("error", (err) => rej(new SimulationError(`device host ${h} crashed: ${err.message}`)));
      }),
    );
  }
  await Promise.race([Promise.all(ready), rejectWhenStopped(opts.signal)]);
  return reports;
}

/** A submitted update charges its device this run's round event and adds to the round's loss; a decline is counted. */
function recordDeviceEvent(reports: DeviceReports, m: Extract<HostMessage, { type: "event" }>, progress: SimulationProgress): void {
  const e = m.event;
  if (e.type === "submitted") {
    const d = reports.perDevice.get(m.userId) ?? { events: [] };
    d.events.push(reports.roundEvent);
    reports.perDevice.set(m.userId, d);
    reports.roundLoss.set(e.round, addDeviceLoss(reports.roundLoss.get(e.round) ?? { sum: 0, n: 0, diverged: 0 }, e.loss, e.examples));
    progress.deviceSubmitted(e.round);
  } else if (e.type === "declined") {
    reports.roundDeclines.set(e.round, (reports.roundDeclines.get(e.round) ?? 0) + 1);
  }
}

/** Waits (up to 30 s) until every device's Subscribe stream is registered. */
async function waitForDevices(sim: FederatedSim, n: number): Promise<void> {
  const connectDeadline = Date.now() + 30_000;
  while (sim.coordinator.hub.eligibleDevices().length < n && Date.now() < connectDeadline) {
    throwIfStopped(sim.opts.signal);
    await new Promise((r) => setTimeout(r, 50));
  }
  throwIfStopped(sim.opts.signal);
}

/** A reviewer signs the policy this run is held to, and installs it on the coordinator. */
async function installReviewerPolicy(sim: FederatedSim): Promise<void> {
  const { opts, spec } = sim;
  const reviewerKey = principalKey(sim, "reviewer-1");
  const reviewer = principalClient(sim, "reviewer-1");
  const projected = projectRun(spec, opts.delta).deviceEpsilon;
  const policy = signPolicy(
    {
      version: 1,
      minNoiseMultiplier: sim.noiseMultiplier,
      maxDeviceEpsilon: Math.min(1e6, opts.targetEpsilon ?? Math.ceil(projected * 1.01 * 1000) / 1000),
      delta: opts.delta,
      minSurvivors: spec.minSurvivors,
      allowedSignals: spec.signals,
      note: "signed by the simulation's reviewer key for this run",
    },
    reviewerKey.privateKey,
    reviewerKey.publicKey,
  );
  await reviewer.unary("Ledger", "SetPolicy", { json: JSON.stringify(policy) });
  reviewer.close();
}

/** What following the run needs besides the simulation itself. */
interface RunFollower {
  mlTeam: CoordinatorClient;
  runId: string;
  reports: DeviceReports;
  /** Filled in as rounds end, in the order the coordinator records them. */
  rounds: RoundMetrics[];
  evalTrainer: Trainer;
  /** Called after every round with the metrics so far. */
  onRound: () => void;
}

/** Polls the run's status until it ends, turning each newly recorded round into metrics. */
async function followRun(sim: FederatedSim, f: RunFollower): Promise<void> {
  const { spec, progress } = sim;
  let lastWall = Date.now();
  let seen = 0;
  let roundIndex = 0;
  progress.startRound(0, spec.cohortSize, "advertise");
  for (;;) {
    if (f.reports.fatal) throw new SimulationError(f.reports.fatal);
    throwIfStopped(sim.opts.signal);
    const st = await f.mlTeam.unary<object, RunStatus>("RunControl", "GetRun", { runId: f.runId });
    progress.phase(st.currentPhase);
    const federated = federatedByRound(st.evaluationsJson);
    // An evaluation lands after its training round's metrics: attach it to earlier rounds too.
    const attach = (m: RoundMetrics): void => {
      const fe = federated.get(m.round);
      if (fe && m.status === "completed") m.federatedEval = fe;
    };
    f.rounds.forEach(attach);
    while (seen < st.rounds.length) {
      const r = st.rounds[seen]!;
      seen += 1;
      const m = await roundMetrics(sim, f, r, lastWall);
      lastWall = Date.now();
      attach(m);
      f.rounds.push(m);
      progress.endRound(r.round, m);
      f.onRound();
      f.reports.roundLoss.delete(r.round);
      if (r.status === "completed") roundIndex = r.round + 1;
      if (roundIndex < spec.rounds) progress.startRound(roundIndex, spec.cohortSize, st.currentPhase);
    }
    if (st.state === "completed" || st.state === "failed" || st.state === "cancelled") {
      if (st.state !== "completed") throw new SimulationError(`run ${f.runId} ${st.state}: ${st.error}`);
      return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Each device's ε over the rounds it was charged for. Devices charged for the same rounds share
 * one composition: one takes 10–20 ms, and 934 of them done one by one blocked the coordinator's
 * thread for 7 s after a round (past half the devices' keepalive timeout).
 */
export function deviceEpsilons(histories: readonly DpEvent[][], delta: number): number[] {
  const byHistory = new Map<string, number>();
  return histories.map((events) => {
    if (events.length === 0) return 0;
    const key = JSON.stringify(events);
    let eps = byHistory.get(key);
    if (eps === undefined) {
      eps = deviceEpsilon(events, delta);
      byHistory.set(key, eps);
    }
    return eps;
  });
}

/**
 * One round's metrics: the new global model evaluated on the held-out data (an aborted round
 * left the model as it was, so it repeats the previous evaluation), the training loss the
 * devices reported, and device and population ε so far.
 */
async function roundMetrics(sim: FederatedSim, f: RunFollower, r: RunStatus["rounds"][number], lastWall: number): Promise<RoundMetrics> {
  const { opts, spec, noiseMultiplier, recipe, data } = sim;
  const phases = JSON.parse(r.phaseCountsJson) as Record<string, unknown>;
  let evaluated: Evaluation;
  let nextClip: number | undefined;
  const previous = f.rounds.at(-1);
  if (r.status !== "completed" && previous) {
    evaluated = { eval: previous.eval, evalPersonalized: previous.evalPersonalized!, ...(previous.evalFederatedOnly ? { evalFederatedOnly: previous.evalFederatedOnly } : {}) };
  } else {
    const cp = await sim.coordinator.checkpoints.latest(f.runId);
    // The coordinator serves the next round on this thread meanwhile: evaluate in slices.
    evaluated = await evaluateModelYielding(f.evalTrainer, cp!.weights, data.evalSets, recipe.personalization, { mix: sim.mix });
    const c = (cp!.serverState as { clip?: unknown } | undefined)?.clip;
    if (typeof c === "number") nextClip = c;
  }
  const deviceEps = deviceEpsilons([...f.reports.perDevice.values()].map((d) => d.events), opts.delta);
  const completedRounds = f.rounds.filter((x) => x.status === "completed").length + (r.status === "completed" ? 1 : 0);
  const loss = f.reports.roundLoss.get(r.round);
  return {
    round: r.round,
    status: r.status,
    trainLoss: loss && loss.n > 0 ? loss.sum / loss.n : null,
    divergedDevices: loss?.diverged ?? 0,
    eval: evaluated.eval,
    evalPersonalized: evaluated.evalPersonalized,
    ...(evaluated.evalFederatedOnly ? { evalFederatedOnly: evaluated.evalFederatedOnly } : {}),
    cohort: r.cohort,
    survivors: r.survivors,
    declines: f.reports.roundDeclines.get(r.round) ?? 0,
    phases,
    secagg: phases.secagg,
    deviceEpsilon: { max: Math.max(0, ...deviceEps), median: median(deviceEps) },
    populationEpsilon: noiseMultiplier > 0 ? populationEpsilon({ perRound: f.reports.roundEvent, samplingProbability: spec.cohortSize / spec.populationSize, rounds: completedRounds, delta: opts.delta }) : Infinity,
    wallSeconds: (Date.now() - lastWall) / 1000,
    ...(nextClip !== undefined ? { nextClip } : {}),
  };
}

/** What a reviewer and a user of the model get: the policy, the ledger and its head, and the final model. */
async function writeRunOutputs(sim: FederatedSim, runId: string): Promise<void> {
  const { opts, coordinator } = sim;
  mkdirSync(opts.out, { recursive: true });
  const policySrc = join(coordinator.paths.root, "policy.json");
  if (existsSync(policySrc)) copyFileSync(policySrc, join(opts.out, "policy.json"));
  // The store's ledger segments, concatenated: the one JSONL text `tacit verify` reads.
  writeFileSync(join(opts.out, "ledger.jsonl"), await readLedgerText(coordinator.store));
  // The ledger head, for `tacit verify --head` (a ledger cut at an entry boundary is caught).
  const lines = readFileSync(join(opts.out, "ledger.jsonl"), "utf8").trim().split("\n");
  const head = JSON.parse(lines.at(-1)!) as { seq: number; hash: string };
  writeFileSync(join(opts.out, "ledger.head"), `${head.seq}:${head.hash}\n`);
  // The final global model, exported as `tacit model export` does: named by the ledger's hash.
  const releases = modelReleases(lines.join("\n") + "\n");
  const release = findRelease(releases, runId);
  const cp = await coordinator.checkpoints.readRound(runId, release.round);
  const federated = { release, checkpoint: { spec: sim.spec.model, weights: cp.weights, path: cp.path } };
  if (!sim.mix) {
    await exportRelease(join(opts.out, "model"), release, federated.checkpoint, "simulation");
    return;
  }
  // The released mixture: the run's public initial model (round −1, pinned by its launch entry) goes in too.
  const initial = findRelease(releases, runId, -1);
  const initialDir = await coordinator.checkpoints.localDir(runId, coordinator.checkpoints.dirFor(runId, -1));
  const publicModel = { release: initial, checkpoint: { spec: sim.spec.model, weights: (await loadCheckpoint(initialDir)).weights, path: initialDir } };
  await exportReleasedMixture(join(opts.out, "model"), federated, publicModel, sim.mix.federatedWeight, "simulation");
}

/** Completed federated evaluations by the training round whose model they evaluated. */
function federatedByRound(json: string): Map<number, FederatedEvalMetrics> {
  const out = new Map<number, FederatedEvalMetrics>();
  for (const e of (json ? JSON.parse(json) : []) as EvaluationRecord[]) {
    if (e.status === "completed" && e.metrics) out.set(e.afterRound, { ...e.metrics, survivors: e.survivors, noiseMultiplier: e.noiseMultiplier, countErrorBound: e.errorBound?.counts ?? 0, lossCapNats: LOSS_CAP_NATS });
  }
  return out;
}

export function writeMetrics(out: string, metrics: SimulationMetrics): string {
  mkdirSync(out, { recursive: true });
  const path = join(out, "metrics.json");
  writeJsonAtomic(path, metrics);
  return path;
}
