import { describe, expect, it } from "vitest";
import { DP_TRAINING, dpServerLearningRate } from "../shared/model/index.ts";
import { defaultTrainingFields, dpSpecProblems, parseRunSpec, RunSpecError, DEFAULT_DEADLINES } from "../shared/run/index.ts";
import { DEFAULT_MODEL_SPEC, DEFAULT_PRETRAIN, DENSE_COPY_MODEL_SPEC, DENSE_MODEL_SPEC, parameterCount, TIED_COPY_MODEL_SPEC } from "../shared/model/index.ts";
import { paddedDimension } from "../shared/dp/index.ts";
import { RecipeError, resolveRecipe } from "../simulation/recipe.ts";
import { InitialModelSetupError, prepareInitialModel } from "../simulation/initial-model.ts";

const baseSpec = {
  name: "t", model: DEFAULT_MODEL_SPEC, rounds: 2, cohortSize: 4, minSurvivors: 2, populationSize: 4, ...defaultTrainingFields(), clip: 1, noiseMultiplier: 1, delta: 1e-6,
  mechanism: "ddgauss", bits: 32, dropoutTolerance: 0.1, corruptTolerance: 0.1, signals: ["commit"], deadlines: DEFAULT_DEADLINES, seed: 1,
};

describe("DP recipe defaults", () => {
  it("DP runs default to DP-FedAvgM, clip 1, ~2 local epochs capped at 16 steps, every device, noise for 90 % of it, 10 rounds", () => {
    const r = resolveRecipe({ dp: true }, 934);
    expect(r.training.serverOptimizer).toBe("fedavgm");
    expect(r.training.serverMomentum).toBe(0.9);
    expect(r.training.localEpochs).toBe(2);
    expect(r.training.maxLocalSteps).toBe(16);
    expect(r.clip).toBe(1);
    expect(r.cohort).toBe(934);
    expect(r.minSurvivors).toBe(840);
    expect(r.rounds).toBe(10);
  });

  it("scales the server step to the clip (2 at C = 1) and keeps the non-DP defaults without noise", () => {
    expect(resolveRecipe({ dp: true, clip: 0.5 }, 100).training.serverLearningRate).toBe(dpServerLearningRate(0.5));
    expect(dpServerLearningRate(0.5)).toBe(2 * DP_TRAINING.serverLearningRate);
    const plain = resolveRecipe({ dp: false }, 51);
    expect(plain.training.serverOptimizer).toBe("fedadam");
    expect(plain.rounds).toBe(20);
    expect(plain.clip).toBe(5);
  });

  it("refuses FedAdam under DP noise, naming why, and allows it without noise", () => {
    expect(() => resolveRecipe({ dp: true, serverOptimizer: "fedadam" }, 100)).toThrow(RecipeError);
    expect(() => resolveRecipe({ dp: true, serverOptimizer: "fedadam" }, 100)).toThrow(/diverges under DP noise/);
    expect(resolveRecipe({ dp: false, serverOptimizer: "fedadam" }, 100).training.serverOptimizer).toBe("fedadam");
    expect(dpSpecProblems({ noiseMultiplier: 0.8, serverOptimizer: "fedadam" })).toHaveLength(1);
    expect(dpSpecProblems({ noiseMultiplier: 0, serverOptimizer: "fedadam" })).toHaveLength(0);
    expect(dpSpecProblems({ noiseMultiplier: 0.8, serverOptimizer: "fedavgm" })).toHaveLength(0);
  });

  it("gives non-DP runs from a pretrained model the gentle local work (lr 0.1, 2 epochs), keeping their server optimizer", () => {
    const r = resolveRecipe({ dp: false, pretrained: true }, 51);
    expect(r.training.clientLearningRate).toBe(DP_TRAINING.clientLearningRate);
    expect(r.training.localEpochs).toBe(2);
    expect(r.training.serverOptimizer).toBe("fedadam");
    expect(resolveRecipe({ dp: false }, 51).training.clientLearningRate).toBe(0.5);
  });

  it("a centralized baseline from a pretrained model continues as it was pretrained; from scratch it keeps its SGD defaults", () => {
    // SGD at lr 0.5 turned the pretrained tied model's weights to NaN within one epoch on devactions-large.
    expect(resolveRecipe({ dp: false, pretrained: true }, 934).centralized).toEqual({ batchSize: DEFAULT_PRETRAIN.batchSize, learningRate: DEFAULT_PRETRAIN.learningRate, optimizer: "adam" });
    expect(resolveRecipe({ dp: false }, 51).centralized).toEqual({ batchSize: 32, learningRate: 0.5, optimizer: "sgd" });
  });

  it("plain runs use the dense model with the copy path; DP and pretrained runs the tied one with it", () => {
    expect(resolveRecipe({ dp: false }, 51).model).toEqual(DENSE_COPY_MODEL_SPEC);
    expect(DENSE_COPY_MODEL_SPEC).toEqual({ ...DENSE_MODEL_SPEC, copy: true });
    expect(resolveRecipe({ dp: true }, 51).model).toEqual(TIED_COPY_MODEL_SPEC);
    expect(resolveRecipe({ dp: false, pretrained: true }, 51).model).toEqual(TIED_COPY_MODEL_SPEC);
    expect(TIED_COPY_MODEL_SPEC).toEqual({ ...DEFAULT_MODEL_SPEC, embedDim: 28, copy: true });
    // Under 2^16 parameters, so the DP encoding's power-of-two padding stays at 65,536 coordinates.
    expect(parameterCount(TIED_COPY_MODEL_SPEC)).toBe(62_174);
    expect(paddedDimension(parameterCount(TIED_COPY_MODEL_SPEC))).toBe(65_536);
    expect(DEFAULT_MODEL_SPEC.output).toBe("tied");
  });

  it("takes the step cap per round from the caller, else the recipe's", () => {
    expect(resolveRecipe({ dp: false, maxLocalSteps: 64 }, 10).training.maxLocalSteps).toBe(64);
    expect(resolveRecipe({ dp: true, maxLocalSteps: 8 }, 10).training.maxLocalSteps).toBe(8);
    expect(resolveRecipe({ dp: false }, 10).training.maxLocalSteps).toBe(32);
    expect(resolveRecipe({ dp: false }, 10).training.localEpochs).toBe(2);
  });

  it("decays the server rate on a cosine without noise, keeps it constant with noise, and takes the caller's", () => {
    expect(resolveRecipe({ dp: false }, 51).training.serverLearningRateSchedule).toBe("cosine");
    expect(resolveRecipe({ dp: true }, 51).training.serverLearningRateSchedule).toBe("constant");
    expect(resolveRecipe({ dp: false, serverLearningRateSchedule: "constant" }, 51).training.serverLearningRateSchedule).toBe("constant");
    expect(resolveRecipe({ dp: true, serverLearningRateSchedule: "cosine" }, 51).training.serverLearningRateSchedule).toBe("cosine");
  });

  it("refuses more required survivors than the cohort", () => {
    expect(() => resolveRecipe({ dp: true, cohort: 10, minSurvivors: 11 }, 100)).toThrow(/exceeds the cohort/);
  });
});

