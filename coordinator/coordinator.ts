/**
 * Composition root of the coordinator process: Redis (REDIS_URL or embedded), device registry,
 * run store, BullMQ round scheduler, the device hub and the gRPC server. `startCoordinator`
 * returns a handle whose `stop()` closes everything in order.
 */
import * as grpc from "@grpc/grpc-js";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import pino, { type Logger } from "pino";
import type { Redis } from "ioredis";
import { loadTacitProto } from "../shared/transport/proto.ts";
import { assertDpRecipe, parseRunSpec, type RunSpec } from "../shared/run/index.ts";
import { verifyBytes, publicKeyFromRaw, type Ed25519KeyPair } from "../shared/crypto/index.ts";
import { initialWeights, loadInitialModel } from "../shared/model/index.ts";
import { connectRedis, resolveRedis, type RedisTarget } from "./redis/embedded-redis.ts";
import { coordinatorPaths, initCoordinatorState, loadPrincipals, loadRegistryKey, loadSigningKey, secureStateRoot, writeFileAtomic, type CoordinatorPaths } from "./state/state-dir.ts";
import { DeviceRegistry } from "./state/registry.ts";
import { serverTlsMaterial } from "./state/tls.ts";
import { requestGate } from "./server/request-gate.ts";
import { requestCap } from "./server/message-caps.ts";
import { DEFAULT_SERVER_LIMITS, grpcServerOptions, type ServerLimits } from "./server/server-limits.ts";
import { watchEventLoop } from "../shared/transport/loop-watch.ts";
import { StreamSlots } from "./server/stream-slots.ts";
import { listenTls, tacitServerCredentials, type TlsListener } from "./server/tls-listener.ts";
import { Authenticator, type AddressLimits } from "./server/authenticator.ts";
import { buildServices } from "./server/handlers.ts";
import { hardenService } from "./server/harden-service.ts";
import { denied, failedPrecondition, invalid, notFound } from "./server/request-errors.ts";
import { DeviceHub } from "./rounds/device-hub.ts";
import type { ActiveRound } from "./rounds/active-round.ts";
import { RunStore, RunTransitionError, type RunRecord } from "./runs/run-store.ts";
import { LedgerCheckedRunStore } from "./state/ledger-checked-runs.ts";
import { CheckpointStore } from "./runs/checkpoint-store.ts";
import { newInstanceId, RunScheduler } from "./runs/run-scheduler.ts";
import { RoundDecisions } from "./runs/round-decisions.ts";
import { ActiveLease, LEASE_TTL_MS } from "./runs/active-lease.ts";

/** Exit status of a coordinator that lost the active lease (EX_TEMPFAIL: restart it). */
export const LEASE_LOST_EXIT_CODE = 75;
import type { DurableStore } from "./store/durable-store.ts";
import { defaultStoreUrl, openCheckedStore } from "./store/open-store.ts";
import { acquireStateLock } from "./state/state-lock.ts";
import { PrivacyLedger } from "./ledger/privacy-ledger.ts";

export interface CoordinatorOptions {
  stateDir: string;
  host?: string;
  port?: number;
  /** Creates the state dir (keys) if missing: convenient for simulations and tests. */
  autoInit?: boolean;
  logger?: Logger;
  /** Connection, stream, size and time bounds of the gRPC server (server-limits.ts). */
  limits?: Partial<ServerLimits>;
  env?: NodeJS.ProcessEnv;
  /** Per-caller token bucket (default burst 60, 20 requests/s). */
  rateLimit?: { burst: number; perSecond: number };
  /** Per-address buckets for Enroll and for failed authentications, before anything is verified. */
  addressLimits?: AddressLimits;
  /** The durable store's URL (default TACIT_STORE_URL, else file://<state dir>/store). */
  storeUrl?: string;
  /** Called when another coordinator took the active lease (default: exit LEASE_LOST_EXIT_CODE). */
  onLeaseLost?: (reason: string) => void;
  /** How often the scheduler's watchdog looks for live runs without a job (default 30 s). */
  watchdogMs?: number;
}

