/**
 * The released mixture of the public and the federated model (shared/model/release-mix.ts): the
 * pure mixing, its refusals, the evaluation that scores it (simulation/evaluation.ts), the recipe's
 * default, and a real simulation over gRPC that releases one.
 */
import { afterAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readDevactionsDir } from "../shared/data/index.ts";
import { buildExamples, contextIds, DEFAULT_MODEL_SPEC, initBackend, initialWeights, localCounts, mixWithAnchor, predictDistribution, readExportedModel, ReleaseMixError, topBuckets, Trainer, validateFederatedWeight, type ModelSpec } from "../shared/model/index.ts";
import { exportFromStateDir, predictFromExport } from "../cli/commands/model.ts";
import { runVerify } from "../cli/commands/verify.ts";
import { AnchorDistributions, evaluateModel, rankOf, type EvalSet } from "../simulation/evaluation.ts";
import { DP_RELEASE_MIX, RecipeError, resolveRecipe } from "../simulation/recipe.ts";
import { runSimulation } from "../simulation/simulate.ts";

const distribution = (n: number) =>
  fc.array(fc.double({ min: 0.001, max: 1, noNaN: true }), { minLength: n, maxLength: n }).map((xs) => {
    const s = xs.reduce((a, b) => a + b, 0);
    return Float64Array.from(xs, (x) => x / s);
  });

