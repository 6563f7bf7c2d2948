/**
 * The one boundary where typed errors become gRPC statuses. Handlers throw RpcError (or a
 * known domain error) and `toServiceError` maps it; unknown errors become INTERNAL with a
 * generic message so that nothing secret (e.g. why a masked input was refused) leaks.
 */
import * as grpc from "@grpc/grpc-js";
import { AuthError } from "../../shared/transport/request-auth.ts";
import { RunSpecError } from "../../shared/run/index.ts";
import { EnrollmentError } from "../state/registry.ts";

export class RpcError extends Error {
  override name = "RpcError";
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

export const invalid = (msg: string): RpcError => new RpcError(grpc.status.INVALID_ARGUMENT, msg);
export const denied = (msg: string): RpcError => new RpcError(grpc.status.PERMISSION_DENIED, msg);
export const notFound = (msg: string): RpcError => new RpcError(grpc.status.NOT_FOUND, msg);
export const failedPrecondition = (msg: string): RpcError => new RpcError(grpc.status.FAILED_PRECONDITION, msg);

export function toServiceError(err: unknown, log?: (msg: string, err: unknown) => void): grpc.ServiceError {
  let code = grpc.status.INTERNAL;
  let message = "internal error";
  if (err instanceof RpcError) {
    code = err.code;
    message = err.message;
  } else if (err instanceof AuthError) {
    code = grpc.status.UNAUTHENTICATED;
    message = err.message;
  } else if (err instanceof RunSpecError) {
    code = grpc.status.INVALID_ARGUMENT;
    message = err.message;
  } else if (err instanceof EnrollmentError) {
    code = err.code === "ALREADY_ENROLLED" ? grpc.status.ALREADY_EXISTS : err.code === "BAD_KEY" ? grpc.status.INVALID_ARGUMENT : grpc.status.PERMISSION_DENIED;
    message = err.message;
  } else {
    log?.("unexpected error in RPC handler", err);
  }
  const e = new Error(message) as grpc.ServiceError;
  e.code = code;
  e.details = message;
  e.metadata = new grpc.Metadata();
  return e;
}
