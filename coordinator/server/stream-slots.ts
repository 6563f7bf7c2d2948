/**
 * Bounds on long-lived streams a principal may hold open (I2). WatchRun streams poll the run
 * store until the run ends: without a bound, one principal key could open hundreds and keep a
 * core busy. Each caller gets `perCaller` slots and everyone together `total`; a slot is taken
 * when the stream is admitted and given back exactly once when it ends, however it ends.
 */
import { exhausted } from "./request-errors.ts";

export class StreamSlots {
  private readonly held = new Map<string, number>();
  private all = 0;

  constructor(
    readonly what: string,
    readonly perCaller: number,
    readonly total: number,
  ) {}

  /** Takes a slot for `caller`, or refuses with RESOURCE_EXHAUSTED; returns the idempotent release. */
  acquire(caller: string): () => void {
    const mine = this.held.get(caller) ?? 0;
    if (mine >= this.perCaller) throw exhausted(`${caller} already has ${mine} ${this.what} streams open (at most ${this.perCaller}): close one first`);
    if (this.all >= this.total) throw exhausted(`the coordinator already serves ${this.all} ${this.what} streams (at most ${this.total}): try again later`);
    this.held.set(caller, mine + 1);
    this.all++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.all--;
      const left = (this.held.get(caller) ?? 1) - 1;
      if (left > 0) this.held.set(caller, left);
      else this.held.delete(caller);
    };
  }

  /** Open streams of one caller, or of everyone. */
  open(caller?: string): number {
    return caller === undefined ? this.all : (this.held.get(caller) ?? 0);
  }
}
