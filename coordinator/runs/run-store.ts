/**
 * Runs and their round records in Redis.
 *
 * A run's state is a closed set with named transitions, in the manner of BullMQ's job states:
 *
 *   queued ──start──▶ running ──complete──▶ completed
 *     │                 ├──────fail──────▶ failed
 *     └──cancel/fail────┴─────cancel─────▶ cancelled
 *
 * Terminal states are final. Every change of state is one Lua script that compares the current
 * state with the allowed sources and sets the new one atomically, so a late writer (a round
 * finishing after a cancel, a stale job) can never resurrect or overwrite a terminal run.
 */
import type { ChainableCommander, Redis } from "ioredis";
import type { RunSpec } from "../../shared/run/index.ts";
import type { AdaptiveClipRecord } from "../../shared/run/index.ts";

export type RunState = "queued" | "running" | "completed" | "failed" | "cancelled";
export type TerminalRunState = "completed" | "failed" | "cancelled";
/** How a round attempt ended; `cancelled` is an attempt stopped because its run was cancelled. */
export type RoundStatus = "completed" | "aborted" | "cancelled";

export const TERMINAL_RUN_STATES: readonly TerminalRunState[] = ["completed", "failed", "cancelled"];

export function isTerminal(state: RunState): state is TerminalRunState {
  return (TERMINAL_RUN_STATES as readonly string[]).includes(state);
}

/** The named transitions: for each target state, the states it may be entered from. */
export const RUN_TRANSITIONS = {
  start: { to: "running", from: ["queued", "running"] },
  complete: { to: "completed", from: ["running"] },
  fail: { to: "failed", from: ["queued", "running"] },
  cancel: { to: "cancelled", from: ["queued", "running"] },
} as const satisfies Record<string, { to: RunState; from: readonly RunState[] }>;
export type RunTransition = keyof typeof RUN_TRANSITIONS;

/** A transition was refused: the run was not in a state it may be entered from. */
export class RunTransitionError extends Error {
  override name = "RunTransitionError";
  constructor(
    readonly runId: string,
    readonly transition: RunTransition,
    readonly current: RunState | undefined,
  ) {
    super(current === undefined ? `no run ${runId}` : `run ${runId} is ${current}: cannot ${transition} it`);
  }
}

/** Fields of a run that change without changing its state. */
type ProgressFields = Partial<Pick<RunRecord, "roundsDone" | "modelHash" | "currentPhase" | "error">>;

// KEYS[1] run hash; KEYS[2] the live-run set; ARGV[1] comma-separated allowed source states;
// ARGV[2] target state; ARGV[3] '1' when the target is terminal; ARGV[4] run id; ARGV[5..]
// field/value pairs set with the state. Returns the state found before the call. A run leaves
// the live set in the same step that makes it terminal, so the set never lists a finished run.
const TRANSITION_SCRIPT = `
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return '' end
for s in string.gmatch(ARGV[1], '[^,]+') do
  if s == cur then
    redis.call('HSET', KEYS[1], 'state', ARGV[2], unpack(ARGV, 5))
    if ARGV[3] == '1' then redis.call('SREM', KEYS[2], ARGV[4]) end
    return cur
  end
end
return cur`;

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
  privacy?: { eligible: number; sampling: "fixed-size-without-replacement"; colluders: number; honestNoiseShares: number; wrapProbability: number; adaptiveClip?: AdaptiveClipRecord };
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
const evaluationsKey = (id: string): string => `tacit:run:${id}:evaluations`;
const RUNS = "tacit:runs";
/** Runs not yet in a terminal state: what the watchdog scans, so its cost follows live runs, not history. */
const LIVE_RUNS = "tacit:runs:live";

export class RunStore {
  constructor(private readonly redis: Redis) {}

