/**
 * Test support: a whole round — `executeRound` (coordinator/rounds/round-runner.ts) or
 * `executeEvaluation` (coordinator/rounds/evaluation-round.ts) — played in this process, with no
 * gRPC server, so that a mutant of coordinator/rounds is seen by the test that drives it.
 *
 * Real: the DeviceHub (with the Subscribe stream's protobuf encoder, as the coordinator sets it,
 * so invitations, rosters and unmasking requests are spliced and serialized as on the wire); the
 * DeviceRegistry on a private redis-server (test/support/redis-process.ts, started once per test
 * file: ~0.1 s) so that cohort members' identity keys come from real enrollments; a
 * CheckpointStore with its RoundDecisions on a DirectoryStore in a temp dir; the RPC handlers of
 * coordinator/server/handlers.ts with the real Authenticator (every device call is signed with
 * the device's identity, its request protobuf-encoded and decoded through the hardened service
 * definition, then handed to the handler exactly as grpc-js would); and on each device the real
 * RoundParticipant (client/participant) with real SecAgg, DP encoding and attestation.
 *
 * Stood in for: the gRPC transport itself (the Subscribe stream is a DeviceStream that decodes
 * each event and, one timer turn later, hands it to the participant, one at a time, as
 * RoundSubscription does; a device's unary call goes straight to the handler), the privacy
 * ledger (a RoundLedgerSink, an EvaluationLedgerSink and an OffenceLedger that record what they
 * are given), the scheduler's `commit` (it publishes as RunScheduler.commit does — the ledger
 * entry from the round's commit record, then LATEST — and records the call) and `onPhase` (a
 * recorder), the run store's cancel flag (`cancelled`, `cancelFromCheck`), and the
 * CoordinatorApi methods the Rounds handlers never call (they throw if called). The registry is
 * the real one because a round reads members' identity keys from it and the Authenticator
 * checks every device call against them; a redis-server is cheap enough to start per file.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import type * as grpc from "@grpc/grpc-js";
import pino, { type Logger } from "pino";
import { afterAll, afterEach, beforeAll } from "vitest";
import { generateEd25519, type Ed25519KeyPair } from "../../shared/crypto/index.ts";
import { DEFAULT_DEADLINES, type Deadlines, type RoundConfig, type RunSpec } from "../../shared/run/index.ts";
import { parameterCount, type ModelSpec } from "../../shared/model/index.ts";
import type { EvalCounts } from "../../shared/eval/index.ts";
import { loadTacitProto } from "../../shared/transport/proto.ts";
import { signedMetadata } from "../../shared/transport/request-auth.ts";
import { DeviceHub, type DeviceStream } from "../../coordinator/rounds/device-hub.ts";
import type { RoundCommit, RoundContext, RoundLedgerSink } from "../../coordinator/rounds/round-runner.ts";
import type { EvaluationLedgerSink } from "../../coordinator/rounds/evaluation-round.ts";
import type { ActiveRound } from "../../coordinator/rounds/active-round.ts";
import { DeviceRegistry } from "../../coordinator/state/registry.ts";
import type { OffenceLedger } from "../../coordinator/state/offences.ts";
import { CheckpointStore } from "../../coordinator/runs/checkpoint-store.ts";
import { RoundDecisions } from "../../coordinator/runs/round-decisions.ts";
import type { PhaseCounts, RunRecord, RunStore } from "../../coordinator/runs/run-store.ts";
import { DirectoryStore } from "../../coordinator/store/directory-store.ts";
import { Authenticator } from "../../coordinator/server/authenticator.ts";
import { buildServices, type CoordinatorApi } from "../../coordinator/server/handlers.ts";
import { hardenService } from "../../coordinator/server/harden-service.ts";
import { failedPrecondition } from "../../coordinator/server/request-errors.ts";
import { StreamSlots } from "../../coordinator/server/stream-slots.ts";
import { RoundParticipant, type LocalUpdate, type ParticipantEvent, type RoundPhase } from "../../client/participant/round-participant.ts";
import { BudgetRecord } from "../../client/participant/budget-record.ts";
import type { DeviceLimits } from "../../client/participant/device-guard.ts";
import { RpcCallError, type CoordinatorClient, type ServerEvent } from "../../client/transport/coordinator-client.ts";
import { RedisProcess } from "./redis-process.ts";
import { tinyRunSpec } from "./cluster.ts";
import { Redis } from "ioredis";

/** A model of 62 parameters: the smallest the model spec allows (checkpoints and masks stay tiny). */
export const ROUND_MODEL: ModelSpec = { version: 1, vocabBuckets: 16, window: 1, embedDim: 1, hidden: 1, sessionGapSeconds: 1800 };
export const ROUND_PARAMS = parameterCount(ROUND_MODEL);

