/**
 * The run store as the coordinator reads it: every run record that comes out of Redis has its
 * spec compared with the run's signed launch entry in the ledger before anyone uses it. Redis is
 * a cache of state, not the authority on privacy. A record whose spec differs (someone rewrote
 * the noise multiplier in Redis) is used with the ledger's spec; a run with no launch entry
 * (planted in Redis) does not exist. A Redis writer can stop rounds, never weaken them.
 */
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { canonicalJson } from "../../shared/crypto/index.ts";
import type { RunSpec } from "../../shared/run/index.ts";
import { RunStore, type RunRecord } from "../runs/run-store.ts";

export interface LaunchAuthority {
  launchedSpec(runId: string): RunSpec | undefined;
}

export class LedgerCheckedRunStore extends RunStore {
  constructor(
    redis: Redis,
    private readonly authority: LaunchAuthority,
    private readonly log: Logger,
  ) {
    super(redis);
  }

  override async get(runId: string): Promise<RunRecord | undefined> {
    const rec = await super.get(runId);
    if (!rec) return undefined;
    const signed = this.authority.launchedSpec(rec.runId);
    if (!signed) {
      this.log.error({ runId }, "run record in Redis has no launch entry in the ledger: ignored");
      return undefined;
    }
    if (canonicalJson(rec.spec) !== canonicalJson(signed)) {
      this.log.error({ runId }, "run spec in Redis differs from its signed launch entry: using the ledger's");
      return { ...rec, spec: signed };
    }
    return rec;
  }
}
