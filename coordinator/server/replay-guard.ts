/**
 * Replay protection that a Redis writer cannot weaken (finding H2, item 2): nonces are kept in
 * this process's memory, not in Redis, where anyone holding the Redis password could delete them.
 *
 * A request is admitted only if its signed timestamp is within the freshness window (checked by
 * the authenticator), later than the floor, and its (key id, nonce) was not seen. Memory is
 * bounded without ever forgetting a nonce that could still be replayed:
 * - nonces are bucketed by the second of their signed timestamp; a bucket older than the
 *   freshness window is dropped, because checkFreshness refuses those timestamps anyway;
 * - when the cache is full, the oldest bucket is dropped and the floor rises past it: every
 *   forgotten nonce carries a timestamp below the floor, so its replay is refused by the floor.
 * The floor starts at the moment the process started, and rises to the moment it takes the
 * active lease, so a request captured before a restart or a hand-over cannot be replayed after it
 * (the nonces it would collide with are in no live process). The price is that a
 * device whose clock runs behind by d is refused for d after a restart, and then retries.
 */
import { AUTH_MAX_SKEW_MS, AuthError } from "../../shared/transport/request-auth.ts";

export const DEFAULT_MAX_NONCES = 1_000_000;

export class ReplayGuard {
  /** Second of the signed timestamp → "keyId:nonce" seen with a timestamp in that second. */
  private readonly buckets = new Map<number, Set<string>>();
  private size = 0;
  /** Requests signed before this instant (ms) are refused. */
  private floorMs: number;

  constructor(
    startedAtMs = Date.now(),
    private readonly maxNonces = DEFAULT_MAX_NONCES,
    private readonly windowMs = AUTH_MAX_SKEW_MS,
  ) {
    this.floorMs = startedAtMs;
  }

  /**
   * Refuses everything signed before `ms` from now on. A standby that takes over calls this: the
   * nonces the previous active coordinator saw are not in this process, so a request it served
   * must not be accepted again here.
   */
  raiseFloor(ms: number): void {
    this.floorMs = Math.max(this.floorMs, ms);
  }

  /** Throws AuthError for a replayed nonce or a request signed before the floor; records it otherwise. */
  admit(keyId: string, nonce: string, timestampMs: number, now = Date.now()): void {
    if (timestampMs < this.floorMs) throw new AuthError("request was signed before the coordinator's replay floor (it started, or forgot older nonces, since): sign a new request");
    this.prune(now);
    const second = Math.floor(timestampMs / 1000);
    const id = `${keyId}:${nonce}`;
    let bucket = this.buckets.get(second);
    if (bucket?.has(id)) throw new AuthError("replayed request: this nonce was already used");
    // The same nonce under a neighbouring second cannot pass: the signature covers the timestamp,
    // so a replay carries the original timestamp and lands in the original bucket.
    if (!bucket) this.buckets.set(second, (bucket = new Set()));
    bucket.add(id);
    this.size++;
    while (this.size > this.maxNonces) this.evictOldest();
  }

  /** Buckets wholly outside the freshness window can never admit a request again. */
  private prune(now: number): void {
    const oldest = Math.floor((now - this.windowMs) / 1000) - 1;
    for (const [second, set] of this.buckets) {
      if (second >= oldest) continue;
      this.size -= set.size;
      this.buckets.delete(second);
    }
  }

  private evictOldest(): void {
    let oldest = Infinity;
    for (const second of this.buckets.keys()) oldest = Math.min(oldest, second);
    const set = this.buckets.get(oldest)!;
    this.size -= set.size;
    this.buckets.delete(oldest);
    this.floorMs = Math.max(this.floorMs, (oldest + 1) * 1000);
  }

  /** For tests and metrics: how many nonces are remembered, and the current floor. */
  get stats(): { nonces: number; floorMs: number } {
    return { nonces: this.size, floorMs: this.floorMs };
  }
}
