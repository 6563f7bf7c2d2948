/**
 * Waits for the expected devices of one phase: resolves when every expected device has
 * answered (or been dropped) or when the phase deadline passes, whichever comes first.
 */
export class PhaseGate {
  private readonly pending: Set<number>;
  private resolve!: () => void;
  private timer: NodeJS.Timeout | undefined;
  readonly done: Promise<void>;

  constructor(expected: Iterable<number>, deadlineMs: number) {
    this.pending = new Set(expected);
    this.done = new Promise<void>((r) => (this.resolve = r));
    const wait = Math.max(0, deadlineMs - Date.now());
    this.timer = setTimeout(() => this.finish(), wait);
    if (this.pending.size === 0) this.finish();
  }

  /** The device answered (or dropped); returns false if it was not expected any more. */
  settle(index: number): boolean {
    const had = this.pending.delete(index);
    if (this.pending.size === 0) this.finish();
    return had;
  }

  expects(index: number): boolean {
    return this.pending.has(index);
  }

  /** Ends the phase now (e.g. the round is cancelled). */
  finish(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.resolve();
  }
}

/**
 * Opens the next phase's gate on `round`, unless the round's signal is already aborted. The
 * round's abort listener ends whichever gate is open when the abort fires; an abort that lands
 * between two gates (while a boundary or a phase hook awaits Redis) finds none, and without this
 * check the next phase would wait for its deadline (minutes) before anyone noticed.
 */
export function openPhaseGate(round: { gate: PhaseGate | undefined }, signal: AbortSignal, expected: Iterable<number>, deadlineMs: number): PhaseGate {
  if (signal.aborted) throw signal.reason;
  const gate = new PhaseGate(expected, deadlineMs);
  round.gate = gate;
  return gate;
}
