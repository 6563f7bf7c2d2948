/**
 * The vitest config of scripts/mutation/try-mutant.mjs: the project's tests, with one source file
 * (MUT_FILE, absolute) served from MUT_SRC through a Vite `load` hook, so a single Stryker mutant
 * can be checked without editing the checkout (a Stryker run copies the checkout when it starts, and
 * other work shares it). Stryker's sandboxes are excluded: vitest matches file filters by substring,
 * and a sandbox's copy of a test would run against unmutated code.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const target = process.env.MUT_FILE;
const mutated = process.env.MUT_SRC;
if (!target || !mutated) throw new Error("serve-mutant.config.mts needs MUT_FILE and MUT_SRC (run it through try-mutant.mjs)");

export default defineConfig({
  root: fileURLToPath(new URL("../..", import.meta.url)),
  plugins: [{ name: "serve-mutant", enforce: "pre", load: (id: string) => (id.split("?")[0] === target ? readFileSync(mutated, "utf8") : undefined) }],
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/.stryker-tmp/**"],
    pool: "forks",
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