describe("mixWithAnchor", () => {
  it("is (1 − w)·anchor + w·model, coordinate by coordinate, and stays a distribution", () => {
    fc.assert(
      fc.property(distribution(7), distribution(7), fc.double({ min: 0.01, max: 1, noNaN: true }), (model, anchor, w) => {
        const expected = Array.from(model, (p, v) => (1 - w) * anchor[v]! + w * p);
        const out = mixWithAnchor(Float64Array.from(model), anchor, w);
        out.forEach((p, v) => expect(p).toBeCloseTo(expected[v]!, 12));
        expect(out.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
      }),
    );
  });

  it("at w = 1 leaves the federated model's distribution exactly as it was", () => {
    const p = Float64Array.of(0.5, 0.3, 0.2);
    expect(Array.from(mixWithAnchor(Float64Array.from(p), [0.1, 0.1, 0.8], 1))).toEqual(Array.from(p));
  });

  it("refuses an anchor over a different number of outputs", () => {
    expect(() => mixWithAnchor(new Float64Array(3), new Float64Array(4), 0.5)).toThrow(new ReleaseMixError("the public model's distribution has 4 outputs, the federated model's 3"));
  });

  it("refuses a federated weight outside (0, 1]", () => {
    for (const w of [0, -0.1, 1.0001, Number.NaN, Infinity]) expect(() => validateFederatedWeight(w), String(w)).toThrow(ReleaseMixError);
    expect(() => validateFederatedWeight(0)).toThrow(/must be in \(0, 1\], got 0/);
    expect(validateFederatedWeight(1)).toBe(1);
    expect(validateFederatedWeight(1e-6)).toBe(1e-6);
  });
});

describe("evaluateModel with a released mixture", () => {
  const SPEC: ModelSpec = { ...DEFAULT_MODEL_SPEC, vocabBuckets: 64, embedDim: 8, hidden: 16 };

  async function setup(): Promise<{ trainer: Trainer; sets: EvalSet[]; publicWeights: Float32Array; federated: Float32Array }> {
    await initBackend();
    const users = (await readDevactionsDir("data/devactions")).slice(0, 3);
    const sets = users.map((u) => {
      const cut = Math.floor(u.events.length * 0.8);
      const train = { ...u, events: u.events.slice(0, cut) };
      const held = { ...u, events: u.events.slice(cut) };
      const trainEx = buildExamples(train, SPEC);
      return { userId: u.userId, examples: buildExamples(held, SPEC, { contextFrom: train }), local: localCounts(trainEx, SPEC.window) };
    });
    return { trainer: new Trainer(SPEC), sets, publicWeights: initialWeights(SPEC, 1), federated: initialWeights(SPEC, 2) };
  }

  it("scores (1 − w)·public + w·federated, reports the federated model alone beside it, and personalizes the mixture", async () => {
    const { trainer, sets, publicWeights, federated } = await setup();
    const anchor = new AnchorDistributions(trainer.outputs);
    const publicOnly = evaluateModel(trainer, publicWeights, sets, undefined, { record: anchor });
    const alone = evaluateModel(trainer, federated, sets);
    const w = 0.3;
    const mixed = evaluateModel(trainer, federated, sets, undefined, { mix: { anchor, federatedWeight: w } });
    expect(mixed.evalFederatedOnly).toEqual(alone.eval);
    expect(alone.evalFederatedOnly).toBeUndefined();
    expect(publicOnly.evalFederatedOnly).toBeUndefined();

    // The same figure by hand: both models' distributions, mixed, ranked.
    const publicProbs: Float64Array[][] = sets.map(() => []);
    trainer.setWeights(publicWeights);
    sets.forEach((s, i) => trainer.forEachDistribution(s.examples, (row, p) => void (publicProbs[i]![row] = Float64Array.from(p))));
    trainer.setWeights(federated);
    let hits = 0;
    let events = 0;
    let loss = 0;
    sets.forEach((s, i) =>
      trainer.forEachDistribution(s.examples, (row, p) => {
        const m = Array.from(p, (q, v) => (1 - w) * publicProbs[i]![row]![v]! + w * q);
        if (rankOf(m, s.examples.y[row]!) < 3) hits += 1;
        loss += -Math.log(m[s.examples.y[row]!]!);
        events += 1;
      }),
    );
    expect(mixed.eval.events).toBe(events);
    expect(mixed.eval.top3Micro).toBe(hits / events);
    expect(mixed.eval.loss).toBeCloseTo(loss / events, 5);
    // The two random models disagree, so the mixture is neither of them.
    expect(mixed.eval.loss).not.toBeCloseTo(alone.eval.loss, 3);
    expect(mixed.eval.loss).not.toBeCloseTo(publicOnly.eval.loss, 3);
    // Personalization works on the mixture: with no local counts it would equal the global figure.
    expect(mixed.evalPersonalized.top3Micro).not.toBe(mixed.eval.top3Micro);
    const unpersonalized = evaluateModel(trainer, federated, sets.map(({ userId, examples }) => ({ userId, examples })), undefined, { mix: { anchor, federatedWeight: w } });
    expect(unpersonalized.eval).toEqual(mixed.eval);
    trainer.dispose();
  }, 60_000);

  it("refuses a mixture whose public distributions were not recorded for an eval set, and a weight outside (0, 1]", async () => {
    const { trainer, sets, federated } = await setup();
    const anchor = new AnchorDistributions(trainer.outputs);
    expect(() => evaluateModel(trainer, federated, sets, undefined, { mix: { anchor, federatedWeight: 0.5 } })).toThrow(new ReleaseMixError(`eval set ${sets[0]!.userId}: the public model's distributions were not recorded`));
    expect(() => evaluateModel(trainer, federated, sets, undefined, { mix: { anchor, federatedWeight: 1.5 } })).toThrow(/must be in \(0, 1\], got 1.5/);
    // Recorded for one slice of a user, asked for another: refused, not mixed with the wrong rows.
    const first = sets[0]!;
    evaluateModel(trainer, federated, [first], undefined, { record: anchor });
    const shorter = { ...first, examples: { ...first.examples, count: first.examples.count - 1 } };
    expect(() => evaluateModel(trainer, federated, [shorter], undefined, { mix: { anchor, federatedWeight: 0.5 } })).toThrow(new ReleaseMixError(`eval set ${first.userId}: ${first.examples.count - 1} events, the public model's distributions were recorded for ${first.examples.count}`));
    expect(evaluateModel(trainer, federated, [first], undefined, { mix: { anchor, federatedWeight: 0.5 } }).eval.events).toBe(first.examples.count);
    trainer.dispose();
  }, 60_000);
});

describe("the recipe's released mixture", () => {
  it("DP runs from a public model release the mixture at the validated weight; other runs release the federated model alone", () => {
    expect(resolveRecipe({ dp: true, pretrained: true }, 934).releaseMix).toBe(DP_RELEASE_MIX);
    expect(DP_RELEASE_MIX).toBe(0.75);
    expect(resolveRecipe({ dp: true }, 934).releaseMix).toBeUndefined();
    expect(resolveRecipe({ dp: false, pretrained: true }, 51).releaseMix).toBeUndefined();
    expect(resolveRecipe({ dp: false, pretrained: true, releaseMix: 0.4 }, 51).releaseMix).toBe(0.4);
    // 1 is the federated model alone: nothing to mix.
    expect(resolveRecipe({ dp: true, pretrained: true, releaseMix: 1 }, 934).releaseMix).toBeUndefined();
  });

  it("refuses a mixture without a public model to mix with, and a weight outside (0, 1]", () => {
    expect(() => resolveRecipe({ dp: true, releaseMix: 0.5 }, 51)).toThrow(new RecipeError("--release-mix mixes the federated model with the public initial model: it needs --pretrain"));
    expect(() => resolveRecipe({ dp: true, pretrained: true, releaseMix: 1.2 }, 51)).toThrow(ReleaseMixError);
  });
});

describe("simulate: a run that releases the mixture", () => {
  const root = mkdtempSync(join(tmpdir(), "tacit-release-mix-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("evaluates the mixture as the global model, the federated model alone beside it, and names the public model", async () => {
    // Public files and federation files are disjoint user files of the shipped dataset.
    const pub = join(root, "public");
    const fed = join(root, "federation");
    mkdirSync(pub);
    mkdirSync(fed);
    for (const u of [27, 39, 51]) copyFileSync(`data/devactions/user-${u}.tsv`, join(pub, `user-${u}.tsv`));
    for (const u of [24, 56, 11]) copyFileSync(`data/devactions/user-${u}.tsv`, join(fed, `user-${u}.tsv`));
    process.env.TACIT_CACHE_DIR = join(root, "cache");
    const out = join(root, "out");
    const state = join(root, "state");
    const m = await runSimulation({ dataset: fed, pretrain: pub, releaseMix: 0.5, rounds: 1, out, stateDir: state, centralized: false, dropout: 0, delta: 1e-6, seed: 3, quiet: true, workers: 1 });
    delete process.env.TACIT_CACHE_DIR;
    expect(m.release).toEqual({ federatedWeight: 0.5, publicModelSha256: m.initialModel!.sha256 });
    const last = m.final!;
    expect(last.status).toBe("completed");
    expect(last.evalFederatedOnly!.events).toBe(last.eval.events);
    // The released figure is the mixture, not the federated model and not the public one.
    expect(last.eval.loss).not.toBeCloseTo(last.evalFederatedOnly!.loss, 4);
    expect(last.eval.loss).not.toBeCloseTo(m.publicOnly!.loss, 4);
    // A mixture's loss is at most the mean of its parts' losses (the log is concave).
    expect(last.eval.loss).toBeLessThanOrEqual(0.5 * (last.evalFederatedOnly!.loss + m.publicOnly!.loss) + 1e-9);

    // What was evaluated is what is exported: the final model with the run's public model beside it.
    const exported = readExportedModel(join(out, "model"));
    expect(exported.mixture?.federatedWeight).toBe(0.5);
    expect(exported.mixture?.publicModel.modelHash).toBe(m.initialModel!.sha256);
    expect(exported.modelHash).not.toBe(m.initialModel!.sha256);
    // predict applies the mixture.
    const context = "git-commit save build";
    const ids = contextIds(context.split(" "), exported.spec);
    const expected = mixWithAnchor(predictDistribution(exported.spec, exported.weights, ids), predictDistribution(exported.spec, exported.mixture!.publicModel.weights, ids), 0.5);
    const predicted = predictFromExport({ model: join(out, "model"), context, top: "3" }).predictions;
    expect(predicted).toEqual(topBuckets(expected, 3));
    // …which is neither model alone.
    expect(predicted).not.toEqual(topBuckets(predictDistribution(exported.spec, exported.weights, ids), 3).map((b) => ({ ...b })));

    // The ML team's export from the coordinator's state writes the same two models.
    const runId = readdirSync(join(state, "store", "checkpoints"))[0]!;
    const again = await exportFromStateDir({ run: runId, out: join(root, "again"), stateDir: state, releaseMix: "0.5" });
    expect(again.mixture).toEqual({ federatedWeight: 0.5, publicModelHash: m.initialModel!.sha256 });
    for (const f of ["weights.bin", "public/weights.bin"]) expect(readFileSync(join(root, "again", f)).equals(readFileSync(join(out, "model", f))), f).toBe(true);

    // verify --model names the release and the public half; a public half from elsewhere is not released.
    const v = await runVerify({ ledger: join(out, "ledger.jsonl"), model: join(out, "model"), delta: "1e-6" });
    expect(v.exitCode, v.stderr).toBe(0);
    expect(v.stdout).toMatch(new RegExp(`RELEASED after round 0 of run ${runId} .*mixed at weight 0.5 with the run's public initial model \\(hash ${m.initialModel!.sha256}`));
    const forged = join(root, "forged");
    cpSync(join(out, "model"), forged, { recursive: true });
    rmSync(join(forged, "public"), { recursive: true });
    // Its own federated model as the "public" half: a valid plain export, but not the run's initial model.
    await exportFromStateDir({ run: runId, out: join(forged, "public"), stateDir: state });
    expect(() => readExportedModel(forged)).toThrow(/public model hashes to [0-9a-f]{64}, but .* mixes in [0-9a-f]{64}/);
    // Made consistent (the description names the new half): it reads, but the ledger never pinned that public model.
    const desc = JSON.parse(readFileSync(join(forged, "tacit-model.json"), "utf8"));
    desc.release.publicModelHash = readExportedModel(join(forged, "public")).modelHash;
    writeFileSync(join(forged, "tacit-model.json"), JSON.stringify(desc));
    expect(readExportedModel(forged).mixture?.publicModel.modelHash).toBe(exported.modelHash);
    const refused = await runVerify({ ledger: join(out, "ledger.jsonl"), model: forged, delta: "1e-6" });
    expect(refused.exitCode).toBe(1);
    expect(refused.stdout).toMatch(/NOT RELEASED — its weights hash to [0-9a-f]{64}, which no completed round or run launch in this ledger records, or its public half \(hash [0-9a-f]{64}\) is not the initial model of the run that released it/);
  }, 240_000);
});
