/**
 * The laptop's side of federated evaluation without a cluster: the daemon's training windows
 * leave out the held-out slice whenever the round names one, and `tacit run status` prints
 * federated top-1/top-3 (with the ± error of noised counts) per evaluation.
 */
import { describe, expect, it } from "vitest";
import { examplesFromActions, splitActions } from "../client/daemon/local-trainer.ts";
import type { ActionRecord } from "../client/store/action-record.ts";
import { evaluationLine, parseEvaluations } from "../cli/commands/evaluation-lines.ts";
import type { RoundConfig } from "../shared/run/index.ts";
import { TINY_MODEL } from "./support/cluster.ts";

const records: ActionRecord[] = Array.from({ length: 50 }, (_, i) => ({ at: 1_700_000_000_000 + (49 - i) * 5000, app: "code", kind: "key", token: `t${i % 5}` }) as ActionRecord);
const cfg = (heldOutFraction?: number): RoundConfig => ({ model: TINY_MODEL, training: { heldOutFraction } }) as unknown as RoundConfig;

describe("federated evaluation on the laptop", () => {
  it("training never sees the most recent held-out slice of the store", () => {
    expect(examplesFromActions(records, cfg()).count).toBe(50);
    const { train, heldOut } = splitActions(records, cfg(0.2));
    expect(train.count).toBe(40);
    expect(heldOut.count).toBe(10);
    expect(examplesFromActions(records, cfg(0.2)).count).toBe(40);
    // The held-out targets are the 10 newest actions (records are stored newest first here).
    const newest = [...records].sort((a, b) => a.at - b.at).slice(-10).map((r) => r.token);
    const all = splitActions(records, cfg()).train;
    expect([...heldOut.y]).toEqual([...all.y.slice(40)]);
    expect(newest).toHaveLength(10);
  });

  it("status lines show federated top-1 and top-3, and say whether counts were exact or noised", () => {
    const metrics = { top1Micro: 0.25, top3Micro: 0.5, top1Macro: 0.3, top3Macro: 0.55, loss: 2.5, events: 400, users: 4 };
    const exact = evaluationLine({ afterRound: 4, status: "completed", survivors: 4, cohort: 4, noiseMultiplier: 0, metrics, errorBound: { counts: 0, failureProbability: 1e-6 }, detail: "" });
    expect(exact).toBe("  evaluation after round 4: federated top-1 25.0%  top-3 50.0%  (per-user 30.0% / 55.0%)  loss 2.500  on 400 held-out examples of 4 devices  (exact counts, no DP noise)");
    const noised = evaluationLine({ afterRound: 9, status: "completed", survivors: 4, cohort: 4, noiseMultiplier: 1, metrics, errorBound: { counts: 20, failureProbability: 1e-6 }, detail: "" });
    expect(noised).toContain("(noised z=1: counts ±20, ≈ ±5.0% accuracy)");
    expect(evaluationLine({ afterRound: 2, status: "aborted", survivors: 0, cohort: 1, noiseMultiplier: 0, detail: "only 1 eligible device" })).toBe("  evaluation after round 2 aborted: only 1 eligible device");
    expect(parseEvaluations("")).toEqual([]);
    expect(parseEvaluations("not json")).toEqual([]);
  });
});
