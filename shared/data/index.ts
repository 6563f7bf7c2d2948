export * from "./devactions.ts";
