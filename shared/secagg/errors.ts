/** Typed protocol errors; `code` says what rule was broken (mapped to gRPC statuses at the edge). */
export type SecAggErrorCode =
  | "STAGE"
  | "BAD_SIGNATURE"
  | "DUPLICATE"
  | "UNKNOWN_PEER"
  | "NOT_NEIGHBOUR"
  | "BAD_LENGTH"
  | "BAD_SHARE"
  | "UNSAFE_UNMASK"
  | "TOO_FEW_SURVIVORS"
  | "WEAK_KEY"
  | "ABORTED";

export class SecAggError extends Error {
  override name = "SecAggError";
  constructor(
    readonly code: SecAggErrorCode,
    message: string,
  ) {
    super(message);
  }
}
