/**
 * Keeps a device subscribed to the coordinator: opens the Subscribe stream, hands every pushed
 * event to the participant one at a time (in order), and reconnects when the stream ends or
 * fails (coordinator restart, hand-over, network loss): inside the retry window the coordinator
 * sent with the stream's end when there is one, otherwise after full-jitter exponential backoff
 * (shared/transport/retry-window.ts), so a fleet that lost its coordinator at one instant does
 * not come back as one wave. `goOffline` closes the stream on purpose for a while (a laptop lid
 * closing; simulated dropouts).
 */
import type { Metadata, StatusObject } from "@grpc/grpc-js";
import type { CoordinatorClient, ServerEvent } from "./coordinator-client.ts";
import { fullJitterMs, parseRetryWindow, pointInWindow, RETRY_WINDOW_KEY } from "../../shared/transport/retry-window.ts";

export interface SubscriptionOptions {
  client: CoordinatorClient;
  backend: string;
  eligible: () => boolean;
  onEvent: (ev: ServerEvent) => Promise<void>;
  /**
   * Called synchronously as each event arrives, before it waits its turn for `onEvent` (the
   * participant's `arrived`: a newer attempt's invitation stops the older attempt's work now).
   */
  onArrival?: (ev: ServerEvent) => void;
  onStatus?: (s: { connected: boolean; detail?: string }) => void;
  /** Cap of the jittered backoff (default 10 s). */
  maxBackoffMs?: number;
  /** Base of the jittered backoff (default 250 ms). */
  baseBackoffMs?: number;
  random?: () => number;
}

export class RoundSubscription {
  private stream: ReturnType<CoordinatorClient["subscribe"]> | undefined;
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Consecutive connections that ended before any data arrived. */
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private offlineUntil = 0;
  /** How long the last reconnect waited (tests and the failover benchmark read it). */
  lastDelayMs = 0;

  constructor(private readonly o: SubscriptionOptions) {}

  start(): void {
    this.stopped = false;
    this.open();
  }

  private open(): void {
    if (this.stopped) return;
    const s = this.o.client.subscribe(this.o.eligible(), this.o.backend);
    this.stream = s;
    let gotData = false;
    let trailers: Metadata | undefined;
    s.on("data", (ev: ServerEvent) => {
      if (!gotData) {
        gotData = true;
        this.failures = 0;
        this.o.onStatus?.({ connected: true });
      }
      this.o.onArrival?.(ev);
      this.queue = this.queue.then(() => this.o.onEvent(ev)).catch(() => undefined);
    });
    s.on("metadata", () => this.o.onStatus?.({ connected: true }));
    // grpc-js emits 'error' and then 'status' (with the trailers) in one go: wait a tick so the
    // retry sees the window the coordinator sent.
    s.on("status", (st: StatusObject) => (trailers = st.metadata));
    const retry = (detail: string): void => {
      if (this.stream !== s) return;
      this.stream = undefined;
      this.o.onStatus?.({ connected: false, detail });
      if (this.stopped) return;
      const wait = Math.max(this.offlineUntil - Date.now(), this.delay(trailers));
      this.lastDelayMs = wait;
      this.timer = setTimeout(() => this.open(), wait);
    };
    s.on("error", (e: Error & { details?: string }) => setImmediate(() => retry(e.details ?? e.message)));
    s.on("end", () => setImmediate(() => retry("stream ended")));
  }

  /** The coordinator's window when it sent one, else full jitter over the failures so far. */
  private delay(trailers: Metadata | undefined): number {
    const random = this.o.random ?? Math.random;
    const { window, error } = parseRetryWindow(trailers?.get(RETRY_WINDOW_KEY)[0]);
    if (error) this.o.onStatus?.({ connected: false, detail: error });
    if (window) return pointInWindow(window, random);
    return fullJitterMs(this.failures++, this.o.baseBackoffMs ?? 250, this.o.maxBackoffMs ?? 10_000, random);
  }

  /** Closes the stream now and stays away for `ms` (the coordinator sees a disconnect). */
  goOffline(ms: number): void {
    this.offlineUntil = Date.now() + ms;
    this.stream?.cancel();
  }

  /** Re-subscribes so the coordinator sees the new eligibility (idle/consent changes). */
  refresh(): void {
    this.stream?.cancel();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.stream?.cancel();
    this.stream = undefined;
  }
}
