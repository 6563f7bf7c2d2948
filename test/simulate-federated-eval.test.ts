/**
 * `tacit simulate` with federated evaluation: the simulated devices hold whole sequences and keep
 * the last 10% back themselves, which is exactly the simulator's eval set, so each round's
 * `federatedEval` (counts summed by secure aggregation, no noise) must equal its central `eval`.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runSimulation, writeMetrics, type SimulationMetrics } from "../simulation/simulate.ts";

describe("simulate: federatedEval beside eval", () => {
  const out = mkdtempSync(join(tmpdir(), "tacit-sim-fedeval-"));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it("every completed round's federatedEval equals the central eval on the same held-out slices", async () => {
    writeMetrics(out, await runSimulation({ dataset: "data/devactions", clients: 3, rounds: 2, out, centralized: false, dropout: 0, delta: 1e-6, seed: 3, quiet: true, workers: 1 }));
    const m = JSON.parse(readFileSync(join(out, "metrics.json"), "utf8")) as SimulationMetrics;
    expect(m.spec?.evaluation).toMatchObject({ everyRounds: 1, heldOutFraction: 0.1, noiseMultiplier: 0 });
    const completed = m.rounds.filter((r) => r.status === "completed");
    expect(completed).toHaveLength(2);
    for (const r of completed) {
      const f = r.federatedEval!;
      expect(f.survivors).toBe(3);
      expect(f.events).toBe(r.eval.events);
      expect(f.users).toBe(r.eval.users);
      expect(f.top1Micro).toBe(r.eval.top1Micro);
      expect(f.top3Micro).toBe(r.eval.top3Micro);
      expect(Math.abs(f.top1Macro - r.eval.top1Macro)).toBeLessThanOrEqual(0.5 / 1000 + 1e-9);
      // Summed loss is sent in whole nats per device with each example capped at 16 nats (its
      // DP sensitivity must be bounded), so it can only fall short of the uncapped central loss.
      expect(f.lossCapNats).toBe(16);
      expect(f.loss).toBeLessThanOrEqual(r.eval.loss + (3 * 0.5) / r.eval.events + 1e-9);
      expect(f.loss).toBeGreaterThan(0);
    }
  });
});