describe("run spec initialModel", () => {
  it("accepts a public, hash-pinned checkpoint and refuses anything else", () => {
    const initialModel = { checkpoint: "/x/cp", sha256: "a".repeat(64), source: "public", dataset: "data/devactions" };
    expect(parseRunSpec({ ...baseSpec, initialModel }).initialModel?.sha256).toBe("a".repeat(64));
    expect(parseRunSpec(baseSpec).initialModel).toBeUndefined();
    expect(() => parseRunSpec({ ...baseSpec, initialModel: { ...initialModel, source: "private" } })).toThrow(RunSpecError);
    expect(() => parseRunSpec({ ...baseSpec, initialModel: { ...initialModel, sha256: "xyz" } })).toThrow(/initialModel.sha256/);
    expect(() => parseRunSpec({ ...baseSpec, initialModel: { ...initialModel, extra: 1 } })).toThrow(RunSpecError);
  });
});

describe("simulate --pretrain", () => {
  it("refuses to pretrain on the federation's own files or on the eval files", async () => {
    await expect(prepareInitialModel({ pretrain: "data/devactions", dataset: "./data/devactions", seed: 1 }, DEFAULT_MODEL_SPEC)).rejects.toThrow(InitialModelSetupError);
    await expect(prepareInitialModel({ pretrain: "data/devactions", dataset: "other", evalDir: "data/devactions/", seed: 1 }, DEFAULT_MODEL_SPEC)).rejects.toThrow(/--eval-dir/);
    const random = await prepareInitialModel({ dataset: "data/devactions", seed: 1 }, DEFAULT_MODEL_SPEC);
    expect(random.info.source).toBe("random");
    expect(random.ref).toBeUndefined();
  });
});
