/**
 * The one boundary where errors become gRPC statuses (grpc-js's serverErrorToStatus, made
 * explicit). Every handler, stream and the request gate hand what they caught to
 * `toServiceError`; `publicStatus` is the pure mapping from an error to the status code and the
 * message the caller reads. What must not leak stays inside, in the coordinator's log:
 *   - why secure aggregation refused a message (a masked input, shares, keys): the caller gets
 *     one fixed text, whatever the check — the reason would tell a probing device about others;
 *   - anything unexpected: INTERNAL with a fixed text, never the error's message or stack.
 * Whether a key id is enrolled never reaches here distinguishably: the authenticator answers an
 * unknown key and a bad signature with the same AuthError text.
 */
import * as grpc from "@grpc/grpc-js";
import { AuthError } from "../../shared/transport/request-auth.ts";
import { RunSpecError } from "../../shared/run/index.ts";
import { SecAggError } from "../../shared/secagg/index.ts";
import { ModularError } from "../../shared/modular/index.ts";
import { EnrollmentError } from "../state/registry.ts";
import { LedgerClosedError } from "../ledger/privacy-ledger.ts";
import { RequestRefused, type RefusalKind } from "./request-errors.ts";
import { RpcError } from "./rpc-error.ts";

/** The text every secure-aggregation refusal carries to the caller. */
export const SECAGG_REFUSED = "secure aggregation refused the message";
export const INTERNAL_ERROR = "internal error";

const CODES: Record<RefusalKind, grpc.status> = {
  "invalid-argument": grpc.status.INVALID_ARGUMENT,
  unauthenticated: grpc.status.UNAUTHENTICATED,
  "permission-denied": grpc.status.PERMISSION_DENIED,
  "not-found": grpc.status.NOT_FOUND,
  "already-exists": grpc.status.ALREADY_EXISTS,
  "failed-precondition": grpc.status.FAILED_PRECONDITION,
  "resource-exhausted": grpc.status.RESOURCE_EXHAUSTED,
  unimplemented: grpc.status.UNIMPLEMENTED,
  "deadline-exceeded": grpc.status.DEADLINE_EXCEEDED,
};

export interface PublicStatus {
  code: grpc.status;
  /** Sent to the caller. */
  details: string;
  /** Kept inside: logged by the coordinator, never sent. */
  internal?: string;
}

const ENROLLMENT_CODES: Record<EnrollmentError["code"], grpc.status> = {
  ALREADY_ENROLLED: grpc.status.ALREADY_EXISTS,
  BAD_KEY: grpc.status.INVALID_ARGUMENT,
  TOKEN_INVALID: grpc.status.PERMISSION_DENIED,
};

/** Pure: the status and public message for anything a request's handling threw. */
export function publicStatus(err: unknown): PublicStatus {
  if (err instanceof RequestRefused) return { code: CODES[err.kind], details: err.message, ...(err.internal !== undefined ? { internal: err.internal } : {}) };
  if (err instanceof RpcError) return { code: err.code, details: err.message };
  if (err instanceof AuthError) return { code: grpc.status.UNAUTHENTICATED, details: err.message };
  if (err instanceof RunSpecError) return { code: grpc.status.INVALID_ARGUMENT, details: err.message };
  if (err instanceof EnrollmentError) return { code: ENROLLMENT_CODES[err.code], details: err.message };
  if (err instanceof ModularError) return { code: grpc.status.INVALID_ARGUMENT, details: err.message };
  if (err instanceof SecAggError) return { code: grpc.status.INVALID_ARGUMENT, details: SECAGG_REFUSED, internal: `${err.code}: ${err.message}` };
  if (err instanceof LedgerClosedError) return { code: grpc.status.FAILED_PRECONDITION, details: "the run has ended: its ledger takes no more entries", internal: err.message };
  return { code: grpc.status.INTERNAL, details: INTERNAL_ERROR, internal: err instanceof Error ? (err.stack ?? err.message) : String(err) };
}

/** The grpc-js error for `err`; its internal reason, if any, goes to `log` and nowhere else. */
export function toServiceError(err: unknown, log?: (internal: string, unexpected: boolean) => void): grpc.ServiceError {
  const s = publicStatus(err);
  if (s.internal !== undefined) log?.(s.internal, s.code === grpc.status.INTERNAL);
  const e = new Error(s.details) as grpc.ServiceError;
  e.code = s.code;
  e.details = s.details;
  e.metadata = new grpc.Metadata();
  return e;
}