export class CoordinatorStartError extends Error {
  override name = "CoordinatorStartError";
}

export class Coordinator {
  readonly hub = new DeviceHub();
  readonly active = new Map<string, ActiveRound>();
  readonly registry: DeviceRegistry;
  readonly runs: RunStore;
  readonly checkpoints: CheckpointStore;
  readonly auth: Authenticator;
  readonly scheduler: RunScheduler;
  readonly ledger: PrivacyLedger;
  readonly instance = newInstanceId();
  /** WatchRun streams open per principal and overall (I2); startCoordinator sizes it from the limits. */
  watchSlots = new StreamSlots("WatchRun", DEFAULT_SERVER_LIMITS.maxWatchStreamsPerPrincipal, DEFAULT_SERVER_LIMITS.maxWatchStreams);
  /** Unread bytes a Subscribe stream may hold before its device is dropped as a slow reader (I6). */
  subscribeBacklogBytes = DEFAULT_SERVER_LIMITS.maxSubscribeBacklogBytes;
  server: grpc.Server | undefined;
  lease: ActiveLease | undefined;
  listener: TlsListener | undefined;
  /** Stops the event-loop stall warnings (server/loop-watch.ts). */
  stopLoopWatch: (() => void) | undefined;
  port = 0;

  /** Closes the connection a call came on (its getPeer()); a slow reader's, for one (I6). */
  dropConnection(peer: string): boolean {
    return this.listener?.dropConnection(peer) ?? false;
  }

  constructor(
    readonly paths: CoordinatorPaths,
    readonly redis: Redis,
    readonly redisTarget: RedisTarget,
    readonly signingKey: Ed25519KeyPair,
    readonly log: Logger,
    readonly store: DurableStore,
    ledger: PrivacyLedger,
    tuning: Pick<CoordinatorOptions, "rateLimit" | "addressLimits" | "watchdogMs"> = {},
  ) {
    this.registry = new DeviceRegistry(redis, loadRegistryKey(paths));
    this.ledger = ledger;
    this.runs = new LedgerCheckedRunStore(redis, this.ledger, log);
    // A directory store holds the checkpoint directories itself; with S3 they are cached in the
    // state dir and every file is put in the store before its round can commit.
    this.checkpoints = store.localRoot
      ? new CheckpointStore(join(store.localRoot, "checkpoints"), new RoundDecisions(store), this.instance)
      : new CheckpointStore(join(paths.root, "checkpoint-cache"), new RoundDecisions(store), this.instance, store);
    this.auth = new Authenticator(this.registry, loadPrincipals(paths), tuning.rateLimit, tuning.addressLimits);
    this.scheduler = new RunScheduler(
      redis,
      this.runs,
      {
        hub: this.hub,
        registry: this.registry,
        checkpoints: this.checkpoints,
        signingKey,
        log,
        active: this.active,
        ledger: this.ledger,
        onPhase: (runId, round, phase, state) => this.runs.recordPhase(runId, round, phase, state),
        commit: (runId, round) => this.scheduler.commit(runId, round),
        isCancelled: async (runId) => (await this.runs.get(runId))?.state === "cancelled",
        offences: this.ledger,
      },
      this.ledger,
      log,
      { instance: this.instance, ...(tuning.watchdogMs !== undefined ? { watchdogMs: tuning.watchdogMs } : {}) },
    );
  }

  activeRound(ref: { runId: string; round: number }): ActiveRound {
    const r = this.active.get(`${ref.runId}/${ref.round}`);
    if (!r) throw failedPrecondition(`no active round ${ref.round} of run ${ref.runId} (finished, not started, or another round)`);
    return r;
  }

  /** The policy in force: the ledger's latest policy entry, the same for every coordinator on this store. */
  policyJson(): Promise<string | undefined> {
    return this.ledger.policyInForce();
  }

