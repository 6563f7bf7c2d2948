/**
 * Keeps a device subscribed to the coordinator: opens the Subscribe stream, hands every pushed
 * event to the participant one at a time (in order), and reconnects with capped exponential
 * backoff when the stream ends or fails (coordinator restart, network loss). `goOffline`
 * closes the stream on purpose for a while (a laptop lid closing; simulated dropouts).
 */
import type { CoordinatorClient, ServerEvent } from "./coordinator-client.ts";

export interface SubscriptionOptions {
  client: CoordinatorClient;
  backend: string;
  eligible: () => boolean;
  onEvent: (ev: ServerEvent) => Promise<void>;
  onStatus?: (s: { connected: boolean; detail?: string }) => void;
  maxBackoffMs?: number;
}

export class RoundSubscription {
  private stream: ReturnType<CoordinatorClient["subscribe"]> | undefined;
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;
  private backoff = 250;
  private timer: NodeJS.Timeout | undefined;
  private offlineUntil = 0;

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
    s.on("data", (ev: ServerEvent) => {
      if (!gotData) {
        gotData = true;
        this.backoff = 250;
        this.o.onStatus?.({ connected: true });
      }
      this.queue = this.queue.then(() => this.o.onEvent(ev)).catch(() => undefined);
    });
    s.on("metadata", () => this.o.onStatus?.({ connected: true }));
    const retry = (detail: string): void => {
      if (this.stream !== s) return;
      this.stream = undefined;
      this.o.onStatus?.({ connected: false, detail });
      if (this.stopped) return;
      const wait = Math.max(this.offlineUntil - Date.now(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, this.o.maxBackoffMs ?? 10_000);
      this.timer = setTimeout(() => this.open(), wait);
    };
    s.on("error", (e: Error & { details?: string }) => retry(e.details ?? e.message));
    s.on("end", () => retry("stream ended"));
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
