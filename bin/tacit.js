#!/usr/bin/env node
// The `tacit` binary: registers the TypeScript loader (tsx) and runs the CLI. Tacit ships its
// TypeScript sources and runs them directly, so there is no build step between a clone and use.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../cli/main.ts");
await main(process.argv);