/**
 * Phase budgets long enough never to cut off a device that answers (rounds end as soon as every
 * expected device answered, so they cost nothing); tests where a deadline must expire set short ones.
 */
export const LONG_DEADLINES: Deadlines = { ...DEFAULT_DEADLINES, selectionMs: 60_000, advertiseMs: 60_000, shareMs: 60_000, maskedInputMs: 60_000, unmaskMs: 60_000 };

/** The run spec of these tests: test/support/cluster.ts's tinyRunSpec on ROUND_MODEL, cohort 5 of 10, deadlines that never fire unless a test shortens them. */
export function roundSpec(over: Partial<RunSpec> = {}): RunSpec {
  return tinyRunSpec({
    name: "harness",
    model: ROUND_MODEL,
    rounds: 3,
    cohortSize: 5,
    minSurvivors: 3,
    populationSize: 10,
    localEpochs: 2,
    serverLearningRate: 0.5,
    deadlines: LONG_DEADLINES,
    seed: 123_456,
    ...over,
  });
}

/** Device limits that accept every round these tests start (the SecAgg floors at no colluders). */
export const OPEN_DEVICE_LIMITS: DeviceLimits = { maxDeviceEpsilon: Infinity, delta: 1e-5, minNoiseMultiplier: 0, minSurvivors: 2, secagg: { dropoutFraction: 0, corruptFraction: 0 } };

/** The ServerEvent a device may be told to ignore (it keeps its connection: only a deadline ends its silence). */
export type EventKind = "invite" | "roster" | "inbox" | "consistency" | "unmask" | "outcome";

export interface DeviceBehaviour {
  /** Its local update: a constant delta (default 0), or computed from the round's config and weights. */
  delta?: number | ((cfg: RoundConfig, weights: Float32Array) => Float32Array);
  /** Its held-out counts for evaluation rounds; absent: it declines them (RoundParticipant's rule). */
  evaluate?: EvalCounts;
  /** Its person paused it: it declines every invitation with this code and reason. */
  decline?: { code: string; reason: string };
  /** It vanishes at this phase: its Subscribe stream closes (the hub sees a disconnect). */
  dropAt?: RoundPhase;
  /** It ignores this event while staying connected. */
  silentAt?: EventKind;
  /** Closes its stream right after this RPC of its was answered (it vanishes between two phases). */
  disconnectAfter?: string;
  /** Rewrites a request before it leaves the device (a device that lies). */
  tamper?: (method: string, req: Record<string, unknown>) => Record<string, unknown>;
  /** Subscribes as not eligible (idle/consent), so it is never sampled. */
  ineligible?: boolean;
  limits?: DeviceLimits;
}

/** One RPC a device made and how the handler answered it. */
export interface DeviceCall {
  method: string;
  code: grpc.status;
  details: string;
}

export interface HarnessDevice {
  deviceId: string;
  identity: Ed25519KeyPair;
  behaviour: DeviceBehaviour;
  participant: RoundParticipant;
  budget: BudgetRecord;
  /** Everything the participant reported, in order. */
  events: ParticipantEvent[];
  /** Every ServerEvent that reached the device (decoded as the client would), ignored or not. */
  received: ServerEvent[];
  /** Every RPC it made, with the handler's status (0 = OK). */
  calls: DeviceCall[];
  /** The signed configs of the rounds it trained or evaluated in, with the weights it was sent. */
  trained: { cfg: RoundConfig; weights: Float32Array }[];
  /** How often the hub ended its stream. */
  ended: number;
  /** Closes its stream (the hub forgets it; a running round drops it at once). */
  disconnect(): void;
}