  async installPolicy(json: string): Promise<void> {
    const reviewers = loadPrincipals(this.paths).filter((p) => p.role === "reviewer").map((p) => p.publicKey);
    const policy = this.ledger.validatePolicy(json, reviewers);
    // policy.json is the operator's copy (simulate hands it to the reviewer); the ledger entry is what binds.
    writeFileAtomic(this.paths.policy, json, 0o644);
    await this.ledger.policy(policy, json);
  }

  async launchRun(specJson: string, requestSignature: Uint8Array, requester: string): Promise<RunRecord> {
    const spec: RunSpec = parseRunSpec(specJson);
    // Whatever client sent it: a DP run with a server optimizer the recipe disallows is refused.
    assertDpRecipe(spec);
    const principal = loadPrincipals(this.paths).find((p) => p.keyId === requester);
    if (!principal) throw denied(`unknown requester ${requester}`);
    if (!verifyBytes(publicKeyFromRaw(Buffer.from(principal.publicKey, "base64")), specJson, requestSignature)) {
      throw invalid("request_signature does not verify: the ML team must sign spec_json with its key");
    }
    const policyJson = await this.policyJson();
    if (policyJson) this.ledger.assertRunAllowed(spec, policyJson);
    const runId = `run-${new Date().toISOString().slice(0, 10).replace(/-/g, "")}-${randomBytes(4).toString("hex")}`;
    // A public-data initial model named by the spec (hash-pinned; no privacy cost), else seeded random init.
    const weights = spec.initialModel ? await loadInitialModel(spec.initialModel, spec.model).catch((err: Error) => Promise.reject(invalid(err.message))) : initialWeights(spec.model, spec.seed);
    const hash = await this.checkpoints.save(runId, -1, spec.model, weights, null);
    const rec: RunRecord = { runId, spec, state: "queued", roundsDone: 0, modelHash: hash, currentPhase: "queued", error: "", createdAt: Date.now(), requester };
    // Ledger first: a crash after it leaves a launched run that never ran (visible to the
    // reviewer), never a run that spends budget without its launch entry. A run without its job
    // is given one by the scheduler's recovery on the next start.
    await this.ledger.runLaunch(rec, { body: specJson, publicKey: principal.publicKey, signature: Buffer.from(requestSignature).toString("base64") }, hash);
    await this.runs.create(rec);
    await this.scheduler.enqueue(runId, 0, 0);
    this.log.info({ runId, rounds: spec.rounds, cohort: spec.cohortSize }, "run launched");
    return rec;
  }

  /** Invites no one after this; a round in progress stops at its next phase boundary. */
  async cancelRun(runId: string): Promise<void> {
    const run = await this.runs.get(runId);
    if (!run) throw notFound(`no run ${runId}`);
    try {
      await this.scheduler.cancel(runId);
    } catch (err) {
      if (err instanceof RunTransitionError) throw failedPrecondition(`run ${runId} is already ${err.current}`);
      throw err;
    }
  }

  async runStatus(runId: string): Promise<{ runId: string; state: string; roundsTotal: number; roundsDone: number; currentPhase: string; modelHash: string; rounds: object[]; specJson: string; error: string; evaluationsJson: string }> {
    if (!runId) throw invalid("missing run_id");
    const run = await this.runs.get(runId);
    if (!run) throw notFound(`no run ${runId}`);
    const rounds = await this.runs.rounds(runId);
    return {
      runId,
      state: run.state,
      roundsTotal: run.spec.rounds,
      roundsDone: run.roundsDone,
      currentPhase: run.currentPhase,
      modelHash: run.modelHash,
      specJson: JSON.stringify(run.spec),
      error: run.error,
      evaluationsJson: JSON.stringify(await this.runs.evaluations(runId)),
      rounds: rounds.map((r) => ({
        round: r.round,
        status: r.status,
        cohort: r.cohort,
        survivors: r.survivors,
        modelHash: r.modelHashAfter,
        detail: r.detail,
        phaseCountsJson: JSON.stringify({ attempt: r.attempt, ...r.phases, secagg: r.secagg, startedAt: r.startedAt, endedAt: r.endedAt }),
      })),
    };
  }

