/**
 * `tacit run launch` and the coordinator's LaunchRun refuse FedAdam under DP noise with the same
 * rule `tacit simulate` applies (shared/run/run-spec.ts `dpSpecProblems`): FedAdam normalises
 * coordinates whose second moment is mostly noise and diverges (findings 2026-11-30).
 */
import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runTacit } from "./support/run-tacit.ts";
import { tinyRunSpec } from "./support/cluster.ts";
import { useSuiteCluster } from "./support/suite-cluster.ts";
import { dpSpecProblems, parseRunSpec } from "../shared/run/index.ts";
import { ledgerText } from "./support/ledger-text.ts";
import { defaultRunSpec } from "../cli/commands/run.ts";

describe("tacit run launch: the DP recipe's refusals", () => {
  it("refuses fedadam with noise before reading any key; without noise the spec gets past the rule", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tacit-launch-recipe-"));
    const launch = async (spec: object): Promise<{ status: number; stderr: string }> => {
      const f = join(dir, `spec-${Math.random().toString(36).slice(2)}.json`);
      writeFileSync(f, JSON.stringify(spec));
      // No coordinator state here: a spec that passes the rule fails later, reading the key.
      return runTacit(["run", "launch", "--spec", f, "--state-dir", join(dir, "no-state")]);
    };
    const refused = await launch({ name: "dp-adam", noiseMultiplier: 1, serverOptimizer: "fedadam" });
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/refusing a DP run: serverOptimizer fedadam diverges under DP noise/);
    expect(refused.stderr).not.toMatch(/\n\s+at /);
    const plain = await launch({ name: "plain-adam", noiseMultiplier: 0, serverOptimizer: "fedadam" });
    expect(plain.status).not.toBe(0);
    expect(plain.stderr).not.toMatch(/refusing a DP run/);
  }, 60_000);

  it("defaults a noised spec to DP-FedAvgM, so the default spec itself is launchable", () => {
    expect(dpSpecProblems(parseRunSpec(defaultRunSpec()))).toEqual([]);
    expect(defaultRunSpec().serverOptimizer).toBe("fedavgm");
    expect(defaultRunSpec({ noiseMultiplier: 0 }).serverOptimizer).toBe("fedadam");
  });
});

describe("coordinator LaunchRun: the same refusal for any client", () => {
  const cluster = useSuiteCluster();

  it("refuses a signed fedadam spec with noise and writes no run-launch entry", async () => {
    await expect(cluster().launch(tinyRunSpec({ noiseMultiplier: 1, serverOptimizer: "fedadam" }))).rejects.toThrow(/fedadam diverges under DP noise/);
    const entries = ledgerText(cluster().coordinator.paths.root).trim().split("\n").map((l) => JSON.parse(l) as { type: string });
    expect(entries.some((e) => e.type === "run-launch")).toBe(false);
  }, 60_000);
});
