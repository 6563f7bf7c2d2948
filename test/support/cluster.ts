/**
 * Test support: a real coordinator (in this process, own state dir, own embedded Redis, TLS on
 * loopback) and real device clients (own identities, enrolled with single-use tokens, signed
 * gRPC). Training is pluggable so protocol tests can use exact, known updates.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import type * as grpc from "@grpc/grpc-js";
import { generateEd25519, privateKeyFromPem, signBytes, type Ed25519KeyPair } from "../../shared/crypto/index.ts";
import { DEFAULT_DEADLINES, type RunSpec } from "../../shared/run/index.ts";
import { startCoordinator, type Coordinator } from "../../coordinator/coordinator.ts";
import { CoordinatorClient, type RunStatus, type ServerEvent } from "../../client/transport/coordinator-client.ts";
import { RoundParticipant, type ParticipantEvent, type ParticipantHooks } from "../../client/participant/round-participant.ts";
import { BudgetRecord } from "../../client/participant/budget-record.ts";
import { RoundSubscription } from "../../client/transport/round-subscription.ts";
import type { DeviceLimits } from "../../client/participant/device-guard.ts";
import type { ServerLimits } from "../../coordinator/server/server-limits.ts";
import type { AddressLimits } from "../../coordinator/server/authenticator.ts";

export const TINY_MODEL = { version: 1 as const, vocabBuckets: 32, window: 2, embedDim: 4, hidden: 8, sessionGapSeconds: 1800 };

export function tinyRunSpec(over: Partial<RunSpec> = {}): RunSpec {
  return {
    name: "test",
    model: TINY_MODEL,
    rounds: 2,
    cohortSize: 3,
    minSurvivors: 2,
    populationSize: 3,
    localEpochs: 1,
    maxLocalSteps: 8,
    batchSize: 16,
    clientLearningRate: 0.1,
    clientOptimizer: "sgd",
    serverOptimizer: "fedavg",
    serverLearningRate: 1,
    serverMomentum: 0,
    clip: 10,
    noiseMultiplier: 0,
    delta: 1e-6,
    mechanism: "ddgauss",
    bits: 32,
    dropoutTolerance: 0.3,
    corruptTolerance: 0.1,
    signals: ["commit", "file-change"],
    deadlines: { ...DEFAULT_DEADLINES, selectionMs: 5000, advertiseMs: 5000, shareMs: 5000, maskedInputMs: 30_000, unmaskMs: 5000 },
    seed: 7,
    ...over,
  };
}

// Open limits accept any SecAgg parameters down to the honest-but-curious floors (no colluders).
export const OPEN_LIMITS: DeviceLimits = { maxDeviceEpsilon: Infinity, delta: 1e-5, minNoiseMultiplier: 0, minSurvivors: 2, secagg: { dropoutFraction: 0, corruptFraction: 0 } };

export interface TestDevice {
  name: string;
  deviceId: string;
  identity: Ed25519KeyPair;
  client: CoordinatorClient;
  subscription: RoundSubscription;
  budget: BudgetRecord;
  events: ParticipantEvent[];
  stop(): void;
}

export class TestCluster {
  coordinator!: Coordinator;
  stateDir!: string;
  caFile!: string;
  address!: string;
  admin!: CoordinatorClient;
  mlTeam!: CoordinatorClient;
  mlTeamKey!: Ed25519KeyPair;
  devices: TestDevice[] = [];

  static async start(o: { rateLimit?: { burst: number; perSecond: number }; addressLimits?: AddressLimits; logger?: pino.Logger; watchdogMs?: number; limits?: Partial<ServerLimits>; env?: NodeJS.ProcessEnv } = {}): Promise<TestCluster> {
    const c = new TestCluster();
    c.stateDir = mkdtempSync(join(tmpdir(), "tacit-test-"));
    c.coordinator = await startCoordinator({
      stateDir: c.stateDir,
      autoInit: true,
      logger: o.logger ?? pino({ level: "silent" }),
      env: o.env ?? {},
      ...(o.rateLimit ? { rateLimit: o.rateLimit } : {}),
      ...(o.watchdogMs !== undefined ? { watchdogMs: o.watchdogMs } : {}),
      ...(o.limits ? { limits: o.limits } : {}),
      ...(o.addressLimits ? { addressLimits: o.addressLimits } : {}),
    });
    c.address = `localhost:${c.coordinator.port}`;
    c.caFile = join(c.coordinator.paths.root, "tls", "ca.pem");
    const key = (id: string): Ed25519KeyPair => privateKeyFromPem(readFileSync(join(c.coordinator.paths.keysOut, `${id}.key`), "utf8"));
    c.admin = new CoordinatorClient({ address: c.address, caFile: c.caFile, credentials: { keyId: "admin-1", privateKey: key("admin-1").privateKey } });
    c.mlTeamKey = key("ml-team-1");
    c.mlTeam = new CoordinatorClient({ address: c.address, caFile: c.caFile, credentials: { keyId: "ml-team-1", privateKey: c.mlTeamKey.privateKey } });
    return c;
  }

  principal(id: "admin-1" | "ml-team-1" | "reviewer-1"): CoordinatorClient {
    const k = privateKeyFromPem(readFileSync(join(this.coordinator.paths.keysOut, `${id}.key`), "utf8"));
    return new CoordinatorClient({ address: this.address, caFile: this.caFile, credentials: { keyId: id, privateKey: k.privateKey } });
  }

  async enroll(name: string, interceptors?: grpc.Interceptor[]): Promise<{ client: CoordinatorClient; deviceId: string; identity: Ed25519KeyPair; coordinatorPublicKey: Uint8Array }> {
    const { token } = await this.admin.unary<object, { token: string }>("Enrollment", "CreateToken", { ttlSeconds: 600, label: name });
    const identity = generateEd25519();
    const client = new CoordinatorClient({ address: this.address, caFile: this.caFile, ...(interceptors ? { interceptors } : {}) });
    const r = await client.unary<object, { deviceId: string; coordinatorPublicKey: Buffer }>("Enrollment", "Enroll", { token, identityPublicKey: Buffer.from(identity.publicRaw), deviceLabel: name });
    client.credentials = { keyId: r.deviceId, privateKey: identity.privateKey };
    return { client, deviceId: r.deviceId, identity, coordinatorPublicKey: new Uint8Array(r.coordinatorPublicKey) };
  }

  /**
   * Enrolls and subscribes a device whose training is `hooks.train`. With `silentAt`, the device
   * keeps its connection but ignores the coordinator's message of that phase (and so never
   * answers it): a laptop that hangs without disconnecting, which only a phase deadline ends.
   * `interceptors` see every call the device makes (tests that tamper with what it sends).
   */
  async addDevice(name: string, hooks: ParticipantHooks, limits: DeviceLimits = OPEN_LIMITS, o: { silentAt?: (ev: ServerEvent) => boolean; interceptors?: grpc.Interceptor[] } = {}): Promise<TestDevice> {
    const e = await this.enroll(name, o.interceptors);
    const budget = new BudgetRecord();
    const events: ParticipantEvent[] = [];
    let sub: RoundSubscription | undefined;
    const participant = new RoundParticipant({
      deviceId: e.deviceId,
      identity: e.identity,
      coordinatorPublicKey: e.coordinatorPublicKey,
      client: e.client,
      limits,
      budget,
      hooks: {
        ...hooks,
        onDrop: (cfg, phase) => {
          hooks.onDrop?.(cfg, phase);
          sub?.goOffline(200);
        },
        onEvent: (ev) => {
          events.push(ev);
          hooks.onEvent?.(ev);
        },
      },
    });
    sub = new RoundSubscription({ client: e.client, backend: "test", eligible: () => true, onEvent: async (ev) => (o.silentAt?.(ev) ? undefined : participant.handle(ev)) });
    sub.start();
    const dev: TestDevice = { name, deviceId: e.deviceId, identity: e.identity, client: e.client, subscription: sub, budget, events, stop: () => sub!.stop() };
    this.devices.push(dev);
    return dev;
  }

  async waitConnected(n: number, timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (this.coordinator.hub.eligibleDevices().length < n) {
      if (Date.now() > end) throw new Error(`only ${this.coordinator.hub.eligibleDevices().length} of ${n} devices connected`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async launch(spec: RunSpec): Promise<string> {
    const specJson = JSON.stringify(spec);
    const st = await this.mlTeam.unary<object, RunStatus>("RunControl", "LaunchRun", { specJson, requestSignature: Buffer.from(signBytes(this.mlTeamKey.privateKey, specJson)) });
    return st.runId;
  }

  async waitRun(runId: string, timeoutMs = 60_000): Promise<RunStatus> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const st = await this.mlTeam.unary<object, RunStatus>("RunControl", "GetRun", { runId });
      if (["completed", "failed", "cancelled"].includes(st.state)) return st;
      if (Date.now() > end) throw new Error(`run ${runId} still ${st.state} (${st.currentPhase}) after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    for (const d of this.devices) {
      d.stop();
      d.client.close();
    }
    this.admin?.close();
    this.mlTeam?.close();
    await this.coordinator?.stop();
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}
