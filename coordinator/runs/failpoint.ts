/**
 * Fault injection for the crash-safety and error-handling tests. Unset in production, where
 * both are no-ops.
 *
 * - `failpoint`: with TACIT_FAILPOINT=<name>:<round> (or <name>:* for any round) the coordinator SIGKILLs itself when it
 *   reaches that point of that round — a real crash at a moment too short to hit from outside
 *   (between two writes of a round's commit). `before-commit` SIGSTOPs it instead, between a
 *   round's checkpoint and its put-if-absent decision: a coordinator paused at the worst moment
 *   (a GC pause or a frozen VM, Kleppmann 2016), for a test to SIGCONT after a successor took over.
 * - `faultpoint`: with TACIT_FAULTS=<name>:<round>:<times>[,…] the point throws an ordinary error
 *   the first <times> times it is reached in that round (as a full disk or a failed write would),
 *   so a test can see that one error ends the attempt cleanly and a persistent one fails the run.
 */
export type FailpointName = "after-checkpoint" | "after-ledger" | "before-commit";
export type FaultpointName = "checkpoint-read" | "checkpoint-write" | "ledger-append";

export function failpoint(name: FailpointName, round: number): void {
  const at = process.env.TACIT_FAILPOINT;
  if (at === `${name}:${round}` || at === `${name}:*`) process.kill(process.pid, name === "before-commit" ? "SIGSTOP" : "SIGKILL");
}

export class InjectedFault extends Error {
  override name = "InjectedFault";
}

const fired = new Map<string, number>();

export function faultpoint(name: FaultpointName, round: number): void {
  const spec = process.env.TACIT_FAULTS;
  if (!spec) return;
  for (const item of spec.split(",")) {
    const [n, r, times] = item.split(":");
    if (n !== name || Number(r) !== round) continue;
    const key = `${name}:${round}`;
    const count = fired.get(key) ?? 0;
    if (count >= Number(times ?? 1)) return;
    fired.set(key, count + 1);
    throw new InjectedFault(`injected fault at ${name} in round ${round} (ENOSPC: no space left on device)`);
  }
}

/** Forgets how often each fault fired (between tests in one process). */
export function resetFaults(): void {
  fired.clear();
}
