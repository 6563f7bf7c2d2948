/**
 * Runs are executed as BullMQ jobs on Redis, one job per round attempt (queue `tacit-rounds`).
 * A job marks its round in flight in Redis before it starts; if the coordinator dies mid-round,
 * BullMQ hands the stalled job to the next worker, which sees the marker, records the lost
 * attempt as aborted and re-runs the round from the last complete checkpoint.
 */
import { Queue, Worker, type Job } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { executeRound, type RoundContext } from "../rounds/round-runner.ts";
import type { RoundRecord, RunRecord, RunStore } from "./run-store.ts";

export const ROUNDS_QUEUE = "tacit-rounds";
/** A round that aborts (too few survivors) is retried this many times before the run fails. */
export const MAX_ROUND_ATTEMPTS = 3;

interface RoundJob {
  runId: string;
  round: number;
  attempt: number;
}

export interface RunLifecycleSink {
  runEnded(run: RunRecord, state: "completed" | "failed" | "cancelled", detail: string): Promise<void>;
}

const inflightKey = (runId: string): string => `tacit:run:${runId}:inflight`;

export class RunScheduler {
  private readonly queue: Queue<RoundJob>;
  private worker: Worker<RoundJob> | undefined;
  private workerConnection: Redis | undefined;

  constructor(
    private readonly connection: Redis,
    private readonly runs: RunStore,
    private readonly round: RoundContext,
    private readonly lifecycle: RunLifecycleSink,
    private readonly log: Logger,
  ) {
    this.queue = new Queue<RoundJob>(ROUNDS_QUEUE, { connection });
  }

  async start(): Promise<void> {
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
    await Promise.all([this.queue.waitUntilReady(), this.worker.waitUntilReady()]);
  }

  async enqueue(runId: string, round: number, attempt: number, delayMs = 0): Promise<void> {
    await this.queue.add("round", { runId, round, attempt }, {
      jobId: `${runId}-r${round}-a${attempt}`,
      delay: delayMs,
      removeOnComplete: 1000,
      removeOnFail: 1000,
      attempts: 1,
    });
  }

  private async process(job: Job<RoundJob>): Promise<void> {
    const { runId, round } = job.data;
    let { attempt } = job.data;
    const run = await this.runs.get(runId);
    if (!run || run.state === "cancelled" || run.state === "completed" || run.state === "failed") return;
    if (run.roundsDone > round) return; // already done (duplicate delivery)

    const redis = this.connection;
    const marker = `${round}:${attempt}`;
    const previous = await redis.get(inflightKey(runId));
    if (previous === marker) {
      // This exact attempt was in flight when a coordinator died: its in-memory SecAgg state
      // is gone, so the attempt is recorded as aborted and the round re-runs.
      const lost: RoundRecord = {
        round, attempt, status: "aborted", cohort: 0, survivors: 0, modelHashBefore: run.modelHash, modelHashAfter: run.modelHash,
        detail: "coordinator restarted during this round; the round is re-run from the last checkpoint",
        phases: { invited: 0, declined: 0, advertised: 0, shared: 0, maskedInput: 0, unmasked: 0, dropouts: { advertise: 0, share: 0, maskedInput: 0, unmask: 0 } },
        secagg: { threshold: 0, degree: 0, mode: "", guarantee: "", bits: run.spec.bits }, startedAt: Date.now(), endedAt: Date.now(),
      };
      await this.runs.recordRound(runId, lost, {});
      await this.round.ledger.round({ run, record: lost, cohort: [], survivors: [], declines: {}, event: undefined, attestations: [] });
      attempt += 1;
    }
    await redis.set(inflightKey(runId), `${round}:${attempt}`);
    await this.runs.update(runId, { state: "running", currentPhase: `round ${round}` });

    const { record } = await executeRound(this.round, run, round, attempt);
    const after = await this.runs.get(runId);
    const cancelled = after?.state === "cancelled";
    if (record.status === "completed") {
      const done = round + 1;
      const finished = done >= run.spec.rounds;
      await this.runs.recordRound(runId, record, {
        roundsDone: done,
        modelHash: record.modelHashAfter,
        currentPhase: finished ? "done" : "waiting",
        ...(finished && !cancelled ? { state: "completed" as const } : {}),
      });
      await redis.del(inflightKey(runId));
      if (finished) {
        if (!cancelled) await this.lifecycle.runEnded(run, "completed", `${done} rounds completed`);
      } else if (!cancelled) {
        await this.enqueue(runId, done, 0);
      }
      return;
    }
    await this.runs.recordRound(runId, record, { currentPhase: "retrying" });
    await redis.del(inflightKey(runId));
    if (cancelled) return;
    if (attempt + 1 < MAX_ROUND_ATTEMPTS) {
      this.log.warn({ runId, round, attempt, detail: record.detail }, "round aborted; retrying");
      await this.enqueue(runId, round, attempt + 1, 1000);
    } else {
      const msg = `round ${round} aborted ${MAX_ROUND_ATTEMPTS} times: ${record.detail}`;
      await this.runs.update(runId, { state: "failed", error: msg, currentPhase: "failed" });
      await this.lifecycle.runEnded(run, "failed", msg);
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.queue.waitUntilReady(), this.worker?.waitUntilReady()]);
    await this.worker?.close(true);
    await this.queue.close();
    this.workerConnection?.disconnect();
  }
}
