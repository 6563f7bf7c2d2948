/**
 * Which coordinator serves (design note §5 (b)): the holder of `tacit:active`, taken with
 * `SET NX PX` and renewed by a compare-and-PEXPIRE script. It decides only who opens the gRPC
 * listener, answers /readyz and runs the BullMQ worker; it is never what keeps two coordinators
 * from deciding the same thing — a lease cannot, because its holder can be paused past its
 * expiry and not know it (Kleppmann 2016). That is the store's put-if-absent (round-decisions.ts,
 * ledger segments). So the lease can be simple: a standby polls for it, and a holder that finds
 * another coordinator's name in it has lost it and must stop serving.
 */
import type { Redis } from "ioredis";

export const ACTIVE_KEY = "tacit:active";
export const LEASE_TTL_MS = 10_000;
export const LEASE_RENEW_MS = 3_000;

/**
 * Renews the lease if it is ours. If it expired and nobody took it (e.g. this process was slow,
 * or Redis lost its last second of writes) it is taken back: no one else served meanwhile.
 * Returns 1 when held, 0 when another coordinator holds it.
 */
const RENEW = `
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());

export class ActiveLease {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly redis: Redis,
    readonly id: string,
    private readonly o: { ttlMs?: number; renewMs?: number } = {},
  ) {}

  private get ttl(): number {
    return this.o.ttlMs ?? LEASE_TTL_MS;
  }

  private get every(): number {
    return this.o.renewMs ?? LEASE_RENEW_MS;
  }

  /** Tries once to take the lease. */
  async tryAcquire(): Promise<boolean> {
    return (await this.redis.set(ACTIVE_KEY, this.id, "PX", this.ttl, "NX")) === "OK";
  }

  /** Waits (as a standby) until the lease is ours; `onWaiting` is told who holds it, once. */
  async acquire(onWaiting?: (holder: string) => void): Promise<void> {
    let told = false;
    while (!this.stopped) {
      if (await this.tryAcquire().catch(() => false)) return;
      if (!told) {
        told = true;
        onWaiting?.((await this.redis.get(ACTIVE_KEY).catch(() => null)) ?? "nobody");
      }
      await sleep(this.every);
    }
    throw new Error("stopped while waiting for the active lease");
  }

  /**
   * Renews every few seconds; calls `onLost` once when another coordinator holds the lease, or
   * when it could not be renewed for a whole TTL (Redis unreachable: someone else may hold it).
   */
  keep(onLost: (reason: string) => void): void {
    let renewedAt = Date.now();
    let running = false;
    this.timer = setInterval(() => {
      if (running || this.stopped) return;
      running = true;
      (this.redis.eval(RENEW, 1, ACTIVE_KEY, this.id, String(this.ttl)) as Promise<number>)
        .then((held) => {
          if (this.stopped) return;
          if (held === 1) renewedAt = Date.now();
          else this.lost(onLost, `another coordinator holds ${ACTIVE_KEY}`);
        })
        .catch((err: Error) => {
          if (!this.stopped && Date.now() - renewedAt > this.ttl) this.lost(onLost, `could not renew ${ACTIVE_KEY} for ${Date.now() - renewedAt} ms: ${err.message}`);
        })
        .finally(() => (running = false));
    }, this.every);
    this.timer.unref();
  }

  private lost(onLost: (reason: string) => void, reason: string): void {
    if (this.stopped) return;
    this.stop();
    onLost(reason);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
  }

  /** A clean stop hands over at once instead of after the TTL (only if the lease is still ours). */
  async release(): Promise<void> {
    this.stop();
    await this.redis.eval(RELEASE, 1, ACTIVE_KEY, this.id).catch(() => undefined);
  }
}