  ledgerPages(fromSeq: number, deviceId?: string): AsyncIterable<string[]> {
    return this.ledger.pages(fromSeq, deviceId);
  }

  /**
   * Stops in the order that loses nothing: rounds running here end at their next phase boundary
   * and are recorded (devices still connected get their outcome), then devices, gRPC, Redis.
   * The state-dir lock is released by the process's exit, not here.
   */
  async stop(): Promise<void> {
    this.stopLoopWatch?.();
    this.lease?.stop();
    await this.scheduler.close();
    // Handed over at once, not after the lease's TTL (bounded: Redis may be gone).
    await Promise.race([this.lease?.release(), new Promise((r) => setTimeout(r, 1000).unref())]);
    this.hub.closeAll();
    await this.listener?.close();
    for (const r of this.active.values()) r.gate?.finish();
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.tryShutdown(() => resolve());
      setTimeout(() => this.server?.forceShutdown(), 2000).unref();
    });
    this.redis.disconnect();
    this.store.close?.();
    await this.redisTarget.embedded?.stop();
  }
}

/**
 * Standby until this process holds the active lease: connected to Redis and the store, not
 * listening (the load balancer sends devices to the active one), no BullMQ worker. Then it takes
 * over what the previous active coordinator left.
 */
async function becomeActive(c: Coordinator, redis: Redis, ledger: PrivacyLedger, env: NodeJS.ProcessEnv, log: Logger): Promise<ActiveLease> {
  const ttlMs = Number(env.TACIT_LEASE_TTL_MS) || LEASE_TTL_MS;
  c.lease = new ActiveLease(redis, c.instance, { ttlMs, renewMs: Math.max(100, Math.floor(ttlMs / 3)) });
  await c.lease.acquire((holder) => log.warn({ holder, instance: c.instance }, "standby: another coordinator holds the active lease; waiting to take over"));
  // Requests another coordinator admitted before the hand-over are not replayable here.
  c.auth.startServing();
  log.info({ instance: c.instance }, "active: holding the lease; serving");
  // What the previous active coordinator wrote while this one waited.
  await ledger.refresh();
  return c.lease;
}

/**
 * The state dir's paths, its root's mode checked before anything in it is trusted. Only a real
 * state dir (one with a coordinator key) is touched: a mistyped --state-dir such as $HOME is
 * never chmod-ed.
 */
function checkedStatePaths(stateDir: string, log: pino.Logger): CoordinatorPaths {
  const paths = coordinatorPaths(stateDir);
  if (!existsSync(paths.signingKey)) return paths;
  const was = secureStateRoot(paths.root);
  if (was !== undefined) log.warn({ stateDir: paths.root, mode: was.toString(8).padStart(4, "0") }, "the state dir was open to other users: made it 0700 again");
  return paths;
}

