/**
 * Runs are executed as BullMQ jobs on Redis, one job per round attempt (queue `tacit-rounds`).
 *
 * Crash safety (README "Security"): a round becomes committed at one atomic step — the rename of
 * its checkpoint directory, which carries the round's commit record. Publishing it (ledger
 * entries, LATEST, the run's progress in Redis, the next job) is idempotent and redone by
 * `reconcile` whenever a coordinator (re)starts, Redis comes back, or a job is picked up. A round
 * attempt that was in flight when its coordinator died (its SecAgg state lived only in memory)
 * is recorded as aborted, once, and the round re-runs as a new attempt from the last committed
 * checkpoint. Jobs are fenced: only the attempt recorded as the run's next one may run, so a
 * stale or duplicated job delivery does nothing.
 *
 * When the previous coordinator on this Redis is provably dead (same host, its pid gone), its
 * orphaned job is failed and the run resumed at once; otherwise BullMQ's stalled-job recovery
 * hands the job over after its lock expires.
 */
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { Queue, Worker, type Job } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { emptyCounts, executeRound, type RoundCommit, type RoundContext } from "../rounds/round-runner.ts";
import type { RoundRecord, RunRecord, RunStore } from "./run-store.ts";
import { processAlive } from "../redis/embedded-redis.ts";
import { failpoint } from "./failpoint.ts";

export const ROUNDS_QUEUE = "tacit-rounds";
/** A round that aborts (too few survivors) is retried this many times before the run fails. */
export const MAX_ROUND_ATTEMPTS = 3;

interface RoundJob {
  runId: string;
  round: number;
  attempt: number;
  /** Aborts (too few survivors) of this round so far; attempts lost to a crash do not count. */
  aborts?: number;
}

export interface RunLifecycleSink {
  runEnded(run: RunRecord, state: "completed" | "failed" | "cancelled", detail: string): Promise<void>;
}

/** What the scheduler needs of the ledger to publish commits exactly once. */
export interface RunLedger extends RunLifecycleSink {
  roundStatus(runId: string, round: number, attempt: number): string | undefined;
  hasRunEnd(runId: string): boolean;
}

const inflightKey = (runId: string): string => `tacit:run:${runId}:inflight`;
const nextKey = (runId: string): string => `tacit:run:${runId}:next`;
const OWNER_KEY = "tacit:coordinator:owner";
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const jobId = (runId: string, round: number, attempt: number): string => `${runId}-r${round}-a${attempt}`;

interface Owner {
  instance: string;
  pid: number;
  host: string;
}

export class RunScheduler {
  private readonly queue: Queue<RoundJob>;
  private worker: Worker<RoundJob> | undefined;
  private workerConnection: Redis | undefined;
  /** Runs with a round executing in this process (guards against duplicate job deliveries). */
  private readonly local = new Set<string>();
  readonly instance = `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`;
  private closed = false;
  private onReady: (() => void) | undefined;

  constructor(
    private readonly connection: Redis,
    private readonly runs: RunStore,
    private readonly round: RoundContext,
    private readonly lifecycle: RunLedger,
    private readonly log: Logger,
  ) {
    this.queue = new Queue<RoundJob>(ROUNDS_QUEUE, { connection });
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
  }

