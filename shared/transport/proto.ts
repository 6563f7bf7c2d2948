/**
 * Loads the wire contract (proto/tacit.proto) for both edges. Only the coordinator's gRPC
 * handlers and the client's transport import this module; domain code speaks domain types.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";
import type { ProtoGrpcType } from "../proto-gen/tacit.ts";
import { MAX_WIRE_MESSAGE_BYTES } from "../run/run-spec.ts";

export const PROTO_PATH = fileURLToPath(new URL("../../proto/tacit.proto", import.meta.url));

/** Options must match scripts/gen-proto.mjs so the generated types describe what we load. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** Largest message either side accepts: one float32 checkpoint or masked vector of ~4M words. */
export const MAX_MESSAGE_BYTES = MAX_WIRE_MESSAGE_BYTES;

let cached: ProtoGrpcType | undefined;

export function loadTacitProto(): ProtoGrpcType {
  if (!cached) {
    const def = protoLoader.loadSync(PROTO_PATH, PROTO_LOADER_OPTIONS);
    cached = grpc.loadPackageDefinition(def) as unknown as ProtoGrpcType;
  }
  return cached;
}

export type { ProtoGrpcType };
