/**
 * Graceful stop for the long-running commands (`simulate`, `coordinator start`, `client start`).
 *
 * The first SIGINT, SIGTERM or SIGHUP aborts `signal`: the command ends or aborts its current
 * phase, flushes what it holds and stops its children (the embedded redis-server among them).
 * If that takes longer than the grace period, or a second signal arrives, the process exits at
 * once; its 'exit' handlers still stop the embedded Redis and release the state-dir lock.
 * The exit status is the shell's convention for death by that signal (128 + its number), so a
 * supervisor sees why the process ended even though it ended cleanly.
 */
import { constants } from "node:os";

export const SHUTDOWN_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
export type ShutdownSignalName = (typeof SHUTDOWN_SIGNALS)[number];
/** The whole stop must fit in 10 s; this leaves time for the exit handlers. */
export const DEFAULT_GRACE_MS = 9_000;

export class ShutdownRequested extends Error {
  override name = "ShutdownRequested";
  constructor(readonly signalName: ShutdownSignalName) {
    super(`stopped by ${signalName}`);
  }
}

export function exitCodeFor(sig: ShutdownSignalName): number {
  return 128 + constants.signals[sig];
}

export class ShutdownSignals {
  private readonly controller = new AbortController();
  private received: ShutdownSignalName | undefined;
  private readonly waiters: ((sig: ShutdownSignalName) => void)[] = [];
  private readonly handlers = new Map<ShutdownSignalName, () => void>();

  constructor(
    private readonly o: { graceMs?: number; write?: (line: string) => void; exit?: (code: number) => void } = {},
  ) {
    for (const sig of SHUTDOWN_SIGNALS) {
      const h = (): void => this.onSignal(sig);
      this.handlers.set(sig, h);
      process.on(sig, h);
    }
  }

  /** Aborted at the first signal, with a ShutdownRequested as its reason. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get signalName(): ShutdownSignalName | undefined {
    return this.received;
  }

  /** Resolves with the first signal's name. */
  next(): Promise<ShutdownSignalName> {
    if (this.received) return Promise.resolve(this.received);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The exit status for the signal received, if any. */
  exitCode(): number | undefined {
    return this.received ? exitCodeFor(this.received) : undefined;
  }

  dispose(): void {
    for (const [sig, h] of this.handlers) process.off(sig, h);
    this.handlers.clear();
  }

  private onSignal(sig: ShutdownSignalName): void {
    const write = this.o.write ?? ((l: string) => process.stderr.write(l));
    const exit = this.o.exit ?? ((code: number) => process.exit(code));
    if (this.received) {
      write(`tacit: ${sig} again: exiting now\n`);
      exit(exitCodeFor(this.received));
      return;
    }
    this.received = sig;
    const grace = this.o.graceMs ?? DEFAULT_GRACE_MS;
    write(`tacit: ${sig}: stopping (send it again to exit at once)\n`);
    setTimeout(() => {
      write(`tacit: still stopping after ${grace} ms: exiting now\n`);
      exit(exitCodeFor(sig));
    }, grace).unref();
    this.controller.abort(new ShutdownRequested(sig));
    for (const w of this.waiters.splice(0)) w(sig);
  }
}