  /**
   * Brings every run in line with what is durable: publishes committed rounds, records ledger
   * run ends, and — when this coordinator is the only one (the previous owner died, or this is
   * a Redis reconnect) — turns attempts lost in flight into aborted records and re-enqueues.
   */
  private async recover(o: { afterRedisRestart?: boolean } = {}): Promise<void> {
    const prevRaw = await this.connection.get(OWNER_KEY);
    const prev = prevRaw ? (JSON.parse(prevRaw) as Owner) : undefined;
    const sole = o.afterRedisRestart
      ? !prev || prev.instance === this.instance
      : !prev || prev.instance === this.instance || (prev.host === hostname() && !processAlive(prev.pid));
    await this.connection.set(OWNER_KEY, JSON.stringify({ instance: this.instance, pid: process.pid, host: hostname() } satisfies Owner));
    if (sole && !o.afterRedisRestart) {
      // The previous owner's jobs can never finish: fail them now (token "0" skips the lock of
      // the dead worker) instead of waiting for their locks to expire.
      for (const job of await this.queue.getJobs(["active"])) {
        await job.moveToFailed(new Error("the coordinator running this round died"), "0", false).catch(() => undefined);
      }
    }
    for (const runId of await this.runs.list()) {
      if (this.local.has(runId)) continue;
      let run = await this.runs.get(runId);
      if (!run) continue;
      if (TERMINAL.has(run.state)) {
        if (!this.lifecycle.hasRunEnd(runId)) await this.lifecycle.runEnded(run, run.state as "completed" | "failed" | "cancelled", run.state === "failed" ? run.error : run.state === "cancelled" ? "cancelled by the ML team" : `${run.roundsDone} rounds completed`);
        continue;
      }
      run = await this.reconcile(run);
      if (!sole || TERMINAL.has(run.state)) continue;
      const lost = await this.connection.get(inflightKey(runId));
      if (lost) {
        const [r, a] = lost.split(":").map(Number) as [number, number];
        await this.recordLost(run, r, a);
        const next = await this.readNext(run);
        await this.enqueue(runId, r, Math.max(a + 1, next.round === r ? next.attempt : 0), 0, next.round === r ? next.aborts : 0);
        await this.connection.del(inflightKey(runId));
      } else {
        await this.ensureJob(run);
      }
    }
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
      if (["waiting", "delayed", "active", "prioritized", "waiting-children"].includes(state)) return;
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
    const cps = this.round.checkpoints;
    for (let r = run.roundsDone; r < run.spec.rounds && cps.has(run.runId, r); r++) {
      const cp = await cps.read(run.runId, r);
      const commit = cp.meta.commit as RoundCommit | undefined;
      if (!commit) break;
      this.log.warn({ runId: run.runId, round: r }, "publishing a round committed before a crash");
      await this.commit(run.runId, r);
    }
    return (await this.runs.get(run.runId)) ?? run;
  }

  /** Publishes committed round `round`: ledger (round, attestations, run end), LATEST, Redis, next job. */
  async commit(runId: string, round: number): Promise<void> {
    const run = await this.runs.get(runId);
    if (!run) throw new Error(`no run ${runId}`);
    const cp = await this.round.checkpoints.read(runId, round);
    const c = cp.meta.commit as RoundCommit;
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
    const finished = done >= run.spec.rounds;
    const cancelled = run.state === "cancelled";
    if (finished && !cancelled) await this.lifecycle.runEnded(run, "completed", `${done} rounds completed`);
    const ptr = this.round.checkpoints.pointer(runId);
    if (!ptr || ptr.round < round) this.round.checkpoints.point(runId, round, cp.hash);
    if (run.roundsDone <= round) {
      await this.runs.recordRound(runId, c.record, {
        roundsDone: done,
        modelHash: cp.hash,
        currentPhase: finished ? "done" : "waiting",
        ...(finished && !cancelled ? { state: "completed" as const } : {}),
      });
    }
    await this.connection.del(inflightKey(runId));
    if (!finished && !cancelled) await this.enqueue(runId, done, 0, 0, 0);
  }

