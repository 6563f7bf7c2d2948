export * from "./entry.ts";
export * from "./writer.ts";
export * from "./verify.ts";
export * from "./local-copy.ts";
export * from "./initial-model-check.ts";
export * from "./adaptive-clip-check.ts";
export * from "./member-commitment.ts";
