export * from "./spec.ts";
export * from "./examples.ts";
export * from "./backend.ts";
export * from "./weights.ts";
export * from "./trainer.ts";
export * from "./checkpoint.ts";
export * from "./server-optimizer.ts";
export * from "./defaults.ts";