  /** Records an attempt that died with its coordinator as aborted (once, in Redis and the ledger). */
  private async recordLost(run: RunRecord, round: number, attempt: number): Promise<void> {
    if (run.roundsDone > round) return;
    const st = await this.runs.roundState(run.runId, round);
    const phase = Number(st.attempt) === attempt && st.phase ? st.phase : "unknown";
    const lost: RoundRecord = {
      round, attempt, status: "aborted", cohort: 0, survivors: 0, modelHashBefore: run.modelHash, modelHashAfter: run.modelHash,
      detail: `coordinator restarted during this round (phase ${phase}); the round is re-run from the last checkpoint`,
      phases: emptyCounts(),
      secagg: { threshold: 0, degree: 0, mode: "", guarantee: "", bits: run.spec.bits }, startedAt: Date.now(), endedAt: Date.now(),
    };
    const recorded = (await this.runs.rounds(run.runId)).some((r) => r.round === round && r.attempt === attempt);
    if (!recorded) await this.runs.recordRound(run.runId, lost, {});
    if (this.lifecycle.roundStatus(run.runId, round, attempt) === undefined) {
      await this.round.ledger.round({ run, record: lost, cohort: [], survivors: [], declines: {}, event: undefined, attestations: [] });
    }
    this.log.warn({ runId: run.runId, round, attempt, phase }, "round attempt lost with its coordinator; re-running the round");
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

  private async process(job: Job<RoundJob>): Promise<void> {
    const { runId } = job.data;
    // A duplicate delivery (e.g. Redis lost the job's move to active) while this process runs
    // a round of the same run: the running round carries on, the duplicate does nothing.
    if (this.local.has(runId)) return;
    this.local.add(runId);
    try {
      await this.processRound(job.data);
    } finally {
      this.local.delete(runId);
    }
  }

  private async processRound(data: RoundJob): Promise<void> {
    const { runId, round } = data;
    let { attempt } = data;
    let aborts = data.aborts ?? 0;
    let run = await this.runs.get(runId);
    if (!run || TERMINAL.has(run.state)) return;
    run = await this.reconcile(run);
    if (TERMINAL.has(run.state) || run.roundsDone > round) return; // already done (duplicate delivery)
    const next = await this.readNext(run);
    if (next.round === round && next.attempt > attempt) return; // fenced: a later attempt superseded this job

    const redis = this.connection;
    const previous = await redis.get(inflightKey(runId));
    if (previous) {
      // An attempt was in flight when its coordinator died (BullMQ handed its stalled job over):
      // its in-memory SecAgg state is gone, so it is recorded as aborted and the round re-runs.
      const [r, a] = previous.split(":").map(Number) as [number, number];
      await this.recordLost(run, r, a);
      if (r === round) attempt = Math.max(attempt, a + 1);
    }
    await redis.set(nextKey(runId), JSON.stringify({ round, attempt, aborts }));
    await redis.set(inflightKey(runId), `${round}:${attempt}`);
    await this.runs.update(runId, { state: "running", currentPhase: `round ${round}` });

    const { record } = await executeRound(this.round, run, round, attempt);
    if (record.status === "completed") return; // published by commit()
    const after = await this.runs.get(runId);
    const cancelled = after?.state === "cancelled";
    await this.runs.recordRound(runId, record, { currentPhase: "retrying" });
    await redis.del(inflightKey(runId));
    if (cancelled) return;
    aborts += 1;
    if (aborts < MAX_ROUND_ATTEMPTS) {
      this.log.warn({ runId, round, attempt, detail: record.detail }, "round aborted; retrying");
      await this.enqueue(runId, round, attempt + 1, 1000, aborts);
    } else {
      const msg = `round ${round} aborted ${MAX_ROUND_ATTEMPTS} times: ${record.detail}`;
      await this.runs.update(runId, { state: "failed", error: msg, currentPhase: "failed" });
      await this.lifecycle.runEnded(run, "failed", msg);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.onReady) this.connection.off("ready", this.onReady);
    await Promise.allSettled([this.queue.waitUntilReady(), this.worker?.waitUntilReady()]);
    await this.worker?.close(true);
    // A clean stop hands the runs over at once: the next coordinator need not wait for locks.
    // (Bounded: with Redis unreachable the commands would otherwise wait for it forever.)
    const release = async (): Promise<void> => {
      const owner = await this.connection.get(OWNER_KEY);
      if (owner && (JSON.parse(owner) as Owner).instance === this.instance) await this.connection.del(OWNER_KEY);
    };
    await Promise.race([release().catch(() => undefined), new Promise((r) => setTimeout(r, 1000).unref())]);
    await this.queue.close();
    this.workerConnection?.disconnect();
  }
}
