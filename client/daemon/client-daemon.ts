/**
 * The laptop daemon (`tacit client start`): capture → consent filter → encrypted store, and
 * taking part in rounds only while the laptop is idle and the person's consent allows.
 *
 * It re-reads the consent file every second, so `tacit client pause|resume|consent` take effect
 * on a running daemon without a restart. Eligibility (idle, not paused, enough local data) is
 * announced on the Subscribe stream; it is only re-announced between rounds, because dropping
 * the stream mid-round would drop this device from that round.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import type { Logger } from "pino";
import { publicKeyFromRaw } from "../../shared/crypto/index.ts";
import { writeFileAtomic } from "../../shared/fs/write-file-atomic.ts";
import { loadEnrollment, loadIdentity } from "../identity/device-identity.ts";
import { loadConsent, requireConsent, type Consent } from "../consent/consent.ts";
import { clientPaths, type ClientPaths } from "../state/client-dirs.ts";
import { BudgetRecord } from "../participant/budget-record.ts";
import { RoundParticipant, type ParticipantEvent } from "../participant/round-participant.ts";
import type { KeyObject } from "node:crypto";
import { CoordinatorClient } from "../transport/coordinator-client.ts";
import { RoundSubscription } from "../transport/round-subscription.ts";
import { ActionStore, type ActionRecord } from "../store/action-store.ts";
import { LocalTrainer } from "./local-trainer.ts";
import { syncLedgerCopy } from "./ledger-copy.ts";
import { loadDeviceModel, saveDeviceModel } from "../suggest/device-model.ts";
import { suggestNext, type Suggestions } from "../suggest/suggest.ts";
import { SuggestServer, suggestSocketPath } from "../suggest/suggest-server.ts";
import type * as grpc from "@grpc/grpc-js";
import type { DeviceLimits } from "../participant/device-guard.ts";

/** What the daemon needs from capture; the real one is CaptureService (uiohook-napi + X11). */
export interface CaptureLike {
  start(): Promise<void>;
  stop(): Promise<void>;
  pause(): void;
  resume(): void;
  setConsent(c: { apps: string[]; kinds: Consent["kinds"] }): void;
  lastInputAt(): number;
}

export interface DaemonOptions {
  stateDir: string;
  /** No input for this long makes the laptop idle (eligible for rounds). */
  idleMs: number;
  log: Logger;
  /** Builds the capture; undefined = no capture (rounds on already stored data only). */
  capture?: (onAction: (r: ActionRecord) => void, consent: Consent) => CaptureLike;
  /** Smallest number of stored actions before this laptop offers itself for rounds. */
  minActions?: number;
  /** Test hook: extra gRPC client interceptors (e.g. recording every outgoing message). */
  interceptors?: grpc.Interceptor[];
  onParticipantEvent?: (e: ParticipantEvent) => void;
  /** Where the suggestion socket listens (default: suggestSocketPath of the state dir). */
  suggestSocket?: string;
}

export interface DaemonStatus {
  pid: number;
  startedAt: number;
  updatedAt: number;
  capture: "running" | "paused" | "off";
  connected: boolean;
  idle: boolean;
  eligible: boolean;
  storedActions: number;
  /** When the buffer was last sealed at another command's request (see requestDaemonFlush). */
  flushedAt?: number;
  lastEvent?: ParticipantEvent;
}

/** SIGUSR1 belongs to Node's inspector. */
const FLUSH_SIGNAL = "SIGUSR2";

/**
 * Asks a running daemon to seal its buffered actions now, and waits (up to `timeoutMs`) until
 * it has, so that review/export/delete see and reach everything captured so far.
 */
