/**
 * Runs are executed as BullMQ jobs on Redis, one job per round attempt (queue `tacit-rounds`).
 *
 * Crash safety (README "Security"): a round becomes committed at one atomic step — the rename of
 * its checkpoint directory, which carries the round's commit record. Publishing it (ledger
 * entries, LATEST, the run's progress in Redis, the next job) is idempotent and redone by
 * `reconcile` whenever a coordinator (re)starts, Redis comes back, or a job is picked up. A round
 * attempt that was in flight when its coordinator died (its SecAgg state lived only in memory)
 * is recorded as aborted, once, and the round re-runs as a new attempt from the last committed
 * checkpoint.
 *
 * Liveness:
 * - Jobs are fenced by (run, round, attempt): only the attempt recorded as the run's next one
 *   runs, and a job for the next round that arrives while the previous round's job is still
 *   finishing (its commit enqueues the next job) waits for it instead of being dropped.
 * - Every way an attempt can end — completed, aborted by SecAgg, failed by any error, cancelled,
 *   interrupted by a shutdown — is recorded (Redis and ledger) and followed by the next job or by
 *   the run's end; the retry limit counts aborts and errors, not cancels or shutdowns.
 * - A watchdog re-enqueues any live run that has no waiting or active job, so a future bug of
 *   the dropped-job kind delays a run by at most one watchdog period and never hangs it.
 *
 * Only the holder of the active lease runs the scheduler (runs/active-lease.ts). On taking over
 * it fails the previous holder's orphaned jobs and resumes the runs at once; correctness against
 * a previous holder that was only paused rests on the store's put-if-absent (round-decisions.ts).
 */
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { Queue, Worker, type Job } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { emptyCounts, executeRound, PublishError, type RoundCommit, type RoundContext, type RoundResult } from "../rounds/round-runner.ts";
import { RoundInterrupted } from "../rounds/round-interrupt.ts";
import { executeEvaluation, type EvaluationLedgerSink } from "../rounds/evaluation-round.ts";
import { evalRoundNumber, evaluatesAfter } from "../../shared/run/index.ts";
import { isTerminal, type RoundRecord, type RunRecord, type RunStore, type TerminalRunState } from "./run-store.ts";
import { failpoint } from "./failpoint.ts";
import type { AttemptOutcome } from "./round-decisions.ts";

export const ROUNDS_QUEUE = "tacit-rounds";
/** A round is attempted at most this many times (aborts and errors count; cancels and shutdowns don't). */
export const MAX_ROUND_ATTEMPTS = 3;
/** How often the watchdog looks for live runs without a job. */
export const DEFAULT_WATCHDOG_MS = 30_000;
/** How long a cancel or a shutdown waits for the round running here to reach its next boundary. */
const INTERRUPT_WAIT_MS = 8_000;
/** Job states in which a job will still run (or is running). */
const LIVE_JOB_STATES = ["waiting", "delayed", "active", "prioritized", "waiting-children", "paused"] as const;

interface RoundJob {
  runId: string;
  round: number;
  attempt: number;
  /** Failed attempts (aborts and errors) of this round so far; lost, cancelled or shut-down ones do not count. */
  aborts?: number;
}

export interface RunLifecycleSink {
  runEnded(run: RunRecord, state: TerminalRunState, detail: string): Promise<void>;
}

/** What the scheduler needs of the ledger to publish commits exactly once. */
export interface RunLedger extends RunLifecycleSink, Partial<EvaluationLedgerSink> {
  hasEvaluation?(runId: string, round: number): boolean;
  /** Reads what other coordinators appended, before roundStatus/hasRunEnd are asked. */
  refresh(): Promise<void>;
  roundStatus(runId: string, round: number, attempt: number): string | undefined;
  hasRunEnd(runId: string): boolean;
  /** How the ledger says the run ended, if it did. */
  runEndState(runId: string): TerminalRunState | undefined;
}

export interface SchedulerOptions {
  watchdogMs?: number;
  /** This coordinator's name in Redis and in the decisions it writes. */
  instance?: string;
}

/** A round attempt executing in this process. */
interface LocalRound {
  round: number;
  attempt: number;
  controller: AbortController;
  done: Promise<void>;
}

