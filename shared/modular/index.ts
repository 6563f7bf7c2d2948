export * from "./modular-vector.ts";
