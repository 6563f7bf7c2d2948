/**
 * Per-caller token buckets: a misbehaving or compromised device cannot flood the coordinator.
 * A round needs a handful of calls per device, so the default (burst 60, 20/s) is far above
 * honest use and far below what would starve other devices.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly burst = 60,
    private readonly perSecond = 20,
  ) {}

  /** True when `key` has at least one token (without taking it). */
  available(key: string, now = Date.now()): boolean {
    const b = this.buckets.get(key);
    if (!b) return true;
    return Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond) >= 1;
  }

  /** Takes one token for `key`; false when the caller is over its rate. */
  take(key: string, now = Date.now()): boolean {
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    if (b.tokens < 1) {
      this.buckets.set(key, b);
      return false;
    }
    b.tokens -= 1;
    this.buckets.set(key, b);
    if (this.buckets.size > 100_000) this.buckets.clear(); // bound memory under key churn
    return true;
  }
}
