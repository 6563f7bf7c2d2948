/**
 * Why a round stopped before its end although nothing failed: its run was cancelled, or its
 * coordinator is shutting down. Used as the reason of the round's AbortSignal.
 */
import { SecAggError } from "../../shared/secagg/index.ts";

export class RoundInterrupted extends Error {
  override name = "RoundInterrupted";
  constructor(readonly reason: "cancelled" | "shutdown") {
    super(reason === "cancelled" ? "the run was cancelled" : "the coordinator is shutting down");
  }
}

/** What stopped an attempt: decides whether the scheduler counts it towards the retry limit. */
export type AbortCause = "too-few-devices" | "secagg" | "error" | "cancelled" | "shutdown";

/** The cause of an attempt (training or evaluation) that threw `err` before its end. */
export function causeOf(err: unknown): AbortCause {
  if (err instanceof RoundInterrupted) return err.reason;
  return err instanceof SecAggError ? "secagg" : "error";
}

/** A cancelled run's round is recorded as cancelled; every other early end as aborted. */
export function statusOf(cause: AbortCause): "aborted" | "cancelled" {
  return cause === "cancelled" ? "cancelled" : "aborted";
}

/** The message of whatever was thrown, for the round's recorded detail. */
export function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
