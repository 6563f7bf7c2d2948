/**
 * The device side of the budget: the guard declines rounds that fall short of what the person
 * consented to, and the local budget record never under-counts (a re-run attempt after a
 * coordinator crash supersedes an unrevealed earlier attempt, nothing else is refunded).
 */
import { describe, expect, it } from "vitest";
import { checkRound } from "../client/participant/device-guard.ts";
import { BudgetRecord } from "../client/participant/budget-record.ts";
import { deviceEpsilon, type DpEvent } from "../shared/dp/index.ts";
import type { RoundConfig } from "../shared/run/index.ts";
import { chooseParams } from "../shared/secagg/index.ts";

const EVENT: DpEvent = { kind: "gaussian", noiseMultiplier: 1 };
// An honest coordinator's SecAgg parameters for a cohort of 20 (they pass the device floors).
const HONEST = chooseParams({ cohortSize: 20, dropoutFraction: 0.1, corruptFraction: 0.1, minSurvivors: 10 });
const cohort = { size: 20, root: "0".repeat(64) };
const cfg = (over: Partial<RoundConfig["dp"]> = {}, signals: RoundConfig["signals"] = ["commit"], secagg: Partial<RoundConfig["secagg"]> = {}): RoundConfig =>
  ({ dp: { mechanism: "ddgauss", clip: 1, noiseMultiplier: 1, minSurvivors: 10, expectedSurvivors: 20, colluders: HONEST.colluders, delta: 1e-6, rotationSeed: "", ...over }, signals, cohort, secagg: { bits: 32, threshold: HONEST.threshold, degree: HONEST.degree, mode: HONEST.mode, roundSeed: "", guarantee: "", ...secagg } }) as unknown as RoundConfig;
const limits = { maxDeviceEpsilon: 20, delta: 1e-6, minNoiseMultiplier: 0.8, minSurvivors: 5, signals: ["commit", "shortcut"] };

describe("device guard", () => {
  it("accepts a round within every limit and reports the projected ε", () => {
    const d = checkRound(cfg(), EVENT, [], limits);
    expect(d.ok).toBe(true);
    if (d.ok) expect(d.projectedEpsilon).toBeCloseTo(deviceEpsilon([EVENT], 1e-6), 9);
  });

  it.each([
    [cfg({ noiseMultiplier: 0.5 }), "NOISE_TOO_LOW"],
    [cfg({ minSurvivors: 3 }), "TOO_FEW_SURVIVORS"],
    [cfg({ delta: 1e-3 }), "DELTA_TOO_LARGE"],
    [cfg({}, ["commit", "typing-burst"]), "SIGNAL_NOT_CONSENTED"],
    // The audit's t = 1, and t just below the malicious-coordinator floor (Bell et al.).
    [cfg({}, ["commit"], { threshold: 1 }), "SECAGG_BELOW_FLOOR"],
    [cfg({}, ["commit"], { threshold: HONEST.threshold - 1 }), "SECAGG_BELOW_FLOOR"],
    // σ² sized as if every survivor were honest (the audit's finding 5).
    [cfg({ colluders: 0 }), "NOISE_IGNORES_COLLUDERS"],
  ] as const)("declines %#: %s", (c, code) => {
    const d = checkRound(c, EVENT, [], limits);
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.code).toBe(code);
  });

  // The reason is what the person reads in `tacit status`: it names the figures that failed.
  it.each([
    [cfg({ noiseMultiplier: 0.5 }), "noise multiplier 0.5 is below this device's minimum 0.8"],
    [cfg({ minSurvivors: 3 }), "minSurvivors 3 is below this device's minimum 5"],
    [cfg({ delta: 1e-3 }), "run delta 0.001 exceeds this device's delta 0.000001"],
    [cfg({}, ["commit", "typing-burst", "app-switch"]), "round uses signals not consented to: typing-burst, app-switch"],
    [cfg({ colluders: 0 }), `the round's noise counts on all but 0 survivors; this device assumes up to ${HONEST.colluders} of 20 collude`],
    [cfg({ colluders: undefined }), `the round's noise counts on all but 0 survivors; this device assumes up to ${HONEST.colluders} of 20 collude`],
  ] as const)("a decline's reason names its figures %#", (c, reason) => {
    const d = checkRound(c, EVENT, [], limits);
    expect(d.ok ? "accepted" : d.reason).toBe(reason);
  });

  it("declines once the composed budget would exceed the person's maximum", () => {
    const spent: DpEvent[] = [];
    let joined = 0;
    for (;;) {
      const d = checkRound(cfg(), EVENT, spent, limits);
      if (!d.ok) {
        expect(d.code).toBe("BUDGET_EXHAUSTED");
        expect(d.reason).toMatch(/> limit 20/);
        break;
      }
      spent.push(EVENT);
      joined++;
    }
    expect(joined).toBeGreaterThan(0);
    expect(deviceEpsilon(spent, 1e-6)).toBeLessThanOrEqual(20);
    expect(deviceEpsilon([...spent, EVENT], 1e-6)).toBeGreaterThan(20);
  });
});

describe("device budget record", () => {
  it("charges once per attempt, never refunds an aborted round, supersedes only unrevealed re-run attempts", () => {
    const b = new BudgetRecord();
    b.charge({ runId: "r", round: 0, attempt: 0, event: EVENT, at: 1 });
    b.charge({ runId: "r", round: 0, attempt: 0, event: EVENT, at: 2 }); // duplicate delivery
    expect(b.events()).toHaveLength(1);
    b.markOutcome("r", 0, 0, "aborted");
    expect(b.events()).toHaveLength(1); // aborted is not refunded
    b.charge({ runId: "r", round: 1, attempt: 0, event: EVENT, at: 3 }); // coordinator crashes here
    b.charge({ runId: "r", round: 1, attempt: 1, event: EVENT, at: 4 }); // the round is re-run
    expect(b.events()).toHaveLength(2); // round 1 counted once
    b.charge({ runId: "r", round: 2, attempt: 0, event: EVENT, at: 5 });
    b.markRevealed("r", 2, 0); // this device helped unmask attempt 0
    b.charge({ runId: "r", round: 2, attempt: 1, event: EVENT, at: 6 });
    expect(b.events()).toHaveLength(4); // a revealed attempt stays charged
    b.markOutcome("r", 2, 1, "completed");
    // The lost attempt is aborted, not completed: only attempt 1 has an attestation in the ledger.
    expect(b.list().filter((e) => e.round === 2).map((e) => [e.attempt, e.outcome])).toEqual([[0, "aborted"], [1, "completed"]]);
  });
});
