/**
 * grpc-js answers an undecodable request with a generic INTERNAL status. Tacit wants a
 * specific INVALID_ARGUMENT naming the problem, so each method's deserializer is wrapped: a
 * protobuf that does not decode becomes a marker object the handlers refuse before use.
 * Responses that are already serialized (a Buffer: one roster encoded once for a whole cohort,
 * see DeviceHub.encodeOnce) are passed through as they are.
 */
import type * as grpc from "@grpc/grpc-js";

export const MALFORMED = Symbol("tacit.malformed");

export interface MalformedRequest {
  [MALFORMED]: string;
}

export function isMalformed(x: unknown): x is MalformedRequest {
  return typeof x === "object" && x !== null && MALFORMED in x;
}

export function hardenService(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, m] of Object.entries(def)) {
    const method = m as grpc.MethodDefinition<unknown, unknown>;
    out[name] = {
      ...method,
      responseSerialize: (value: unknown) => (Buffer.isBuffer(value) ? value : method.responseSerialize(value)),
      requestDeserialize: (buf: Buffer) => {
        try {
          return method.requestDeserialize(buf);
        } catch (err) {
          return { [MALFORMED]: (err as Error).message.slice(0, 200) };
        }
      },
    };
  }
  return out as grpc.ServiceDefinition;
}
