export * from "./errors.ts";
export * from "./messages.ts";
export * from "./shamir.ts";
export * from "./share-decoding.ts";
export * from "./params.ts";
export * from "./consistency.ts";
export * from "./graph.ts";
export { SecAggDevice } from "./device.ts";
export { SecAggServer } from "./server.ts";
import { neighbourGraph } from "./graph.ts";
import type { SecAggConfig } from "./messages.ts";

/** The neighbours of `self` among `participants` for this round's graph. */
export function neighbours(cfg: SecAggConfig, participants: number[], self: number): number[] {
  return neighbourGraph(cfg, participants).get(self) ?? [];
}
