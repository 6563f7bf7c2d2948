/**
 * Watches a thread's event loop. Every connection's keepalive is answered on the thread that owns
 * it: the coordinator blocked longer than the keepalive timeout drops every device whose ping
 * was in flight, and a round loses them all at once — from the outside that looks like a wave of
 * laptops going offline. Reporting the stall's length says what really happened.
 */
export interface LoopWatchOptions {
  /** Called after a stall of at least `warnAfterMs`, with its length. */
  onStall: (blockedMs: number) => void;
  /** Stalls at least this long are reported. */
  warnAfterMs: number;
  /** How often the loop is probed (the stall is measured to within this). */
  probeMs?: number;
  now?: () => number;
}

/** Starts the probe; returns what stops it. The probe never keeps the process alive. */
export function watchEventLoop(o: LoopWatchOptions): () => void {
  const probe = o.probeMs ?? 250;
  const now = o.now ?? (() => performance.now());
  let last = now();
  const timer = setInterval(() => {
    const t = now();
    const stalled = t - last - probe;
    last = t;
    if (stalled >= o.warnAfterMs) o.onStall(Math.round(stalled));
  }, probe);
  timer.unref();
  return () => clearInterval(timer);
}
