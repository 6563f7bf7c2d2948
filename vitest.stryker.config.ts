/**
 * The vitest config StrykerJS runs (stryker.config.mjs; `npm run test:mutation`). It offers, per
 * mutated folder, the test files that exercise it in process and finish in seconds to a minute; Stryker's
 * `related` mode and per-test coverage then pick, for each mutant, only the tests that reach it.
 *
 * Left out on purpose: tests whose work happens in child processes (the CLI contract through
 * `bin/tacit.js`, the PLD reference grid in `scripts/dp-reference/pld-grid.ts`, coordinator and
 * device processes, Chromium, Xvfb): Stryker's mutant switch lives in the test worker, so a child
 * runs unmutated code and such a test can kill nothing; it only costs minutes per mutant. The
 * in-process pins of the same values are in the `*-mutants.test.ts` files.
 */
import { statSync } from "node:fs";
import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * Vitest runs the slowest files first; Stryker bails at the first failing test, so the
 * opposite order kills most mutants in seconds: shortest last run first, then smallest file.
 */
class FastFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const cost = (f: TestSpecification): number => {
      const key = `${f.project.name}:${f.moduleId.slice(this.ctx.config.root.length + 1)}`;
      return this.ctx.cache.getFileTestResults(key)?.duration ?? statSync(f.moduleId).size;
    };
    return [...files].sort((a, b) => cost(a) - cost(b));
  }
}

const TESTS: Record<string, string[]> = {
  "shared/secagg": [
    "secagg-protocol", "secagg-shamir", "secagg-params", "secagg-share-decoding", "secagg-wrong-shares",
    "secagg-malicious-coordinator", "modular-vector", "client-guard", "secagg-mutants",
    "secagg-batched-decoding", "secagg-neighbour-roster", "okp-keys", "participant-mutants",
    "secagg-params-mutants", "secagg-shamir-mutants", "secagg-primitives-mutants", "secagg-device-server-mutants",
  ],
  "shared/dp": [
    "dp-accountant-contract", "dp-adaptive-clip", "dp-calibration", "dp-discrete-gaussian", "dp-exact-aggregate",
    "dp-samplers", "policy-shared", "eval-counts", "client-guard", "adaptive-clip-device-floor", "dp-mutants",
    "dp-pld", "dp-accountant", "dp-pld-mutants", "dp-samplers-mutants",
  ],
  "shared/ledger": [
    "ledger-local-copy", "ledger-verify-truth", "ledger-verify-initial-model", "ledger-group-commit", "ledger-mutants",
    "ledger-member-commitment", "model-releases", "ledger-report", "ledger-adaptive-clip-check", "ledger-verify-mutants",
    "ledger-writer-mutants", "ledger-rest-mutants",
  ],
  "client/participant": ["client-guard", "adaptive-clip-device-floor", "participant-mutants", "participant-superseded", "budget-record"],
  "coordinator/server": [
    "coordinator-limits-pure", "server-guards-pure", "replay-guard", "coordinator-status-boundary", "auth-failed-bucket",
    "coordinator-bad-input", "subscribe-backlog", "server-mutants",
    "handlers-roles", "handlers-admin", "handlers-rounds", "handlers-reviewer", "handlers-watchrun", "handlers-live", "tls-listener",
    "server-gate-caps-mutants", "server-auth-rest-mutants",
  ],
  "coordinator/rounds": ["device-hub-invites", "device-hub-rosters", "server-update-finite", "phase-deadlines", "rounds-mutants", "handlers-rounds", "round-runner-mutants",
    "device-hub-mutants", "rounds-rest-mutants"],
};

const folders = (process.env.STRYKER_FOLDERS ?? Object.keys(TESTS).join(",")).split(",");
// STRYKER_TESTS=a,b narrows to those test files (names without .test.ts): a quicker, conservative
// measurement (fewer tests can only kill fewer mutants).
const only = process.env.STRYKER_TESTS?.split(",").map((s) => s.trim()).filter(Boolean);
const include = [...new Set(only ?? folders.flatMap((f) => TESTS[f] ?? []))].map((name) => `test/${name}.test.ts`);

export default defineConfig({
  test: {
    include,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    sequence: { sequencer: FastFirstSequencer },
    reporters: ["default"],
  },
});
