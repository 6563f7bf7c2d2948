/**
 * Crash points for the crash-safety test (test/crash-safety.test.ts): with
 * TACIT_FAILPOINT=<name>:<round> in its environment the coordinator SIGKILLs itself when it
 * reaches that point of that round — a real crash at a moment too short to hit from outside
 * (between two writes of a round's commit). Unset in production, where this is a no-op.
 */
export type FailpointName = "after-checkpoint" | "after-ledger";

export function failpoint(name: FailpointName, round: number): void {
  if (process.env.TACIT_FAILPOINT === `${name}:${round}`) process.kill(process.pid, "SIGKILL");
}
