/** The DP recipe's refusals through the CLI: one line naming the problem, non-zero exit, no metrics. */
import { describe, expect, it } from "vitest";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runTacit } from "./support/run-tacit.ts";

describe("tacit simulate: DP recipe refusals", () => {
  it("refuses FedAdam under DP, pretraining on the federation's own files, a missing --pretrain dir, an unknown optimizer and a release mixture it cannot make", async () => {
    const out = mkdtempSync(join(tmpdir(), "tacit-recipe-out-"));
    const cases: [string[], RegExp][] = [
      [["--target-epsilon", "8", "--server-optimizer", "fedadam"], /refusing a DP run: serverOptimizer fedadam diverges under DP noise/],
      [["--noise-multiplier", "1", "--server-optimizer", "fedadam"], /fedadam diverges under DP noise/],
      [["--pretrain", "data/devactions"], /--pretrain data\/devactions is the --dataset directory/],
      [["--pretrain", "/nonexistent-public"], /--pretrain \/nonexistent-public: no such directory/],
      [["--server-optimizer", "adam"], /--server-optimizer must be fedavg, fedavgm or fedadam/],
      [["--server-lr-schedule", "linear"], /--server-lr-schedule must be constant or cosine, got .linear./],
      [["--target-epsilon", "8", "--release-mix", "0.5"], /--release-mix mixes the federated model with the public initial model: it needs --pretrain/],
      [["--release-mix", "1.5"], /--release-mix must be at most 1, got 1.5/],
      [["--release-mix", "0"], /--release-mix must be at least 0.000001, got 0/],
      [["--max-local-steps", "0"], /--max-local-steps must be at least 1, got 0/],
      [["--centralized", "--release-mix", "0.5"], /--release-mix mixes a federated model with the public one; a --centralized run has none/],
    ];
    for (const [extra, re] of cases) {
      const r = await runTacit(["simulate", "--dataset", "data/devactions", "--clients", "3", "--rounds", "1", "--out", out, ...extra], { env: { REDIS_URL: "redis://127.0.0.1:1" } });
      expect(r.status, extra.join(" ")).not.toBe(0);
      expect(r.stderr, extra.join(" ")).toMatch(re);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    expect(existsSync(join(out, "metrics.json"))).toBe(false);
  }, 120_000);
});
