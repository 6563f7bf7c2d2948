/**
 * TLS channel credentials that pin the coordinator's CA: the only CA a Tacit client trusts.
 */
import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";

export class CaFileError extends Error {
  override name = "CaFileError";
}

export function pinnedCaCredentials(caFile: string): grpc.ChannelCredentials {
  let pem: Buffer;
  try {
    pem = readFileSync(caFile);
  } catch {
    throw new CaFileError(`cannot read the coordinator CA ${caFile}: copy tls/ca.pem from the coordinator's state dir`);
  }
  if (!pem.toString("utf8").includes("BEGIN CERTIFICATE")) throw new CaFileError(`${caFile} is not a PEM certificate`);
  return grpc.credentials.createSsl(pem);
}
