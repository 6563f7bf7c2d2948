/**
 * Turn-taking for many devices on one thread. A thread's devices all receive a phase's message at
 * once (one roster each, say), and each handles it with tens of milliseconds of synchronous
 * crypto before its first await. Run back to back inside one poll phase, 467 of them blocked the
 * thread for 10–20 s; the coordinator's keepalive pings to those devices went unanswered and it
 * dropped hundreds of them mid-round (three attempts in a row at 934 devices). With turns the
 * loop reads its sockets between two devices.
 */

/** Returns `next`: each call resolves in a later turn of the event loop than every earlier call's. */
export function turnTaker(): () => Promise<void> {
  let turn: Promise<void> = Promise.resolve();
  return () => {
    // Chained, not all queued at once: immediates queued together would all run in one check phase.
    turn = turn.then(() => new Promise<void>((resolve) => setImmediate(resolve)));
    return turn;
  };
}