const inflightKey = (runId: string): string => `tacit:run:${runId}:inflight`;
const nextKey = (runId: string): string => `tacit:run:${runId}:next`;
const OWNER_KEY = "tacit:coordinator:owner";
const jobId = (runId: string, round: number, attempt: number): string => `${runId}-r${round}-a${attempt}`;
/** A name for one coordinator process: host, pid and a random tag (pids are reused). */
export const newInstanceId = (): string => `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());

interface Owner {
  instance: string;
  pid: number;
  host: string;
}

function runEndDetail(run: RunRecord): string {
  return run.state === "failed" ? run.error : run.state === "cancelled" ? "cancelled by the ML team" : `${run.roundsDone} rounds completed`;
}

/** The record of an attempt that ended without a commit and without per-phase figures. */
function abortedRecord(run: RunRecord, round: number, attempt: number, detail: string): RoundRecord {
  const now = Date.now();
  return {
    round, attempt, status: "aborted", cohort: 0, survivors: 0, modelHashBefore: run.modelHash, modelHashAfter: run.modelHash, detail,
    phases: emptyCounts(), secagg: { threshold: 0, degree: 0, mode: "", guarantee: "", bits: run.spec.bits }, startedAt: now, endedAt: now,
  };
}

export class RunScheduler {
  private readonly queue: Queue<RoundJob>;
  private worker: Worker<RoundJob> | undefined;
  private workerConnection: Redis | undefined;
  /** Round attempts executing in this process, by run. */
  private readonly local = new Map<string, LocalRound>();
  readonly instance: string;
  private closed = false;
  private onReady: (() => void) | undefined;
  private watchdogTimer: NodeJS.Timeout | undefined;
  private watchdogRunning: Promise<void> | undefined;
  /** Consecutive times the watchdog failed to move each run. */
  private readonly reviveFailures = new Map<string, number>();
  private readonly watchdogMs: number;

  constructor(
    private readonly connection: Redis,
    private readonly runs: RunStore,
    private readonly round: RoundContext,
    private readonly lifecycle: RunLedger,
    private readonly log: Logger,
    opts: SchedulerOptions = {},
  ) {
    this.queue = new Queue<RoundJob>(ROUNDS_QUEUE, { connection });
    this.watchdogMs = opts.watchdogMs ?? DEFAULT_WATCHDOG_MS;
    this.instance = opts.instance ?? newInstanceId();
  }

  async start(): Promise<void> {
    await this.queue.waitUntilReady();
    await this.recover();
    // BullMQ workers block on their connection, so they get their own (closed in close()).
    this.workerConnection = this.connection.duplicate();
    this.workerConnection.on("error", () => undefined);
    this.worker = new Worker<RoundJob>(ROUNDS_QUEUE, (job) => this.process(job), {
      connection: this.workerConnection,
      concurrency: 4,
      // Rounds run for minutes; the lock is renewed while this process lives. A dead
      // coordinator's job becomes stalled after lockDuration and is picked up again.
      lockDuration: 30_000,
      stalledInterval: 15_000,
      maxStalledCount: 10,
    });
    this.worker.on("failed", (job, err) => this.log.error({ job: job?.id, err: err.message }, "round job failed"));
    this.worker.on("error", (err) => this.log.error({ err: err.message }, "round worker error"));
    await this.worker.waitUntilReady();
    // Redis restarted (AOF keeps at most the last second of writes at risk): re-derive the runs'
    // progress from the durable checkpoints and ledger, and make sure every live run has its job.
    let timer: NodeJS.Timeout | undefined;
    this.onReady = () => {
      if (this.closed) return;
      clearTimeout(timer);
      timer = setTimeout(() => {
        this.recover({ afterRedisRestart: true }).catch((err: Error) => this.log.error({ err: err.message }, "reconciliation after Redis reconnect failed"));
      }, 500);
      timer.unref();
    };
    this.connection.on("ready", this.onReady);
    this.watchdogTimer = setInterval(() => {
      if (this.watchdogRunning || this.closed) return;
      this.watchdogRunning = this.watchdog()
        .catch((err: Error) => this.log.error({ err: err.message }, "run watchdog failed"))
        .finally(() => (this.watchdogRunning = undefined));
    }, this.watchdogMs);
    this.watchdogTimer.unref();
  }

  /**
   * Brings every run in line with what is durable: publishes committed rounds, records ledger
   * run ends, turns attempts lost in flight (with a dead or paused previous holder of the lease)
   * into aborted records, and re-enqueues.
   */
  private async recover(o: { afterRedisRestart?: boolean } = {}): Promise<void> {
    // The scheduler runs only in the holder of the active lease (coordinator.ts), so whoever ran
    // these runs before is dead, or paused and about to find its lease gone: its jobs can never
    // finish here. They are failed now (token "0" skips the old worker's lock) instead of waiting
    // for their locks to expire, and their attempts are decided lost in the store — where a
    // paused coordinator that wakes up loses the race and stands down (design note §3.5).
    // After a Redis reconnect the active jobs are this process's own and carry on.
    await this.connection.set(OWNER_KEY, JSON.stringify({ instance: this.instance, pid: process.pid, host: hostname() } satisfies Owner));
    if (!o.afterRedisRestart) {
      for (const job of await this.queue.getJobs(["active"])) {
        await job.moveToFailed(new Error("the coordinator running this round died"), "0", false).catch(() => undefined);
      }
    }
    await this.lifecycle.refresh();
    for (const runId of await this.runs.list()) {
      if (this.local.has(runId)) continue;
      const run = await this.runs.get(runId);
      if (!run) continue;
      await this.runs.indexLiveness(run);
      if (isTerminal(run.state)) {
        await this.settleEnd(run);
        continue;
      }
      await this.revive(run);
    }
  }

  /**
   * Makes a live run that nothing is executing move again: publishes what is committed, records
   * an attempt lost in flight as aborted and enqueues the next attempt, or enqueues the run's
   * next job. Only for runs with no live job anywhere (a fresh start, or the watchdog's finding).
   */
  private async revive(initial: RunRecord): Promise<void> {
    const run = await this.reconcile(initial);
    if (isTerminal(run.state)) return this.settleEnd(run);
    const lost = await this.connection.get(inflightKey(run.runId));
    if (lost) {
      const [r, a] = lost.split(":").map(Number) as [number, number];
      if ((await this.recordLost(run, r, a)) !== "lost") {
        await this.reconcile(run);
        await this.clearInflight(run.runId, r);
        return;
      }
      const next = await this.readNext(run);
      // A lost attempt counts towards the round's limit, like an abort: a round that kills its
      // coordinator every time (or can never be recorded) fails the run instead of looping.
      const failures = (next.round === r ? next.aborts : 0) + 1;
      if (failures >= MAX_ROUND_ATTEMPTS) {
        await this.failRun(run, `round ${r} failed ${MAX_ROUND_ATTEMPTS} attempts; last: attempt ${a} was lost with its coordinator`);
      } else {
        await this.enqueue(run.runId, r, Math.max(a + 1, next.round === r ? next.attempt : 0), 0, failures);
      }
      await this.connection.del(inflightKey(run.runId));
    } else {
      await this.ensureJob(run);
    }
  }

  /** The reconcile loop's safety net: every live run has a waiting or active job. */
  private async watchdog(): Promise<void> {
    const owner = await this.connection.get(OWNER_KEY);
    if (!owner || (JSON.parse(owner) as Owner).instance !== this.instance) return; // another coordinator owns the runs
    const orphans = await this.runsWithoutJob();
    if (orphans.length === 0) return;
    // A job may have been between two states while we looked: look once more before acting.
    await sleep(Math.min(1000, this.watchdogMs / 2));
    const still = new Set(await this.runsWithoutJob());
    for (const runId of orphans) {
      if (!still.has(runId) || this.closed) continue;
      const run = await this.runs.get(runId);
      if (!run) continue;
      this.log.warn({ runId, roundsDone: run.roundsDone, state: run.state }, "watchdog: a live run had no job; re-enqueueing it");
      try {
        await this.revive(run);
        this.reviveFailures.delete(runId);
      } catch (err) {
        await this.reviveFailed(run, err);
      }
    }
  }

  /**
   * The watchdog could not move a run (the ledger or a checkpoint keeps failing). A round that is
   * committed but unpublished is retried for as long as it takes — failing the run would leave a
   * released aggregate out of the ledger — and says so in the run's phase. Anything else fails the
   * run after MAX_ROUND_ATTEMPTS tries, so a broken store ends a run instead of hanging it.
   */
  private async reviveFailed(run: RunRecord, err: unknown): Promise<void> {
    const msg = err instanceof Error ? err.message : String(err);
    const tries = (this.reviveFailures.get(run.runId) ?? 0) + 1;
    this.reviveFailures.set(run.runId, tries);
    this.log.error({ runId: run.runId, tries, err: msg }, "watchdog: could not move a live run");
    if (await this.round.checkpoints.committed(run.runId, run.roundsDone)) {
      await this.runs.update(run.runId, { currentPhase: `round ${run.roundsDone} committed; publishing it failed ${tries} times (${msg}); retrying` });
      return;
    }
    if (tries < MAX_ROUND_ATTEMPTS) return;
    this.reviveFailures.delete(run.runId);
    await this.failRun(run, `round ${run.roundsDone}: the coordinator could not record its attempt ${tries} times; last: ${msg}`);
  }

  /** Fails a live run with `msg` as its reason and writes its run-end (or leaves that to the next start if the ledger still fails). */
  private async failRun(run: RunRecord, msg: string): Promise<void> {
    if (!(await this.runs.tryTransition(run.runId, "fail", { error: msg, currentPhase: "failed" }))) return;
    this.log.error({ runId: run.runId, err: msg }, "run failed");
    await this.lifecycle.runEnded({ ...run, state: "failed", error: msg }, "failed", msg).catch((e: Error) => this.log.error({ runId: run.runId, err: e.message }, "the run's end could not be recorded in the ledger yet; the next start records it"));
  }

  /** Live runs that no job (waiting, delayed or active, here or elsewhere) is going to move. */
  private async runsWithoutJob(): Promise<string[]> {
    const jobs = await this.queue.getJobs([...LIVE_JOB_STATES]);
    const covered = new Set(jobs.filter((j) => j?.data).map((j) => j.data.runId));
    const out: string[] = [];
    for (const runId of await this.runs.listLive()) {
      if (this.local.has(runId) || covered.has(runId)) continue;
      const run = await this.runs.get(runId);
      if (run && !isTerminal(run.state)) out.push(runId);
    }
    return out;
  }

  /** A terminal run's ledger gets its run-end entry exactly once. */
  private async settleEnd(run: RunRecord): Promise<void> {
    if (isTerminal(run.state) && !this.lifecycle.hasRunEnd(run.runId)) await this.lifecycle.runEnded(run, run.state, runEndDetail(run));
  }

  private async readNext(run: RunRecord): Promise<{ round: number; attempt: number; aborts: number }> {
    const raw = await this.connection.get(nextKey(run.runId));
    const n = raw ? (JSON.parse(raw) as { round: number; attempt: number; aborts: number }) : undefined;
    return n && n.round === run.roundsDone ? n : { round: run.roundsDone, attempt: 0, aborts: 0 };
  }

  /** Enqueues the run's next attempt unless its job is already waiting or running. */
  private async ensureJob(run: RunRecord): Promise<void> {
    const next = await this.readNext(run);
    const job = await this.queue.getJob(jobId(run.runId, next.round, next.attempt));
    if (job) {
      const state = await job.getState();
      if ((LIVE_JOB_STATES as readonly string[]).includes(state)) return;
      await job.remove().catch(() => undefined);
    }
    await this.enqueue(run.runId, next.round, next.attempt, 0, next.aborts);
  }

  /**
   * Publishes every round whose checkpoint is committed but whose ledger entries, LATEST pointer
   * or Redis progress may be missing (a crash between those writes, or Redis losing its last
   * second of writes). Idempotent; returns the run as it stands afterwards.
   */
  private async reconcile(run: RunRecord): Promise<RunRecord> {
    await this.lifecycle.refresh();
    const ended = this.lifecycle.runEndState(run.runId);
    if (ended && !isTerminal(run.state)) {
      // Redis lost writes the ledger holds (a Sentinel failover or a restart loses its last
      // moment of writes): the ledger is authoritative, and nothing may be appended after a
      // run's end, so Redis is brought to the ledger's end instead of republishing rounds.
      this.log.warn({ runId: run.runId, ended }, "the ledger has this run's end but Redis does not: taking the ledger's");
      const t = ended === "completed" ? "complete" : ended === "failed" ? "fail" : "cancel";
      const done = ended === "completed" ? { roundsDone: run.spec.rounds, currentPhase: "done" } : { currentPhase: ended };
      // "complete" is entered only from running: a run Redis still shows as queued passes through it.
      if (t === "complete") await this.runs.tryTransition(run.runId, "start", {});
      await this.runs.tryTransition(run.runId, t, done);
      await this.connection.del(inflightKey(run.runId));
      return (await this.runs.get(run.runId)) ?? run;
    }
    for (let r = run.roundsDone; r < run.spec.rounds; r++) {
      if (!(await this.round.checkpoints.committed(run.runId, r))) break;
      this.log.warn({ runId: run.runId, round: r }, "publishing a committed round");
      await this.commit(run.runId, r);
    }
    return (await this.runs.get(run.runId)) ?? run;
  }

  /** Publishes committed round `round`: ledger (round, attestations, run end), LATEST, Redis, next job. */
  async commit(runId: string, round: number): Promise<void> {
    const run = await this.runs.get(runId);
    if (!run) throw new Error(`no run ${runId}`);
    const committed = await this.round.checkpoints.committed(runId, round);
    if (!committed) throw new Error(`round ${round} of run ${runId} has no commit record`);
    const c = committed.commit as RoundCommit;
    const cp = committed.checkpoint;
    await this.round.ledger.round({
      run,
      record: c.record,
      cohort: c.cohort,
      survivors: c.survivors,
      declines: c.declines,
      event: c.event,
      attestations: c.attestations.map((a) => ({ ...a, signature: new Uint8Array(Buffer.from(a.signature, "base64")) })),
    });
    failpoint("after-ledger", round);
    const done = round + 1;
    // A run that evaluates ends in the job after its last round, once the final evaluation ran.
    const finished = done >= run.spec.rounds && !run.spec.evaluation;
    const ptr = await this.round.checkpoints.pointer(runId);
    if (!ptr || ptr.round < round) await this.round.checkpoints.point(runId, round, cp.hash, cp.dir);
    // Whoever moves the run's progress past this round enqueues its next job; a coordinator
    // finding it already moved (a successor published it) leaves the next attempt alone.
    const publishedHere = run.roundsDone <= round;
    if (publishedHere) {
      await this.runs.recordRound(runId, c.record, { roundsDone: done, modelHash: cp.hash, currentPhase: finished ? "done" : "waiting" });
    }
    if (finished && (await this.runs.tryTransition(runId, "complete"))) {
      await this.lifecycle.runEnded({ ...run, state: "completed" }, "completed", `${done} rounds completed`);
    }
    await this.clearInflight(runId, round);
    const now = await this.runs.get(runId);
    if (!finished && publishedHere && now && !isTerminal(now.state)) await this.enqueue(runId, done, 0, 0, 0);
    if (now && isTerminal(now.state)) await this.settleEnd(now);
  }

  /**
   * Decides an attempt that died with its coordinator as lost (put-if-absent in the store), and
   * records the outcome that stands once, in Redis and the ledger. If its coordinator had
   * already decided it as completed (it died or was paused right after), the round's commit
   * record is written from that outcome instead and "committed" is returned: the round is
   * published, never re-run.
   */
  private async recordLost(run: RunRecord, round: number, attempt: number): Promise<"lost" | "committed" | "done"> {
    if (run.roundsDone > round) return "done";
    const st = await this.runs.roundState(run.runId, round);
    const phase = Number(st.attempt) === attempt && st.phase ? st.phase : "unknown";
    const lost = abortedRecord(run, round, attempt, `the attempt was lost with its coordinator (crashed, or could not record it) in phase ${phase}; the round is re-run from the last checkpoint`);
    const decided = await this.round.checkpoints.decisions.decideAttempt(run.runId, { status: "lost", record: lost as unknown as AttemptOutcome["record"], by: this.instance });
    if (decided.outcome.status === "completed") {
      await this.round.checkpoints.decisions.commit(run.runId, decided.outcome);
      this.log.warn({ runId: run.runId, round, attempt, by: decided.outcome.by }, "round attempt completed before its coordinator was lost; publishing its commit");
      return "committed";
    }
    const record = decided.outcome.record as unknown as RoundRecord;
    const ledger = (decided.outcome.ledger ?? { cohort: [], declines: {} }) as { cohort: string[]; declines: Record<string, string> };
    const recorded = (await this.runs.rounds(run.runId)).some((r) => r.round === round && r.attempt === attempt);
    if (!recorded) await this.runs.recordRound(run.runId, record, {});
    await this.lifecycle.refresh();
    if (this.lifecycle.roundStatus(run.runId, round, attempt) === undefined && !this.lifecycle.hasRunEnd(run.runId)) {
      await this.round.ledger.round({ run, record, cohort: ledger.cohort, survivors: [], declines: ledger.declines, event: undefined, attestations: [] });
    }
    this.log.warn({ runId: run.runId, round, attempt, phase }, "round attempt lost; re-running the round");
    return "lost";
  }

  /** Forgets the attempt in flight of `round`, leaving a later round's (a successor's) alone. */
  private async clearInflight(runId: string, round: number): Promise<void> {
    const v = await this.connection.get(inflightKey(runId));
    if (v && Number(v.split(":")[0]) === round) await this.connection.del(inflightKey(runId));
  }

  async enqueue(runId: string, round: number, attempt: number, delayMs = 0, aborts = 0): Promise<void> {
    await this.connection.set(nextKey(runId), JSON.stringify({ round, attempt, aborts }));
    await this.queue.add("round", { runId, round, attempt, aborts }, {
      jobId: jobId(runId, round, attempt),
      delay: delayMs,
      removeOnComplete: 1000,
      removeOnFail: 1000,
      attempts: 1,
    });
  }

  /**
   * Cancels a run: no one is invited after this, and a round running here is stopped at its
   * next phase boundary and recorded as cancelled before the run's end is written.
   */
  async cancel(runId: string): Promise<void> {
    await this.runs.transition(runId, "cancel", { currentPhase: "cancelled" });
    const running = this.local.get(runId);
    if (running) {
      running.controller.abort(new RoundInterrupted("cancelled"));
      await Promise.race([running.done, sleep(INTERRUPT_WAIT_MS * 3)]);
    }
    const run = await this.runs.get(runId);
    if (run) await this.settleEnd(run);
  }

  private async process(job: Job<RoundJob>): Promise<void> {
    const { runId, round, attempt } = job.data;
    for (;;) {
      const running = this.local.get(runId);
      if (!running) break;
      // The same attempt delivered twice (e.g. Redis lost the job's move to active): the one
      // running carries on, the duplicate does nothing.
      if (running.round === round && running.attempt === attempt) return;
      // Another attempt of this run is still finishing here — typically round r's job, whose
      // commit enqueued round r+1. Wait for it; processRound's fencing decides what runs.
      await running.done;
    }
    // A job delivered while shutting down fails, and is re-enqueued by the next start.
    if (this.closed) throw new Error("the coordinator is shutting down");
    const controller = new AbortController();
    let finish!: () => void;
    const done = new Promise<void>((r) => (finish = r));
    this.local.set(runId, { round, attempt, controller, done });
    try {
      await this.processRound(job.data, controller.signal);
    } finally {
      this.local.delete(runId);
      finish();
    }
  }

  private async processRound(data: RoundJob, signal: AbortSignal): Promise<void> {
    const { runId, round } = data;
    let { attempt } = data;
    let run = await this.runs.get(runId);
    if (!run || isTerminal(run.state)) return;
    run = await this.reconcile(run);
    if (isTerminal(run.state) || run.roundsDone > round) return; // already done (duplicate delivery)
    const next = await this.readNext(run);
    if (next.round !== round || next.attempt > attempt) return; // fenced: another attempt or round superseded this job

    const redis = this.connection;
    const previous = await redis.get(inflightKey(runId));
    if (previous) {
      // An attempt was in flight when its coordinator died (BullMQ handed its stalled job over):
      // its in-memory SecAgg state is gone, so it is recorded as aborted and the round re-runs.
      const [r, a] = previous.split(":").map(Number) as [number, number];
      if ((await this.recordLost(run, r, a)) === "committed") {
        await this.reconcile(run);
        return;
      }
      if (r === round) attempt = Math.max(attempt, a + 1);
    }
    const aborts = data.aborts ?? 0;
    await redis.set(nextKey(runId), JSON.stringify({ round, attempt, aborts }));
    await redis.set(inflightKey(runId), `${round}:${attempt}`);
    if (!(await this.runs.tryTransition(runId, "start", { currentPhase: `round ${round}` }))) {
      // Cancelled or failed meanwhile: nobody is invited.
      await redis.del(inflightKey(runId));
      const now = await this.runs.get(runId);
      if (now) await this.settleEnd(now);
      return;
    }

    // The evaluation due after the previous round runs first (job `rounds` is the final one).
    if (round > 0 && evaluatesAfter(run.spec, round - 1)) await this.evaluate(run, round - 1, signal);
    if (round >= run.spec.rounds) return this.completeAfterEvaluation(run);

    let result: RoundResult;
    try {
      result = await executeRound(this.round, run, round, attempt, signal);
    } catch (err) {
      if (err instanceof PublishError) return this.republish(run, round, err);
      // An error before anyone was invited (reading the checkpoint or the registry): nothing was
      // spent, but the attempt still ends on the record and counts towards the retry limit.
      const detail = `error before the round started: ${err instanceof Error ? err.message : String(err)}`;
      result = { status: "aborted", cause: "error", cohort: [], declines: {}, record: abortedRecord(run, round, attempt, detail) };
    }
    if (result.status === "completed") return; // published by commit()
    await this.endAttempt(run, result, attempt, aborts);
  }

  /**
   * Runs the evaluation of the model committed by `afterRound` unless one was recorded already
   * (a re-delivered job). Its outcome, whatever it is, is recorded and the run goes on.
   */
  private async evaluate(run: RunRecord, afterRound: number, signal: AbortSignal): Promise<void> {
    if ((await this.runs.evaluations(run.runId)).some((e) => e.afterRound === afterRound)) return;
    // Already in the ledger (a crash between the ledger and Redis): an evaluation is run once,
    // so its ledger entry and the charges of the devices that attested it always agree.
    if (this.lifecycle.hasEvaluation?.(run.runId, evalRoundNumber(afterRound))) return;
    const sink = this.lifecycle.evaluation ? { evaluation: this.lifecycle.evaluation.bind(this.lifecycle) } : { evaluation: async () => undefined };
    await this.runs.update(run.runId, { currentPhase: `evaluation after round ${afterRound}` });
    try {
      const rec = await executeEvaluation({ ...this.round, evaluations: sink }, run, afterRound, signal);
      await this.runs.recordEvaluation(run.runId, rec);
      this.log.info({ runId: run.runId, afterRound, status: rec.status, metrics: rec.metrics }, "evaluation round ended");
    } catch (err) {
      // Evaluation never blocks training: an error here (e.g. the ledger already closed by a
      // cancel) is logged and the job goes on to its training round or the run's end.
      this.log.warn({ runId: run.runId, afterRound, err: (err as Error).message }, "evaluation round failed");
    }
  }

  /** The job after an evaluating run's last round: its final evaluation ran, the run completes. */
  private async completeAfterEvaluation(run: RunRecord): Promise<void> {
    if (await this.runs.tryTransition(run.runId, "complete", { currentPhase: "done" })) {
      await this.lifecycle.runEnded({ ...run, state: "completed" }, "completed", `${run.spec.rounds} rounds completed`);
    }
    await this.connection.del(inflightKey(run.runId));
    const now = await this.runs.get(run.runId);
    if (now && isTerminal(now.state)) await this.settleEnd(now);
  }

  /**
   * The round is committed but publishing it failed (e.g. the ledger could not be written):
   * try again a few times; if it still fails, the watchdog's reconcile publishes it later.
   * A committed round is never re-run.
   */
  private async republish(run: RunRecord, round: number, err: PublishError): Promise<void> {
    this.log.error({ runId: run.runId, round, err: err.message }, "publishing a committed round failed; retrying");
    for (let i = 1; i <= 3 && !this.closed; i++) {
      await sleep(500 * i);
      try {
        await this.reconcile(run);
        return;
      } catch (again) {
        this.log.error({ runId: run.runId, round, err: (again as Error).message }, "publishing a committed round failed again");
      }
    }
    throw err;
  }

  /** Records an attempt that ended without a commit, then retries the round, fails the run or settles a cancel. */
  private async endAttempt(run: RunRecord, result: Exclude<RoundResult, { status: "completed" }>, attempt: number, aborts: number): Promise<void> {
    const { runId } = run;
    const { record } = result;
    // The outcome is decided once, in the store. Finding it decided already means a successor
    // declared this attempt lost while this process was paused (or its commit was refused):
    // everything it would write now is stale, so it stands down (design note §3.5).
    const decided = await this.round.checkpoints.decisions.decideAttempt(runId, {
      status: result.status, record: record as unknown as AttemptOutcome["record"], ledger: { cohort: result.cohort, declines: result.declines }, by: this.instance,
    });
    if (!decided.won) {
      this.log.warn({ runId, round: record.round, attempt, decided: decided.outcome.status, by: decided.outcome.by }, "round attempt was decided by another coordinator; standing down");
      return;
    }
    await this.lifecycle.refresh();
    if (!this.lifecycle.hasRunEnd(runId) && this.lifecycle.roundStatus(runId, record.round, attempt) === undefined) {
      await this.round.ledger.round({ run, record, cohort: result.cohort, survivors: [], declines: result.declines, event: undefined, attestations: [] });
    }
    await this.runs.recordRound(runId, record, { currentPhase: result.status === "cancelled" ? "cancelled" : "retrying" });
    await this.clearInflight(runId, record.round);
    const now = await this.runs.get(runId);
    if (!now || isTerminal(now.state)) {
      if (now) await this.settleEnd(now);
      return;
    }
    if (result.cause === "shutdown") {
      // Not the round's fault: the next coordinator runs the next attempt at once.
      this.log.warn({ runId, round: record.round, attempt }, "round interrupted by shutdown; the next start re-runs it");
      return this.enqueue(runId, record.round, attempt + 1, 0, aborts);
    }
    const failures = aborts + 1;
    if (failures < MAX_ROUND_ATTEMPTS) {
      this.log.warn({ runId, round: record.round, attempt, detail: record.detail }, "round attempt ended without a commit; retrying");
      return this.enqueue(runId, record.round, attempt + 1, 1000, failures);
    }
    await this.failRun(now, `round ${record.round} failed ${MAX_ROUND_ATTEMPTS} attempts; last: ${record.detail}`);
  }

  /**
   * Stops scheduling: rounds running here are interrupted at their next phase boundary and
   * recorded (their next attempt is enqueued for the next start), then the worker and queue close.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.watchdogTimer) clearInterval(this.watchdogTimer);
    if (this.onReady) this.connection.off("ready", this.onReady);
    const running = [...this.local.values()];
    for (const r of running) r.controller.abort(new RoundInterrupted("shutdown"));
    await Promise.race([Promise.allSettled(running.map((r) => r.done)), sleep(INTERRUPT_WAIT_MS)]);
    await Promise.race([this.watchdogRunning, sleep(1000)]);
    await Promise.allSettled([this.queue.waitUntilReady(), this.worker?.waitUntilReady()]);
    await this.worker?.close(true);
    // A clean stop hands the runs over at once: the next coordinator need not wait for locks.
    // (Bounded: with Redis unreachable the commands would otherwise wait for it forever.)
    const release = async (): Promise<void> => {
      const owner = await this.connection.get(OWNER_KEY);
      if (owner && (JSON.parse(owner) as Owner).instance === this.instance) await this.connection.del(OWNER_KEY);
    };
    await Promise.race([release().catch(() => undefined), sleep(1000)]);
    await this.queue.close();
    this.workerConnection?.disconnect();
  }
}