  async create(rec: RunRecord): Promise<void> {
    const m = this.redis.multi().hset(runKey(rec.runId), serialize(rec)).zadd(RUNS, rec.createdAt, rec.runId);
    if (!isTerminal(rec.state)) m.sadd(LIVE_RUNS, rec.runId);
    await execOrThrow(m);
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

  /** Every run ever created, oldest first. */
  async list(): Promise<string[]> {
    return this.redis.zrange(RUNS, 0, -1);
  }

  /** Runs not in a terminal state (kept by `create` and `transition`; repaired by `indexLiveness`). */
  async listLive(): Promise<string[]> {
    return this.redis.smembers(LIVE_RUNS);
  }

  /**
   * Puts a run in or out of the live set by its state. For the full scan at start-up: it repairs
   * a set that Redis lost, or that predates it.
   */
  async indexLiveness(run: Pick<RunRecord, "runId" | "state">): Promise<void> {
    if (isTerminal(run.state)) await this.redis.srem(LIVE_RUNS, run.runId);
    else await this.redis.sadd(LIVE_RUNS, run.runId);
  }

  /** Progress fields only; the state changes through `transition` alone. */
  async update(runId: string, fields: ProgressFields): Promise<void> {
    const flat = flatten(fields);
    if (Object.keys(flat).length > 0) await this.redis.hset(runKey(runId), flat);
  }

  /**
   * Moves the run along a named transition, atomically, with `fields` set in the same step.
   * Returns false (and changes nothing) when the run is not in a source state of the transition.
   */
  async tryTransition(runId: string, t: RunTransition, fields: ProgressFields = {}): Promise<boolean> {
    const { to, from } = RUN_TRANSITIONS[t];
    const args = Object.entries(flatten(fields)).flat();
    const terminal = isTerminal(to) ? "1" : "0";
    const before = (await this.redis.eval(TRANSITION_SCRIPT, 2, runKey(runId), LIVE_RUNS, from.join(","), to, terminal, runId, ...args)) as string;
    return (from as readonly string[]).includes(before);
  }

  /** Like `tryTransition`, but a refused transition is an error naming the run's state. */
  async transition(runId: string, t: RunTransition, fields: ProgressFields = {}): Promise<void> {
    if (await this.tryTransition(runId, t, fields)) return;
    throw new RunTransitionError(runId, t, (await this.get(runId))?.state);
  }

  /** Records a finished round attempt and the run's progress in one transaction. */
  async recordRound(runId: string, rec: RoundRecord, runFields: ProgressFields): Promise<void> {
    const flat = flatten(runFields);
    const m = this.redis.multi().rpush(roundsKey(runId), JSON.stringify(rec));
    if (Object.keys(flat).length > 0) m.hset(runKey(runId), flat);
    await execOrThrow(m);
  }

  /** Round state in Redis: which phase the round is in, its attempt, cohort and counts so far. */
  async recordPhase(runId: string, round: number, phase: string, state: { attempt: number; cohort: string[]; counts: PhaseCounts }): Promise<void> {
    await execOrThrow(
      this.redis
        .multi()
        .hset(roundKey(runId, round), { phase, attempt: String(state.attempt), cohort: JSON.stringify(state.cohort), counts: JSON.stringify(state.counts), updatedAt: String(Date.now()) })
        .hset(runKey(runId), { currentPhase: `round ${round}: ${phase}` }),
    );
  }

  async roundState(runId: string, round: number): Promise<Record<string, string>> {
    return this.redis.hgetall(roundKey(runId, round));
  }

  /** Records a finished evaluation (any status): it is not run again for the same training round. */
  async recordEvaluation(runId: string, rec: { afterRound: number }): Promise<void> {
    await this.redis.rpush(evaluationsKey(runId), JSON.stringify(rec));
  }

  async evaluations<T extends { afterRound: number }>(runId: string): Promise<T[]> {
    return (await this.redis.lrange(evaluationsKey(runId), 0, -1)).map((s) => JSON.parse(s) as T);
  }

  async rounds(runId: string): Promise<RoundRecord[]> {
    return (await this.redis.lrange(roundsKey(runId), 0, -1)).map((s) => JSON.parse(s) as RoundRecord);
  }
}

/**
 * EXEC reports a failed command inside the transaction (e.g. WRONGTYPE) as a result, not as a
 * rejection: surface it, so a Redis error ends the round attempt instead of passing unnoticed.
 */
async function execOrThrow(m: ChainableCommander): Promise<void> {
  const results = await m.exec();
  if (results === null) throw new Error("Redis transaction aborted");
  for (const [err] of results) if (err) throw err;
}

function flatten(fields: ProgressFields): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) flat[k] = String(v);
  return flat;
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
