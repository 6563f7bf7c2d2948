export * from "./ed25519.ts";
export * from "./okp-keys.ts";
export * from "./canonical-json.ts";
export * from "./merkle.ts";
