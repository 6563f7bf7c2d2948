export * from "./eval-counts.ts";
export * from "./eval-dp.ts";
export * from "./held-out.ts";
export * from "./evaluate-local.ts";
