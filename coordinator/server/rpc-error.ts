/**
 * Legacy: an error that carries its gRPC code itself. coordinator/rounds/active-round.ts still
 * throws it (its migration to the typed refusals of request-errors.ts waits until that folder
 * is no longer being reworked); status-boundary.ts passes its code and message through. New
 * code throws RequestRefused (request-errors.ts) and never picks a gRPC code.
 */
import type * as grpc from "@grpc/grpc-js";

export class RpcError extends Error {
  override name = "RpcError";
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

export { denied, failedPrecondition, invalid, notFound } from "./request-errors.ts";
