/**
 * When a device should reconnect. Two rules keep a fleet from reconnecting as one wave:
 *
 * - **Full jitter** (Brooker, "Exponential Backoff and Jitter", AWS 2015): after the n-th failure
 *   a device waits uniformly in [0, min(cap, base·2ⁿ)], so devices that lost the coordinator at
 *   the same instant spread out instead of retrying in lock-step.
 * - **The coordinator's retry window** (Bonawitz et al. 2019 §2.3 "pace steering"; FCP's
 *   `RetryWindow`): a coordinator that ends the streams on purpose (shutdown, hand-over to a
 *   standby) sends a window sized to how many devices it is sending away, in the stream's
 *   trailers, and each device reconnects at a uniform point inside it.
 *
 * Pure functions; the random source is a parameter so tests can pin it.
 */
import { z } from "zod";

/** Trailer key of the window a coordinator sends with the end of a Subscribe stream. */
export const RETRY_WINDOW_KEY = "tacit-retry-window-ms";

/** No coordinator may park a device for longer than this, whatever it sends. */
export const MAX_RETRY_WINDOW_MS = 10 * 60_000;

export interface RetryWindow {
  minMs: number;
  maxMs: number;
}

const windowSchema = z
  .string()
  .regex(/^\d{1,9}-\d{1,9}$/, "expected MIN-MAX in milliseconds")
  .transform((s) => {
    const [minMs, maxMs] = s.split("-").map(Number) as [number, number];
    return { minMs, maxMs };
  })
  .refine((w) => w.minMs <= w.maxMs, "MIN is above MAX")
  .refine((w) => w.maxMs <= MAX_RETRY_WINDOW_MS, `MAX is above ${MAX_RETRY_WINDOW_MS} ms`);

export function encodeRetryWindow(w: RetryWindow): string {
  return `${Math.round(w.minMs)}-${Math.round(w.maxMs)}`;
}

/** The window in a trailer value, or undefined (with the reason) when it is missing or malformed: the device then falls back to full jitter. */
export function parseRetryWindow(value: unknown): { window?: RetryWindow; error?: string } {
  if (value === undefined) return {};
  const r = windowSchema.safeParse(typeof value === "string" ? value : Buffer.isBuffer(value) ? value.toString() : value);
  return r.success ? { window: r.data } : { error: `ignoring ${RETRY_WINDOW_KEY} ${JSON.stringify(String(value))}: ${r.error.issues[0]?.message}` };
}

/**
 * The window a coordinator asks of the `devices` it is about to disconnect: spread over enough
 * time that the next coordinator accepts them at `acceptPerSecond` (TLS handshakes cost
 * 1.2–1.7 ms of CPU each: ~600 per second per core, scale-out design §3.6), never less than
 * `floorMs` and never more than MAX_RETRY_WINDOW_MS.
 */
export function retryWindowFor(devices: number, acceptPerSecond = 300, floorMs = 2_000): RetryWindow {
  const spread = Math.ceil((Math.max(0, devices) / acceptPerSecond) * 1000);
  const maxMs = Math.min(MAX_RETRY_WINDOW_MS, Math.max(floorMs * 5, spread));
  return { minMs: Math.min(floorMs, maxMs), maxMs };
}

/** Full jitter after `failures` consecutive failures (0 = the first retry). */
export function fullJitterMs(failures: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(failures, 30));
  return Math.floor(random() * ceiling);
}

/** A uniform point inside the coordinator's window. */
export function pointInWindow(w: RetryWindow, random: () => number = Math.random): number {
  return Math.floor(w.minMs + random() * (w.maxMs - w.minMs));
}
