/**
 * Bytes written to one Subscribe stream that the device has not yet taken (I6).
 *
 * A device that stops reading its stream while keeping the connection open (an HTTP/2 window of
 * zero, a process stopped in a debugger, a hostile client) would otherwise make the coordinator
 * keep every message written to it: each round's invitation carries the model checkpoint, so one
 * such device holds a checkpoint per round for as long as it stays connected. A write that would
 * take the backlog past the limit is refused, and the caller drops the device as a slow reader.
 * A single message is always admitted onto an empty backlog, whatever its size: a checkpoint
 * larger than the limit must still reach the devices that read.
 */
export class WriteBacklog {
  private bytes = 0;

  constructor(private readonly limitBytes: number) {
    if (!(limitBytes > 0)) throw new RangeError(`a write backlog limit must be positive bytes, got ${limitBytes}`);
  }

  /** Unsent bytes now. */
  get pending(): number {
    return this.bytes;
  }

  /** Counts `n` bytes as written, or refuses them (and counts nothing) when they would pass the limit. */
  admit(n: number): boolean {
    if (this.bytes > 0 && this.bytes + n > this.limitBytes) return false;
    this.bytes += n;
    return true;
  }

  /** `n` admitted bytes have left the process. */
  release(n: number): void {
    this.bytes = Math.max(0, this.bytes - n);
  }
}
