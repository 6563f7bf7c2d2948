/**
 * Runs and their round records in Redis. A run moves queued → running → completed | failed |
 * cancelled; each transition is one MULTI so readers never see half of it.
 */
import type { Redis } from "ioredis";
import type { RunSpec } from "../../shared/run/index.ts";

export type RunState = "queued" | "running" | "completed" | "failed" | "cancelled";
export type RoundStatus = "completed" | "aborted";

export interface PhaseCounts {
  invited: number;
  declined: number;
  advertised: number;
  shared: number;
  maskedInput: number;
  unmasked: number;
  dropouts: { advertise: number; share: number; maskedInput: number; unmask: number };
}

export interface RoundRecord {
  round: number;
  attempt: number;
  status: RoundStatus;
  cohort: number;
  survivors: number;
  modelHashBefore: string;
  modelHashAfter: string;
  detail: string;
  phases: PhaseCounts;
  secagg: { threshold: number; degree: number; mode: string; guarantee: string; bits: number };
  /** Per-round privacy facts for the ledger (absent for rounds that never drew a cohort). */
  privacy?: { eligible: number; sampling: "fixed-size-without-replacement"; colluders: number; honestNoiseShares: number; wrapProbability: number };
  startedAt: number;
  endedAt: number;
}

export interface RunRecord {
  runId: string;
  spec: RunSpec;
  state: RunState;
  roundsDone: number;
  modelHash: string;
  currentPhase: string;
  error: string;
  createdAt: number;
  requester: string;
}

const runKey = (id: string): string => `tacit:run:${id}`;
const roundsKey = (id: string): string => `tacit:run:${id}:rounds`;
const roundKey = (id: string, round: number): string => `tacit:run:${id}:round:${round}`;
const RUNS = "tacit:runs";

export class RunStore {
  constructor(private readonly redis: Redis) {}

  async create(rec: RunRecord): Promise<void> {
    await this.redis
      .multi()
      .hset(runKey(rec.runId), serialize(rec))
      .zadd(RUNS, rec.createdAt, rec.runId)
      .exec();
  }

  async get(runId: string): Promise<RunRecord | undefined> {
    const h = await this.redis.hgetall(runKey(runId));
    if (!h.runId) return undefined;
    return {
      runId: h.runId,
      spec: JSON.parse(h.spec ?? "{}") as RunSpec,
      state: h.state as RunState,
      roundsDone: Number(h.roundsDone ?? 0),
      modelHash: h.modelHash ?? "",
      currentPhase: h.currentPhase ?? "",
      error: h.error ?? "",
      createdAt: Number(h.createdAt ?? 0),
      requester: h.requester ?? "",
    };
  }

  async list(): Promise<string[]> {
    return this.redis.zrange(RUNS, 0, -1);
  }

  async update(runId: string, fields: Partial<Pick<RunRecord, "state" | "roundsDone" | "modelHash" | "currentPhase" | "error">>): Promise<void> {
    const flat: Record<string, string> = {};
    for (const [k, v] of Object.entries(fields)) flat[k] = String(v);
    await this.redis.hset(runKey(runId), flat);
  }

  /** Records a finished round and advances the run in one transaction. */
  async recordRound(runId: string, rec: RoundRecord, runFields: Partial<Pick<RunRecord, "state" | "roundsDone" | "modelHash" | "currentPhase" | "error">>): Promise<void> {
    const flat: Record<string, string> = {};
    for (const [k, v] of Object.entries(runFields)) flat[k] = String(v);
    const m = this.redis.multi().rpush(roundsKey(runId), JSON.stringify(rec));
    if (Object.keys(flat).length > 0) m.hset(runKey(runId), flat);
    await m.exec();
  }

  /** Round state in Redis: which phase the round is in, its attempt, cohort and counts so far. */
  async recordPhase(runId: string, round: number, phase: string, state: { attempt: number; cohort: string[]; counts: PhaseCounts }): Promise<void> {
    await this.redis
      .multi()
      .hset(roundKey(runId, round), { phase, attempt: String(state.attempt), cohort: JSON.stringify(state.cohort), counts: JSON.stringify(state.counts), updatedAt: String(Date.now()) })
      .hset(runKey(runId), { currentPhase: `round ${round}: ${phase}` })
      .exec();
  }

  async roundState(runId: string, round: number): Promise<Record<string, string>> {
    return this.redis.hgetall(roundKey(runId, round));
  }

  async rounds(runId: string): Promise<RoundRecord[]> {
    return (await this.redis.lrange(roundsKey(runId), 0, -1)).map((s) => JSON.parse(s) as RoundRecord);
  }
}

function serialize(rec: RunRecord): Record<string, string> {
  return {
    runId: rec.runId,
    spec: JSON.stringify(rec.spec),
    state: rec.state,
    roundsDone: String(rec.roundsDone),
    modelHash: rec.modelHash,
    currentPhase: rec.currentPhase,
    error: rec.error,
    createdAt: String(rec.createdAt),
    requester: rec.requester,
  };
}
