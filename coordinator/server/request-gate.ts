/**
 * The server interceptor every call passes before grpc-js reads a byte of its body: it refuses
 * compressed requests, admits the caller from the signed metadata alone (Authenticator.admit),
 * and only then lets the body be read, through a frame decoder capped at that method's size
 * (message-caps.ts). A caller without valid credentials therefore never makes the coordinator
 * buffer, inflate or decode anything. An admitted request must arrive in full within
 * `requestTimeoutMs`, so even a signed caller cannot park half-sent messages.
 */
import * as grpc from "@grpc/grpc-js";
import { StreamDecoder } from "@grpc/grpc-js/build/src/stream-decoder.js";
import { RequestRefused } from "./request-errors.ts";
import { toServiceError } from "./status-boundary.ts";

export interface RequestGateOptions {
  /** Checks the caller from metadata only; throws a RequestRefused/AuthError to refuse. */
  admit(metadata: grpc.Metadata, method: string, peerAddress: string): Promise<void>;
  /** Largest body `method` may carry right now. */
  capFor(method: string): number;
  requestTimeoutMs: number;
}

/** The grpc-js internals the gate replaces; checked at startup so an upgrade cannot silently drop the cap. */
interface BaseCallInternals {
  decoder: { write(data: Buffer): Buffer[] };
  incomingEncoding: string;
}

function internalsOf(call: grpc.ServerInterceptingCallInterface): BaseCallInternals {
  const base = call as unknown as Partial<BaseCallInternals>;
  if (!base.decoder || typeof base.decoder.write !== "function" || typeof base.incomingEncoding !== "string") {
    throw new Error("request gate: this grpc-js version does not expose the call's decoder; the body caps cannot be enforced");
  }
  return base as BaseCallInternals;
}

/** A length-prefixed frame decoder that refuses frames over `cap` and frames marked compressed. */
export function cappedDecoder(cap: number): BaseCallInternals["decoder"] {
  const inner = new StreamDecoder(cap);
  return {
    write(data: Buffer): Buffer[] {
      const frames = inner.write(data);
      for (const f of frames) if (f.readUInt8(0) !== 0) throw new Error("compressed requests are refused: send grpc-encoding identity");
      return frames;
    },
  };
}

function refuse(call: grpc.ServerInterceptingCallInterface, err: unknown): void {
  const e = toServiceError(err);
  call.sendStatus({ code: e.code, details: e.details, metadata: null });
}

export function requestGate(opts: RequestGateOptions): grpc.ServerInterceptor {
  return (method, call) => {
    const internals = internalsOf(call);
    let timer: NodeJS.Timeout | undefined;
    const clear = (): void => {
      if (timer) clearTimeout(timer);
      timer = undefined;
    };
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            if (internals.incomingEncoding !== "identity") {
              refuse(call, new RequestRefused("unimplemented", `compressed requests (${internals.incomingEncoding}) are refused: send grpc-encoding identity`));
              return;
            }
            const peer = call.getConnectionInfo().remoteAddress ?? "unknown";
            opts.admit(metadata, method.path, peer).then(
              () => {
                internals.decoder = cappedDecoder(opts.capFor(method.path));
                timer = setTimeout(() => refuse(call, new RequestRefused("deadline-exceeded", `request body not received within ${opts.requestTimeoutMs} ms`)), opts.requestTimeoutMs);
                timer.unref();
                mdNext(metadata);
              },
              (err: unknown) => refuse(call, err),
            );
          },
          onReceiveMessage: (message, msgNext) => {
            clear();
            msgNext(message);
          },
          onCancel: () => clear(),
        });
      },
    });
  };
}