export async function requestDaemonFlush(stateDir: string, timeoutMs = 3000): Promise<boolean> {
  const pid = runningDaemonPid(stateDir);
  if (!pid) return false;
  const asked = Date.now();
  process.kill(pid, FLUSH_SIGNAL);
  const statusFile = clientPaths(stateDir).daemonStatus;
  for (const end = asked + timeoutMs; Date.now() < end; ) {
    try {
      const st = JSON.parse(readFileSync(statusFile, "utf8")) as DaemonStatus;
      if ((st.flushedAt ?? 0) >= asked) return true;
    } catch {
      // Being replaced right now; read again.
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

export class DaemonAlreadyRunningError extends Error {
  override name = "DaemonAlreadyRunningError";
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The pid of a running daemon for this state dir, if any (a stale pid file is ignored). */
export function runningDaemonPid(stateDir: string): number | undefined {
  const p = clientPaths(stateDir).daemonPid;
  if (!existsSync(p)) return undefined;
  const pid = Number(readFileSync(p, "utf8").trim());
  return Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid) ? pid : undefined;
}

export class ClientDaemon {
  private readonly paths: ClientPaths;
  private consent!: Consent;
  private store!: ActionStore;
  private capture: CaptureLike | undefined;
  private client!: CoordinatorClient;
  private subscription!: RoundSubscription;
  private readonly trainer = new LocalTrainer();
  private budget!: BudgetRecord;
  private storedActions = 0;
  private readonly activeRounds = new Set<string>();
  private announcedEligible = false;
  private connected = false;
  private lastEvent: ParticipantEvent | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();
  private flushedAt: number | undefined;
  private recountAt: number | undefined;
  private suggest: SuggestServer | undefined;
  private readonly onFlushRequest = (): void => {
    // review/export/delete read the store through their own handle: seal our buffer first, and
    // recount a moment later (a delete may follow).
    this.store.flush();
    this.flushedAt = Date.now();
    this.recountAt = Date.now() + 3000;
    this.writeStatus();
  };

  constructor(private readonly o: DaemonOptions) {
    this.paths = clientPaths(o.stateDir);
  }

  async start(): Promise<void> {
    const other = runningDaemonPid(this.o.stateDir);
    if (other) throw new DaemonAlreadyRunningError(`a Tacit daemon already runs for ${this.o.stateDir} (pid ${other}); stop it first`);
    const identity = loadIdentity(this.o.stateDir);
    const enrollment = loadEnrollment(this.o.stateDir);
    this.consent = requireConsent(this.paths.consent);
    writeFileAtomic(this.paths.daemonPid, `${process.pid}\n`, 0o600);

    this.store = ActionStore.open(this.paths.store);
    this.storedActions = this.store.read().records.length;
    this.budget = new BudgetRecord(this.paths.budget);
    await this.startCapture();

    this.client = new CoordinatorClient({
      address: enrollment.coordinator,
      caFile: enrollment.caFile,
      credentials: { keyId: enrollment.deviceId, privateKey: identity.privateKey },
      interceptors: this.o.interceptors,
    });
    const coordinatorPublicKey = new Uint8Array(Buffer.from(enrollment.coordinatorPublicKey, "base64"));
    const coordinatorKey = publicKeyFromRaw(coordinatorPublicKey);
    const participant = new RoundParticipant({
      deviceId: enrollment.deviceId,
      identity,
      coordinatorPublicKey,
      client: this.client,
      // A live view: `tacit client consent` may change the limits while the daemon runs.
      limits: this.limitsProxy(),
      budget: this.budget,
      log: this.o.log,
      hooks: {
        // The coordinator only invites devices announced eligible, but an invite can cross a
        // pause or a keystroke on the wire: the laptop decides again.
        unavailable: () =>
          this.consent.paused ? { code: "PAUSED", reason: "paused by the user" } : !this.idle() ? { code: "IN_USE", reason: "the laptop is in use" } : undefined,
        evaluate: async (cfg, weights) => {
          this.store.flush();
          return this.trainer.evaluate(cfg, weights, this.store.read().records);
        },
        train: async (cfg, weights) => {
          // The model this round starts from (hash already checked against the signed config)
          // becomes the laptop's current model, for suggestions between rounds.
          await saveDeviceModel(this.o.stateDir, { spec: cfg.model, weights, runId: cfg.runId, round: cfg.round }).catch((err: Error) => this.o.log.warn({ err: err.message }, "could not keep the round's model for suggestions"));
          this.store.flush();
          return this.trainer.train(cfg, weights, this.store.read().records);
        },
        onEvent: (e) => this.onRoundEvent(e, enrollment.deviceId, coordinatorKey),
      },
    });
    this.announcedEligible = this.eligible();
    this.subscription = new RoundSubscription({
      client: this.client,
      backend: "wasm",
      eligible: () => (this.announcedEligible = this.eligible()),
      onEvent: (ev) => participant.handle(ev),
      onArrival: (ev) => participant.arrived(ev),
      onStatus: (s) => {
        this.connected = s.connected;
        if (!s.connected) this.o.log.info({ detail: s.detail }, "coordinator stream closed; reconnecting");
      },
    });
    this.subscription.start();
    await this.startSuggestions();
    process.on(FLUSH_SIGNAL, this.onFlushRequest);
    this.timer = setInterval(() => this.tick(), 1000);
    this.writeStatus();
    this.o.log.info({ deviceId: enrollment.deviceId, capture: this.capture ? "on" : "off" }, "tacit daemon started");
  }

  /** Starts capture when configured; on failure (no X server, no permission) leaves nothing half-started. */
  private async startCapture(): Promise<void> {
    if (!this.o.capture) return;
    this.capture = this.o.capture((r) => this.onAction(r), this.consent);
    try {
      await this.capture.start();
    } catch (err) {
      // No X server or no permission: leave nothing half-started (pid file, open store).
      this.capture = undefined;
      this.store.close();
      rmSync(this.paths.daemonPid, { force: true });
      throw err;
    }
    if (this.consent.paused) this.capture.pause();
  }

  /** Tracks the rounds in progress, refreshes the local ledger copy after an outcome, and logs ids only. */
  private onRoundEvent(e: ParticipantEvent, deviceId: string, coordinatorKey: KeyObject): void {
    this.lastEvent = e;
    const key = `${e.runId}/${e.round}`;
    if (e.type === "joined") this.activeRounds.add(key);
    if (e.type === "outcome" || e.type === "dropped" || e.type === "declined" || e.type === "error") this.activeRounds.delete(key);
    if (e.type === "outcome") {
      syncLedgerCopy(this.client, deviceId, this.paths.ledgerCopy, coordinatorKey).catch((err: Error) => this.o.log.warn({ err: err.message }, "could not update the local ledger copy"));
    }
    // Never log training content; the event carries only round ids, loss and counts.
    this.o.log.info({ event: e.type, runId: e.runId, round: e.round }, "round event");
    this.o.onParticipantEvent?.(e);
  }

  /** The suggestion socket; a laptop where it cannot listen still captures and trains. */
  private async startSuggestions(): Promise<void> {
    const path = this.o.suggestSocket ?? suggestSocketPath(this.o.stateDir);
    const server = new SuggestServer({ path, answer: (top) => this.suggestions(top) });
    try {
      await server.start();
      this.suggest = server;
      this.o.log.info({ socket: path }, "serving suggestions on a local socket");
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message, socket: path }, "suggestion socket not available");
    }
  }

  /** What `tacit client suggest` prints, from the live store (buffered actions included). */
  async suggestions(top: number): Promise<Suggestions> {
    const model = await loadDeviceModel(this.o.stateDir);
    return suggestNext(model, this.store.read().records, { top, nowMs: Date.now() });
  }

  /** A live view of the consented limits for the device guard. */
  private limitsProxy(): DeviceLimits {
    const consent = (): Consent => this.consent;
    return {
      get maxDeviceEpsilon() {
        return consent().limits.maxDeviceEpsilon;
      },
      get delta() {
        return consent().limits.delta;
      },
      get minNoiseMultiplier() {
        return consent().limits.minNoiseMultiplier;
      },
      get minSurvivors() {
        return consent().limits.minSurvivors;
      },
      get signals() {
        return consent().kinds;
      },
    };
  }

  private onAction(r: ActionRecord): void {
    if (this.consent.paused) return;
    this.store.append(r);
    this.storedActions += 1;
  }

  private idle(): boolean {
    // Without capture there is no input to watch: idle from `idleMs` after the start.
    const last = this.capture ? this.capture.lastInputAt() : this.startedAt;
    return Date.now() - last >= this.o.idleMs;
  }

  private eligible(): boolean {
    return !this.consent.paused && this.idle() && this.storedActions >= (this.o.minActions ?? 64);
  }

  private tick(): void {
    this.reloadConsent();
    if (this.recountAt !== undefined && Date.now() >= this.recountAt) {
      this.recountAt = undefined;
      this.storedActions = this.store.read().records.length;
    }
    if (this.activeRounds.size === 0 && this.eligible() !== this.announcedEligible) {
      this.o.log.info({ eligible: this.eligible() }, "eligibility changed");
      this.subscription.refresh();
    }
    this.writeStatus();
  }

  private reloadConsent(): void {
    let c: Consent | undefined;
    try {
      c = loadConsent(this.paths.consent);
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, "consent file unreadable; keeping the last valid consent");
      return;
    }
    if (!c) {
      // Consent withdrawn (file removed): stop capturing at once.
      this.consent = { ...this.consent, paused: true };
      this.capture?.pause();
      return;
    }
    if (c.updatedAt === this.consent.updatedAt) return;
    const wasPaused = this.consent.paused;
    this.consent = c;
    this.capture?.setConsent({ apps: c.apps, kinds: c.kinds });
    if (c.paused && !wasPaused) {
      this.capture?.pause();
      this.store.flush();
      this.o.log.info("capture paused by the user");
    } else if (!c.paused && wasPaused) {
      this.capture?.resume();
      this.o.log.info("capture resumed by the user");
    }
  }

  status(): DaemonStatus {
    return {
      pid: process.pid,
      startedAt: this.startedAt,
      updatedAt: Date.now(),
      capture: !this.capture ? "off" : this.consent.paused ? "paused" : "running",
      connected: this.connected,
      idle: this.idle(),
      eligible: this.eligible(),
      storedActions: this.storedActions,
      flushedAt: this.flushedAt,
      lastEvent: this.lastEvent,
    };
  }

  private writeStatus(): void {
    try {
      // Rewritten every second and worthless after a crash: atomic, but not fsynced.
      writeFileAtomic(this.paths.daemonStatus, JSON.stringify(this.status()) + "\n", 0o600, { durable: false });
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, "could not write the daemon status file");
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    process.off(FLUSH_SIGNAL, this.onFlushRequest);
    this.subscription?.stop();
    await this.suggest?.stop();
    await this.capture?.stop();
    this.store?.close();
    await this.trainer.close();
    this.client?.close();
    rmSync(this.paths.daemonStatus, { force: true });
    if (existsSync(this.paths.daemonPid) && readFileSync(this.paths.daemonPid, "utf8").trim() === String(process.pid)) rmSync(this.paths.daemonPid, { force: true });
  }
}
