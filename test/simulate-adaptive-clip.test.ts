/** The simulation's recipe asks for adaptive clipping with the reference defaults (TFF `gaussian_adaptive`). */
import { describe, expect, it } from "vitest";
import { defaultAdaptiveClip, resolveRecipe } from "../simulation/recipe.ts";
import { parseRunSpec } from "../shared/run/index.ts";
import { tinyRunSpec } from "./support/cluster.ts";

describe("recipe: adaptive clipping", () => {
  it("uses γ 0.5, η 0.2 and σ_b = 0.05 · cohort when asked, nothing otherwise", () => {
    expect(resolveRecipe({ dp: true, adaptiveClip: true }, 100).adaptiveClip).toEqual({ targetQuantile: 0.5, learningRate: 0.2, countStddev: 5 });
    expect(resolveRecipe({ dp: true, adaptiveClip: true, cohort: 40 }, 100).adaptiveClip?.countStddev).toBeCloseTo(2, 12);
    expect(resolveRecipe({ dp: true }, 100).adaptiveClip).toBeUndefined();
  });
  it("its parameters are a valid run-spec block", () => {
    expect(parseRunSpec(tinyRunSpec({ noiseMultiplier: 1, adaptiveClip: defaultAdaptiveClip(100) })).adaptiveClip).toEqual(defaultAdaptiveClip(100));
  });
});
