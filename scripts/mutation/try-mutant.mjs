#!/usr/bin/env node
/**
 * Checks Stryker mutants one at a time against chosen test files, without touching the checkout:
 *
 *   node scripts/mutation/try-mutant.mjs <mutation.json> <file:line:column> <mutatorName|*> <test file>...
 *
 * <mutation.json> is a Stryker report (reports/mutation/<name>/mutation.json); the position is the
 * mutant's start as the report gives it (the HTML report shows the same). With `*`, every mutant at
 * that position is tried. Each prints KILLED (a test failed, or the file failed to load) or SURVIVED.
 * The source is served mutated through serve-mutant.config.mts; the report must match the current
 * source of that file.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const [report, position, mutator, ...tests] = process.argv.slice(2);
if (!report || !position || !mutator || tests.length === 0) {
  console.error("usage: try-mutant.mjs <mutation.json> <file:line:column> <mutatorName|*> <test file>...");
  process.exit(2);
}
const [file, line, column] = position.split(":");
const mutants = (JSON.parse(readFileSync(report, "utf8")).files[file]?.mutants ?? []).filter(
  (m) => m.location.start.line === Number(line) && m.location.start.column === Number(column) && (mutator === "*" || m.mutatorName === mutator),
);
if (mutants.length === 0) {
  console.error(`no mutant ${mutator} at ${position} in ${report}`);
  process.exit(2);
}
const source = readFileSync(join(root, file), "utf8");
const lineStarts = [0];
for (let i = 0; i < source.length; i++) if (source[i] === "\n") lineStarts.push(i + 1);
// Stryker's report positions: 1-based lines and columns.
const offset = (p) => lineStarts[p.line - 1] + p.column - 1;
const scratch = join(mkdtempSync(join(tmpdir(), "tacit-mutant-")), "source.ts");
for (const m of mutants) {
  const [a, b] = [offset(m.location.start), offset(m.location.end)];
  writeFileSync(scratch, source.slice(0, a) + m.replacement + source.slice(b));
  const run = spawnSync("npx", ["vitest", "run", "--config", "scripts/mutation/serve-mutant.config.mts", ...tests.map((t) => resolve(root, t))], {
    cwd: root,
    env: { ...process.env, MUT_FILE: resolve(root, file), MUT_SRC: scratch },
    encoding: "utf8",
  });
  const verdict = run.status === 0 ? "SURVIVED" : "KILLED";
  console.log(`${verdict} ${position} ${m.mutatorName}: ${JSON.stringify(source.slice(a, b)).slice(0, 60)} -> ${JSON.stringify(m.replacement).slice(0, 60)}`);
}
