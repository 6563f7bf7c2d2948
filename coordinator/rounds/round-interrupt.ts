/**
 * Why a round stopped before its end although nothing failed: its run was cancelled, or its
 * coordinator is shutting down. Used as the reason of the round's AbortSignal.
 */
export class RoundInterrupted extends Error {
  override name = "RoundInterrupted";
  constructor(readonly reason: "cancelled" | "shutdown") {
    super(reason === "cancelled" ? "the run was cancelled" : "the coordinator is shutting down");
  }
}
