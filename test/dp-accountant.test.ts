/**
 * The RDP accountant against reference values computed with Google's dp_accounting 0.6
 * (scripts/dp-reference/generate-vectors.py): within 1e-11 relative (the README's claim) and never below, across noise
 * multipliers 0.5–4, sample rates 0.001–1, steps 1–10,000, δ 1e-8–1e-5, Poisson and fixed-size
 * sampling; plus the accountant's own invariants.
 */
import { describe, expect, it } from "vitest";
import { readReferenceVectors } from "../scripts/dp-reference/reference-vectors.ts";
import { runTacit } from "./support/run-tacit.ts";
import { AccountantInputError, makeAccountant, RdpAccountant, UnsupportedEventError, type DpEvent } from "../shared/dp/index.ts";
import { epsilonFor } from "../cli/commands/privacy.ts";


const vectors = readReferenceVectors();

describe("RDP accountant vs dp_accounting 0.6", () => {
  it(`matches all ${vectors.length} reference vectors within 1e-11 relative and never below`, () => {
    let worst = 0;
    for (const v of vectors) {
      const eps = epsilonFor({ noiseMultiplier: v.z, sampleRate: v.q, steps: v.steps, delta: v.delta, accountant: "rdp", sampling: v.sampling, population: v.population ?? 1_000_000 });
      expect(eps, JSON.stringify(v)).toBeGreaterThanOrEqual(v.rdp * (1 - 1e-9));
      expect(eps, JSON.stringify(v)).toBeLessThanOrEqual(v.rdp * (1 + 1e-11));
      worst = Math.max(worst, Math.abs(eps / v.rdp - 1));
    }
    console.log(`accountant: ${vectors.length} reference vectors, worst relative difference ${worst.toExponential(2)}`);
    expect(new Set(vectors.map((v) => v.sampling))).toEqual(new Set(["poisson", "fixed"]));
  });

  it("composes monotonically and checks before it changes anything", () => {
    const g: DpEvent = { kind: "poissonSampled", samplingProbability: 0.01, event: { kind: "gaussian", noiseMultiplier: 1.1 } };
    const a = new RdpAccountant();
    let last = 0;
    for (let i = 0; i < 5; i++) {
      a.compose(g, 100);
      const e = a.getEpsilon(1e-5);
      expect(e).toBeGreaterThan(last);
      last = e;
    }
    expect(() => a.compose({ kind: "poissonSampled", samplingProbability: 0.1, event: { kind: "nonsense" } as unknown as DpEvent })).toThrow(UnsupportedEventError);
    expect(a.getEpsilon(1e-5)).toBe(last); // unchanged by the refused event
    expect(new RdpAccountant().compose({ kind: "nonPrivate" }).getEpsilon(1e-5)).toBe(Infinity);
    expect(new RdpAccountant().compose({ kind: "noOp" }).getEpsilon(1e-5)).toBe(0);
    expect(() => new RdpAccountant().getEpsilon(0)).toThrow(AccountantInputError);
    // δ(ε(δ)) ≤ δ: the two conversions agree.
    const d = a.getDelta(last);
    expect(d).toBeLessThanOrEqual(1e-5 * 1.0001);
  });

  it("offers the PLD accountant beside RDP (its own tests: test/dp-pld.test.ts)", () => {
    expect(makeAccountant("pld").supports({ kind: "gaussian", noiseMultiplier: 1 })).toBe(true);
    expect(() => makeAccountant("xyz" as "pld")).toThrow(/unknown accountant/);
  });

  it("prints exactly one JSON object through the CLI contract, with dp_accounting's ε", async () => {
    // A reference vector with Poisson sampling and many steps, so a wrong factor anywhere shows.
    const v = vectors.find((x) => x.sampling === "poisson" && x.steps >= 100 && x.q < 1)!;
    expect(v).toBeDefined();
    const { stdout: out, status } = await runTacit(["privacy", "epsilon", "--noise-multiplier", String(v.z), "--sample-rate", String(v.q), "--steps", String(v.steps), "--delta", String(v.delta), "--accountant", "rdp", "--json"]);
    expect(status).toBe(0);
    const lines = out.trim().split("\n");
    expect(lines).toHaveLength(1);
    const obj = JSON.parse(lines[0]!) as { epsilon: number };
    expect(obj.epsilon).toBeGreaterThanOrEqual(v.rdp * (1 - 1e-9));
    expect(obj.epsilon).toBeLessThanOrEqual(v.rdp * (1 + 1e-9));
  });

  it.each([
    [["--noise-multiplier", "abc", "--sample-rate", "0.1", "--steps", "10"], /must be a number/],
    [["--noise-multiplier", "1", "--sample-rate", "1.5", "--steps", "10"], /at most 1/],
    [["--noise-multiplier", "1", "--sample-rate", "0.1", "--steps", "10", "--accountant", "xyz"], /rdp or pld/],
    [["--noise-multiplier", "1", "--sample-rate", "0.1"], /--steps is required/],
  ])("refuses bad CLI values %j with a specific error and exit 2", async (args, re) => {
    // Spawned asynchronously: a worker blocked in a synchronous spawn misses vitest's RPC deadline.
    const { status, stderr } = await runTacit(["privacy", "epsilon", ...args, "--json"]);
    expect(status).toBe(2);
    expect(stderr).toMatch(re);
    expect(stderr).not.toMatch(/at .*\.ts:\d+/); // no stack trace
  });
});