/** What `ctx.onPhase` was called with (the counts copied as they were then). */
export interface PhaseCall {
  runId: string;
  round: number;
  phase: string;
  attempt: number;
  cohort: string[];
  counts: PhaseCounts;
}

/** One redis-server (and client) for every harness of a test file. */
export class RoundBackend {
  private constructor(
    readonly dir: string,
    readonly redis: RedisProcess,
    readonly client: Redis,
  ) {}

  static async start(): Promise<RoundBackend> {
    const dir = mkdtempSync(join(tmpdir(), "tacit-rounds-"));
    const redis = await RedisProcess.start(join(dir, "redis"));
    const client = new Redis(redis.url, { maxRetriesPerRequest: 2 });
    return new RoundBackend(dir, redis, client);
  }

  async stop(): Promise<void> {
    this.client.disconnect();
    await this.redis.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A CheckpointStore whose `write` (the commit point) can be made to fail, as a full disk would. */
class FaultyCheckpointStore extends CheckpointStore {
  writeError: Error | undefined;
  writes = 0;
  override async write(...args: Parameters<CheckpointStore["write"]>): Promise<string> {
    this.writes++;
    if (this.writeError) throw this.writeError;
    return super.write(...args);
  }
}

/** A Map that also keeps every value ever set, in order. */
class RecordingMap<K, V> extends Map<K, V> {
  constructor(private readonly seen: V[]) {
    super();
  }
  override set(key: K, value: V): this {
    this.seen.push(value);
    return super.set(key, value);
  }
}

/** One hop across the wire: a timer turn (1 ms). */
const wire = (): Promise<void> => new Promise((r) => setTimeout(r, 1));

const proto = loadTacitProto();
const subscribe = proto.tacit.v1.Rounds.service.Subscribe;
/** The Rounds methods as the server decodes them (a request that does not decode is marked, not thrown). */
const roundsMethods = hardenService(proto.tacit.v1.Rounds.service);

type UnaryHandler = (call: { request: unknown; metadata: grpc.Metadata; getPeer(): string }, callback: (err: grpc.ServiceError | null, value?: unknown) => void) => void;

const unused = (what: string) => (): never => {
  throw new Error(`${what} is not used by the Rounds RPCs this harness drives`);
};

export class RoundHarness {
  readonly hub = new DeviceHub();
  /** Every ActiveRound a round opened (ctx.active forgets it when the round ends). */
  readonly rounds: ActiveRound[] = [];
  readonly active: Map<string, ActiveRound> = new RecordingMap(this.rounds);
  readonly signingKey = generateEd25519();
  readonly devices: HarnessDevice[] = [];
  /** What ctx.onPhase was told, in order. */
  readonly phases: PhaseCall[] = [];
  /** ctx.commit's calls, in order. */
  readonly commits: { runId: string; round: number }[] = [];
  readonly ledgerRounds: Parameters<RoundLedgerSink["round"]>[0][] = [];
  readonly ledgerEvaluations: Parameters<EvaluationLedgerSink["evaluation"]>[0][] = [];
  readonly offences: Parameters<OffenceLedger["offence"]>[0][] = [];
  /** Every isCancelled call, by run id. */
  readonly cancelChecks: string[] = [];
  /** Runs whose cancel the run store would report. */
  readonly cancelled = new Set<string>();
  /** isCancelled answers true from its n-th call on (1-based): a cancel seen at one chosen boundary. */
  cancelFromCheck: number | undefined;
  /** Called by ctx.onPhase after it recorded the phase (a test acts at a phase's opening). */
  atPhase: ((phase: string) => void | Promise<void>) | undefined;
  /** Makes ctx.commit fail (after recording the call). */
  commitError: Error | undefined;
  /** Warnings and errors the RPC handlers logged (their refusals). */
  readonly logs: { level: number; msg: string; [k: string]: unknown }[] = [];
  readonly log: Logger;
  readonly registry: DeviceRegistry;
  readonly checkpoints: FaultyCheckpointStore;
  readonly ctx: RoundContext & { evaluations: EvaluationLedgerSink };
  private readonly handlers: Record<string, UnaryHandler>;
  private readonly queues = new Map<string, Promise<void>>();
  private readonly runs = new Map<string, RunRecord>();

  private constructor(
    readonly backend: RoundBackend,
    readonly dir: string,
  ) {
    const logs = this.logs;
    this.log = pino({ level: "warn" }, new Writable({ write: (chunk: Buffer, _enc, done) => (logs.push(JSON.parse(chunk.toString("utf8")) as (typeof logs)[number]), done()) }));
    this.registry = new DeviceRegistry(backend.client, randomBytes(32));
    this.checkpoints = new FaultyCheckpointStore(join(dir, "checkpoints"), new RoundDecisions(new DirectoryStore(join(dir, "store"))), "harness");
    // As the coordinator does (coordinator.ts): every Subscribe event is serialized by the hub.
    this.hub.encoder = (ev) => subscribe.responseSerialize(ev);
    const offenceLedger: OffenceLedger = {
      offence: async (e) => void this.offences.push(e),
      offences: (deviceId) => this.offences.filter((o) => o.deviceId === deviceId).length,
    };
    this.ctx = {
      hub: this.hub,
      registry: this.registry,
      checkpoints: this.checkpoints,
      signingKey: this.signingKey,
      log: this.log,
      active: this.active,
      ledger: { round: async (e) => void this.ledgerRounds.push(e) },
      evaluations: { evaluation: async (e) => void this.ledgerEvaluations.push(e) },
      // Publishes as RunScheduler.commit does: the ledger entry from the round's commit record,
      // then LATEST moved to its checkpoint (so a next round starts from it).
      commit: async (runId, round) => {
        this.commits.push({ runId, round });
        if (this.commitError) throw this.commitError;
        const committed = await this.checkpoints.committed(runId, round);
        const run = this.runs.get(runId);
        if (!committed || !run) throw new Error(`round ${round} of run ${runId} has no commit record`);
        const c = committed.commit as RoundCommit;
        await this.ctx.ledger.round({
          run, record: c.record, cohort: c.cohort, survivors: c.survivors, declines: c.declines, event: c.event,
          attestations: c.attestations.map((a) => ({ ...a, signature: new Uint8Array(Buffer.from(a.signature, "base64")) })),
        });
        await this.checkpoints.point(runId, round, committed.checkpoint.hash, committed.checkpoint.dir);
      },
      onPhase: async (runId, round, phase, state) => {
        this.phases.push({ runId, round, phase, attempt: state.attempt, cohort: [...state.cohort], counts: structuredClone(state.counts) });
        await this.atPhase?.(phase);
      },
      isCancelled: async (runId) => {
        this.cancelChecks.push(runId);
        return this.cancelled.has(runId) || (this.cancelFromCheck !== undefined && this.cancelChecks.length >= this.cancelFromCheck);
      },
      offences: offenceLedger,
    };
    // The CoordinatorApi of the RPC handlers: the parts the Rounds RPCs use are real or recorders.
    const api: CoordinatorApi = {
      auth: new Authenticator(this.registry, [], { burst: 1e6, perSecond: 1e6 }),
      log: this.log,
      watchSlots: new StreamSlots("WatchRun", 1, 1),
      subscribeBacklogBytes: 1 << 30,
      dropConnection: () => false,
      registry: this.registry,
      ledger: { enrollmentToken: unused("ledger.enrollmentToken"), enrollment: unused("ledger.enrollment"), offence: offenceLedger.offence, offences: offenceLedger.offences },
      runs: new Proxy({} as RunStore, { get: unused("runs") }),
      hub: this.hub,
      signingKey: this.signingKey,
      // As Coordinator.activeRound: the round the RPC names, among those running.
      activeRound: (ref) => {
        const r = this.active.get(`${ref.runId}/${ref.round}`);
        if (!r) throw failedPrecondition(`no active round ${ref.round} of run ${ref.runId} (finished, not started, or another round)`);
        return r;
      },
      launchRun: unused("launchRun"),
      cancelRun: unused("cancelRun"),
      runStatus: unused("runStatus"),
      ledgerPages: unused("ledgerPages"),
      policyJson: unused("policyJson"),
      installPolicy: unused("installPolicy"),
    };
    // grpc-js calls a unary handler with (call, callback); the service map types them loosely.
    this.handlers = buildServices(api).rounds as unknown as Record<string, UnaryHandler>;
  }

  static async create(backend: RoundBackend): Promise<RoundHarness> {
    return new RoundHarness(backend, mkdtempSync(join(backend.dir, "harness-")));
  }

  /**
   * A run whose initial model (round −1) is `weights` (default: a fixed ramp), saved as the
   * coordinator saves it at launch, with no server-optimizer state.
   */
  async startRun(spec: RunSpec, o: { runId?: string; weights?: Float32Array; serverState?: unknown } = {}): Promise<RunRecord> {
    const runId = o.runId ?? `run-${randomBytes(4).toString("hex")}`;
    const weights = o.weights ?? initialWeights(parameterCount(spec.model));
    const modelHash = await this.checkpoints.save(runId, -1, spec.model, weights, o.serverState ?? null);
    const run: RunRecord = { runId, spec, state: "running", roundsDone: 0, modelHash, currentPhase: "", error: "", createdAt: Date.now(), requester: "ml-team-1" };
    this.runs.set(runId, run);
    return run;
  }

  /** Enrolls a device in the real registry and connects it to the hub, with a RoundParticipant behind its stream. */
  async addDevice(behaviour: DeviceBehaviour = {}): Promise<HarnessDevice> {
    const identity = generateEd25519();
    const { token } = await this.registry.createToken(600, "harness", "admin-1");
    const { device } = await this.registry.enroll(token, identity.publicRaw, `device-${this.devices.length}`);
    const deviceId = device.deviceId;
    const events: ParticipantEvent[] = [];
    const calls: DeviceCall[] = [];
    const trained: HarnessDevice["trained"] = [];
    const budget = new BudgetRecord();
    let stream: DeviceStream | undefined;
    const client = this.clientFor(deviceId, identity, behaviour, calls, () => void (stream && this.hub.disconnect(deviceId, stream)));
    const participant = new RoundParticipant({
      deviceId,
      identity,
      coordinatorPublicKey: this.signingKey.publicRaw,
      client,
      limits: behaviour.limits ?? OPEN_DEVICE_LIMITS,
      budget,
      hooks: {
        train: async (cfg, weights): Promise<LocalUpdate> => {
          trained.push({ cfg, weights: new Float32Array(weights) });
          const d = behaviour.delta;
          const delta = typeof d === "function" ? d(cfg, weights) : new Float32Array(cfg.parameterCount).fill(d ?? 0);
          return { delta, loss: 1, examples: 10 };
        },
        ...(behaviour.evaluate
          ? {
              evaluate: async (cfg: RoundConfig, weights: Float32Array): Promise<EvalCounts> => {
                trained.push({ cfg, weights: new Float32Array(weights) });
                return behaviour.evaluate!;
              },
            }
          : {}),
        ...(behaviour.decline ? { unavailable: () => behaviour.decline } : {}),
        ...(behaviour.dropAt ? { dropAt: () => behaviour.dropAt } : {}),
        // A vanishing device's stream closes: what handlers.ts's Subscribe reports to the hub.
        onDrop: () => void (stream && this.hub.disconnect(deviceId, stream)),
        onEvent: (e) => void events.push(e),
      },
    });
    const received: ServerEvent[] = [];
    const dev: HarnessDevice = {
      deviceId, identity, behaviour, participant, budget, events, received, calls, trained, ended: 0,
      disconnect: () => void (stream && this.hub.disconnect(deviceId, stream)),
    };
    this.queues.set(deviceId, Promise.resolve());
    // The device's Subscribe stream: what handlers.ts writes (every event serialized), decoded
    // as the client's stub decodes it, then handed to the participant one event at a time.
    stream = {
      write: (ev) => {
        const bytes = Buffer.isBuffer(ev) ? ev : subscribe.responseSerialize(ev);
        const decoded = subscribe.responseDeserialize(bytes) as ServerEvent;
        received.push(decoded);
        participant.arrived(decoded);
        if (behaviour.silentAt && decoded.event === behaviour.silentAt) return true;
        // Each event crosses the "network" in a timer turn of its own, as a stream's data event
        // would: a phase gate whose deadline has already passed expires before any answer comes.
        this.queues.set(deviceId, this.queues.get(deviceId)!.then(wire).then(() => participant.handle(decoded)));
        return true;
      },
      end: () => void dev.ended++,
    };
    this.hub.connect(deviceId, stream, !behaviour.ineligible);
    this.devices.push(dev);
    return dev;
  }

  async addDevices(n: number, behaviour: (i: number) => DeviceBehaviour = () => ({})): Promise<HarnessDevice[]> {
    const out: HarnessDevice[] = [];
    for (let i = 0; i < n; i++) out.push(await this.addDevice(behaviour(i)));
    return out;
  }

  /**
   * A device's transport: each call is signed for its method's full path, its request encoded
   * and decoded as the Rounds service's wire format, and handed to the handler; a refusal comes
   * back as the RpcCallError the real client throws.
   */
  private clientFor(deviceId: string, identity: Ed25519KeyPair, behaviour: DeviceBehaviour, calls: DeviceCall[], disconnect: () => void): CoordinatorClient {
    const unary = async <Req, Res>(service: string, name: string, req: Req): Promise<Res> => {
      if (service !== "Rounds") throw new Error(`the round harness carries Rounds calls only, not ${service}/${name}`);
      const path = `/tacit.v1.Rounds/${name}`;
      const method = roundsMethods[name];
      const handler = this.handlers[name];
      if (!method || !handler) throw new Error(`no Rounds method ${name}`);
      const sent = behaviour.tamper ? behaviour.tamper(name, req as Record<string, unknown>) : req;
      const request = method.requestDeserialize(method.requestSerialize(sent));
      const metadata = signedMetadata({ keyId: deviceId, privateKey: identity.privateKey }, path);
      return new Promise<Res>((resolve, reject) => {
        handler({ request, metadata, getPeer: () => `in-process:${deviceId}` }, (err, value) => {
          calls.push({ method: name, code: err ? err.code : 0, details: err ? err.details : "" });
          if (behaviour.disconnectAfter === name) disconnect();
          if (err) reject(new RpcCallError(err.code, path, err.details || err.message));
          else resolve(value as Res);
        });
      });
    };
    // RoundParticipant calls `unary` only; the class's other members are never touched.
    return { unary } as unknown as CoordinatorClient;
  }

  /** Resolves once every device has handled every event it was sent (including the round's outcome). */
  async settled(): Promise<void> {
    for (;;) {
      const before = [...this.queues.values()];
      await Promise.all(before);
      await new Promise((r) => setImmediate(r));
      const after = [...this.queues.values()];
      if (after.every((q, i) => q === before[i])) return;
    }
  }

  /** Every error a device reported (a refused RPC, a message it rejected). */
  deviceErrors(): string[] {
    return this.devices.flatMap((d) => d.events.flatMap((e) => (e.type === "error" ? [`${d.deviceId}: ${e.message}`] : [])));
  }

  /** Every RPC a handler refused, across devices. */
  refusals(): (DeviceCall & { deviceId: string })[] {
    return this.devices.flatMap((d) => d.calls.filter((c) => c.code !== 0).map((c) => ({ ...c, deviceId: d.deviceId })));
  }

  async close(): Promise<void> {
    await this.settled();
    this.hub.closeAll();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A fixed, non-constant initial model: coordinate i is (i mod 7 − 3) / 10. */
export function initialWeights(n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => ((i % 7) - 3) / 10);
}

/**
 * Registers a test file's (or describe block's) harness lifecycle — one Redis-backed backend for
 * all its tests, every harness closed after its test — and returns the factory its tests call.
 */
export function useRoundHarnesses(): () => Promise<RoundHarness> {
  let backend: RoundBackend | undefined;
  const open: RoundHarness[] = [];
  beforeAll(async () => {
    backend = await RoundBackend.start();
  });
  afterEach(async () => {
    for (const h of open.splice(0)) await h.close();
  });
  afterAll(async () => {
    await backend?.stop();
  });
  return async () => {
    const h = await RoundHarness.create(backend!);
    open.push(h);
    return h;
  };
}
