/**
 * Exact aggregates (audit findings 5, 6 and 8): the scale γ assumes the shared rotation (signal
 * norm grows with m, not √m), so a no-noise round of identical updates — the audit's case that
 * wrapped 38 of 262,144 coordinates — decodes exactly; an aggregate no honest round can produce
 * is recognised; `bits` is limited to what encodes; σ² is sized for the honest survivors alone.
 */
import { describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { addInPlace, fromSigned, zeros } from "../shared/modular/index.ts";
import { calibrateDistributedDp, decodeAggregate, encodeClientUpdate, impossibleAggregate, roundEvent, DistributedDpError, type DistributedDiscreteGaussianEvent } from "../shared/dp/index.ts";
import { parseRunSpec } from "../shared/run/index.ts";
import { tinyRunSpec } from "./support/cluster.ts";

describe("exact aggregates", () => {
  it("a no-noise round of 8 identical updates at the clip norm (d' = 2^18) decodes exactly", () => {
    const d = 2 ** 18;
    const C = 5;
    const cfg = calibrateDistributedDp({ clip: C, noiseMultiplier: 0, minSurvivors: 6, expectedSurvivors: 8, bits: 32, dimension: d, rotationSeed: randomBytes(32) });
    expect(cfg.overflowProbabilityBound).toBeLessThan(1e-8);
    const x = Float32Array.from({ length: d }, (_, i) => Math.sin(i * 0.37) + 0.5);
    const norm = Math.sqrt(x.reduce((a, v) => a + v * v, 0));
    for (let i = 0; i < d; i++) x[i] = (x[i]! * C) / norm; // exactly at the clip norm, all aligned
    const sum = zeros(32, d);
    for (let k = 0; k < 8; k++) addInPlace(sum, encodeClientUpdate(x, cfg).encoded);
    const out = decodeAggregate(sum, cfg);
    let worst = 0;
    for (let i = 0; i < d; i++) worst = Math.max(worst, Math.abs(out[i]! - 8 * x[i]!));
    // One wrapped coordinate would spread 2^32/γ over every coordinate: ≈ 2.5·10⁻³ here.
    expect(worst).toBeLessThan(1e-5);
    expect(impossibleAggregate(sum, cfg, 8)).toBeUndefined();
  });

  it("refuses an aggregate no honest round can produce: corrupted masks, or an unclipped input", () => {
    const d = 4096;
    const cfg = calibrateDistributedDp({ clip: 1, noiseMultiplier: 1, minSurvivors: 4, colluders: 1, expectedSurvivors: 5, bits: 32, dimension: d, rotationSeed: randomBytes(32) });
    const x = Float32Array.from({ length: d }, (_, i) => Math.cos(i) / Math.sqrt(d));
    const sum = zeros(32, d);
    for (let k = 0; k < 5; k++) addInPlace(sum, encodeClientUpdate(x, cfg).encoded);
    expect(impossibleAggregate(sum, cfg, 5)).toBeUndefined();
    // A mask that was not removed (a corrupt share) leaves a uniform PRG stream on every coordinate.
    const stream = randomBytes(4 * d);
    const corrupt = { ...sum, data: Uint32Array.from(sum.data, (v, i) => (v + stream.readUInt32LE(4 * i)) >>> 0) };
    expect(impossibleAggregate(corrupt, cfg, 5)).toMatch(/exceeds what 5 clipped, noised inputs can reach/);
    // A device that skipped clipping by far (here 200× the clip norm) pushes the norm past the
    // bound. (With z = 1 the noise norm is ≈ √d'·σ: an input a few times over the clip hides in it.)
    const unclipped = fromSigned(32, Array.from({ length: d }, (_, i) => (i % 2 ? 1 : -1) * Math.round((200 * cfg.scale) / Math.sqrt(d))));
    addInPlace(unclipped, sum);
    expect(impossibleAggregate(unclipped, cfg, 5)).toMatch(/exceeds/);
  });

  it("limits bits to what encodes (52) and encodes exactly there", () => {
    const d = 256;
    const cfg = calibrateDistributedDp({ clip: 1, noiseMultiplier: 1, minSurvivors: 2, expectedSurvivors: 3, bits: 52, dimension: d, rotationSeed: randomBytes(32) });
    const x = Float32Array.from({ length: d }, (_, i) => ((i % 7) - 3) / 40);
    const sum = zeros(52, d);
    for (let k = 0; k < 3; k++) addInPlace(sum, encodeClientUpdate(x, cfg).encoded);
    const out = decodeAggregate(sum, cfg);
    // Noise of z = 1 on a sum of 3: within 8 standard deviations of C·z per coordinate scale.
    for (let i = 0; i < d; i++) expect(Math.abs(out[i]! - 3 * x[i]!)).toBeLessThan(8);
    expect(() => calibrateDistributedDp({ clip: 1, noiseMultiplier: 1, minSurvivors: 2, expectedSurvivors: 3, bits: 56, dimension: d, rotationSeed: randomBytes(32) })).toThrow(DistributedDpError);
    expect(() => parseRunSpec(tinyRunSpec({ bits: 56 }))).toThrow(/bits/);
  });

  it("sizes σ² so that the honest survivors alone (minSurvivors − colluders) reach z", () => {
    const base = { clip: 2, noiseMultiplier: 1.3, minSurvivors: 10, expectedSurvivors: 20, bits: 32, dimension: 1000, rotationSeed: randomBytes(32) };
    for (const colluders of [0, 2, 9]) {
      const cfg = calibrateDistributedDp({ ...base, colluders });
      const e = roundEvent(cfg) as DistributedDiscreteGaussianEvent;
      expect(e.devices).toBe(10 - colluders);
      // z_eff in the scaled domain: √(honest · σ²) / (γC) = z.
      expect(Math.sqrt(e.devices * e.perDeviceVariance) / (cfg.scale * base.clip)).toBeCloseTo(1.3, 9);
    }
    expect(() => calibrateDistributedDp({ ...base, colluders: 10 })).toThrow(/colluders must be/);
    expect(() => parseRunSpec(tinyRunSpec({ cohortSize: 20, populationSize: 20, minSurvivors: 2, corruptTolerance: 0.1 }))).toThrow(/minSurvivors must exceed the colluders/);
  });
});
