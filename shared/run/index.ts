export * from "./run-spec.ts";
export * from "./round-config.ts";
export * from "./round-dp.ts";
export * from "./privacy-projection.ts";
export * from "./attestation.ts";
export * from "./adaptive-clip-round.ts";
export * from "./cohort-commitment.ts";