export async function startCoordinator(opts: CoordinatorOptions): Promise<Coordinator> {
  const log = opts.logger ?? pino({ name: "tacit-coordinator", level: process.env.TACIT_LOG_LEVEL ?? "info" });
  const existing = checkedStatePaths(opts.stateDir, log);
  const paths = opts.autoInit ? initCoordinatorState(opts.stateDir).paths : existing;
  const signingKey = loadSigningKey(paths);
  const env = opts.env ?? process.env;
  // The state-dir lock protects what only one process may use: the embedded Redis and its data
  // in the state dir. With an external Redis (REDIS_URL) several coordinators are the design:
  // the lease below picks the one that serves, the store's put-if-absent keeps them correct.
  if (!env.REDIS_URL) acquireStateLock(paths.root);
  const target = await resolveRedis(paths.root, opts.env);
  let redis: Redis;
  try {
    redis = await connectRedis(target.endpoint, { forBullmq: true });
  } catch (err) {
    await target.embedded?.stop();
    throw err;
  }
  // Commits, attempt outcomes, the ledger and checkpoints: TACIT_STORE_URL, shared by every
  // coordinator of this deployment, or a directory in the state dir (design note §3.2).
  let store: DurableStore;
  let ledger: PrivacyLedger;
  try {
    // Probed before use: an S3 server that ignores If-None-Match could not fence a stale coordinator.
    store = await openCheckedStore(opts.storeUrl ?? env.TACIT_STORE_URL ?? defaultStoreUrl(paths.root), env);
    ledger = await PrivacyLedger.open(store, paths, signingKey);
  } catch (err) {
    redis.disconnect();
    await target.embedded?.stop();
    throw err;
  }
  if (ledger.migrated) log.warn({ store: store.url }, ledger.migrated);
  const c = new Coordinator(paths, redis, target, signingKey, log, store, ledger, opts);
  const lease = await becomeActive(c, redis, ledger, env, log);
  // grpc-js would print its own copy of bind errors to stderr; Tacit reports them itself.
  grpc.setLogVerbosity(grpc.logVerbosity.NONE);
  const limits: ServerLimits = { ...DEFAULT_SERVER_LIMITS, ...opts.limits };
  c.watchSlots = new StreamSlots("WatchRun", limits.maxWatchStreamsPerPrincipal, limits.maxWatchStreams);
  c.subscribeBacklogBytes = limits.maxSubscribeBacklogBytes;
  const gate = requestGate({
    admit: (md, method, peer) => c.auth.admit(md, method, peer),
    capFor: (method) => requestCap(method, [...c.active.values()].map((r) => r.config)),
    requestTimeoutMs: limits.requestTimeoutMs,
  });
  const server = new grpc.Server(grpcServerOptions(limits, [gate]));
  const proto = loadTacitProto();
  const services = buildServices(c);
  const subscribe = proto.tacit.v1.Rounds.service.Subscribe;
  c.hub.encoder = (ev) => subscribe.responseSerialize(ev);
  server.addService(hardenService(proto.tacit.v1.Enrollment.service), services.enrollment!);
  server.addService(hardenService(proto.tacit.v1.RunControl.service), services.runControl!);
  server.addService(hardenService(proto.tacit.v1.Rounds.service), services.rounds!);
  server.addService(hardenService(proto.tacit.v1.Ledger.service), services.ledger!);
  const host = opts.host ?? "127.0.0.1";
  // The front door (tls-listener.ts) accepts and counts connections, then hands them to grpc-js.
  const tls = serverTlsMaterial(paths.root);
  const injector = server.createConnectionInjector(tacitServerCredentials(tls.key, tls.cert, limits.handshakeTimeoutMs));
  try {
    c.listener = await listenTls({ host, port: opts.port ?? 0, limits, inject: (s) => injector.injectConnection(s) });
    c.port = c.listener.port;
  } catch (err) {
    await c.stop();
    const msg = (err as Error).message;
    const reason = /EADDRINUSE/.test(msg) ? "the address is already in use" : /EACCES/.test(msg) ? "permission denied" : msg;
    throw new CoordinatorStartError(`cannot listen on ${host}:${opts.port ?? 0}: ${reason}`);
  }
  c.server = server;
  await c.scheduler.start();
  lease.keep((reason) => {
    // Another coordinator serves now: this one's writes would lose their put-if-absent races
    // anyway; it stops at once and its supervisor restarts it as a standby.
    log.fatal({ instance: c.instance, reason }, "lost the active lease; exiting so the supervisor restarts this coordinator as standby");
    (opts.onLeaseLost ?? (() => process.exit(LEASE_LOST_EXIT_CODE)))(reason);
  });
  c.stopLoopWatch = watchCoordinatorLoop(log, limits.keepaliveTimeoutMs);
  log.info({ port: c.port, redis: target.label }, "coordinator listening");
  return c;
}

/** The coordinator's watch: warns at half the devices' keepalive timeout, when a stall already risks their connections. */
function watchCoordinatorLoop(log: Pick<Logger, "warn">, keepaliveTimeoutMs: number): () => void {
  return watchEventLoop({
    warnAfterMs: keepaliveTimeoutMs / 2,
    onStall: (blockedMs) => log.warn({ blockedMs }, "the coordinator's event loop was blocked: devices' keepalive pings went unanswered meanwhile"),
  });
}
