export * from "./ed25519.ts";
export * from "./canonical-json.ts";
