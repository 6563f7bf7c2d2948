// StrykerJS mutation testing for the privacy-critical folders (issue #16).
//   npm run test:mutation                                  # all six folders
//   MUTATE=shared/dp npm run test:mutation                 # one folder (comma-separated list allowed)
//   npm run test:mutation -- --mutate 'shared/dp/**/*.ts'  # any glob, Stryker's own flag
//   npm run test:mutation -- --incremental                 # reuse reports/mutation/<name>/incremental.json
//   MUTATE=shared/secagg MUTATION_NAME=secagg-server npm run test:mutation -- --mutate shared/secagg/server.ts --incremental
// Not part of `npm test`. Reports go under reports/ (gitignored). See test/mutation/README.md.
const ALL = [
  "shared/secagg",
  "shared/dp",
  "shared/ledger",
  "coordinator/server",
  "coordinator/rounds",
  "client/participant",
];

const selected = (process.env.MUTATE ?? "")
  .split(",")
  .map((s) => s.trim().replace(/\/+$/, ""))
  .filter(Boolean);
for (const folder of selected) {
  if (!ALL.includes(folder)) throw new Error(`MUTATE: unknown folder ${folder}; one of ${ALL.join(", ")}`);
}
const folders = selected.length > 0 ? selected : ALL;
// Reports and the incremental file go to reports/mutation/<name>/; MUTATION_NAME names a narrower
// run (e.g. one file through --mutate) so that it keeps its own incremental file.
const name =
  process.env.MUTATION_NAME ?? (selected.length > 0 ? folders.map((f) => f.replace("/", "-")).join("+") : "all");
// Tell vitest.stryker.config.ts which test files to offer (it narrows further with `related`).
process.env.STRYKER_FOLDERS = folders.join(",");

/** @type {import("@stryker-mutator/api/core").PartialStrykerOptions} */
export default {
  testRunner: "vitest",
  vitest: { configFile: "vitest.stryker.config.ts", related: true },
  // The TypeScript checker discards mutants that do not compile before any test runs them. It takes
  // one of the two slots and rebuilds the program per group of mutants; on a busy 2-core machine
  // STRYKER_CHECKER=off trades it for a second test runner (uncompilable mutants then run too, and
  // a surviving one must be judged by hand: vitest strips types).
  checkers: process.env.STRYKER_CHECKER === "off" ? [] : ["typescript"],
  tsconfigFile: "tsconfig.stryker.json",
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  mutate: folders.flatMap((f) => [`${f}/**/*.ts`, `!${f}/**/index.ts`]),
  // Only what the tests need is copied into the sandbox.
  ignorePatterns: [
    "out", "reports", "tacit-state", ".tacit-redis", "bench", "docs", "*.log",
  ],
  coverageAnalysis: "perTest",
  concurrency: 2,
  // A shared 2-core box: generous absolute slack, Stryker adds it to each mutant's measured test time.
  timeoutMS: 20_000,
  timeoutFactor: 2,
  dryRunTimeoutMinutes: 30,
  incrementalFile: `reports/mutation/${name}/incremental.json`,
  reporters: ["clear-text", "progress", "html", "json"],
  htmlReporter: { fileName: `reports/mutation/${name}/index.html` },
  jsonReporter: { fileName: `reports/mutation/${name}/mutation.json` },
  clearTextReporter: { allowColor: false, logTests: false, reportMutants: false },
  thresholds: { high: 90, low: 80, break: null },
  tempDirName: ".stryker-tmp",
  cleanTempDir: true,
};
