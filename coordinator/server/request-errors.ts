/**
 * The typed refusals the coordinator throws while serving a request, free of any transport.
 * Each names its kind and carries only what the caller may read; a reason that must stay
 * inside (the coordinator's log) goes in `internal`. status-boundary.ts is the one module that
 * turns these (and the domain errors it knows) into gRPC statuses.
 */
export type RefusalKind =
  | "invalid-argument"
  | "unauthenticated"
  | "permission-denied"
  | "not-found"
  | "already-exists"
  | "failed-precondition"
  | "resource-exhausted"
  | "unimplemented"
  | "deadline-exceeded";

export class RequestRefused extends Error {
  override name = "RequestRefused";
  constructor(
    readonly kind: RefusalKind,
    /** What the caller is told. */
    publicMessage: string,
    /** What only the coordinator's log sees. */
    readonly internal?: string,
  ) {
    super(publicMessage);
  }
}

export const invalid = (msg: string): RequestRefused => new RequestRefused("invalid-argument", msg);
export const unauthenticated = (msg: string): RequestRefused => new RequestRefused("unauthenticated", msg);
export const denied = (msg: string): RequestRefused => new RequestRefused("permission-denied", msg);
export const notFound = (msg: string): RequestRefused => new RequestRefused("not-found", msg);
export const alreadyExists = (msg: string): RequestRefused => new RequestRefused("already-exists", msg);
export const failedPrecondition = (msg: string): RequestRefused => new RequestRefused("failed-precondition", msg);
export const exhausted = (msg: string): RequestRefused => new RequestRefused("resource-exhausted", msg);
