/**
 * The released mixture as an export (shared/model/export-release.ts, exported-model.ts): what
 * may be mixed in, and every way a mixture export on disk can be wrong, each refused by name.
 */
import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_MODEL_SPEC, exportModel, exportReleasedMixture, ExportedModelError, initialWeights, readExportedModel, ReleaseMixError, weightsHash, type ModelSpec } from "../shared/model/index.ts";
import type { ModelRelease } from "../shared/ledger/model-releases.ts";

const SPEC: ModelSpec = { ...DEFAULT_MODEL_SPEC, vocabBuckets: 32, embedDim: 4, hidden: 8 };
const root = mkdtempSync(join(tmpdir(), "tacit-mix-export-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const federatedWeights = initialWeights(SPEC, 2);
const publicWeights = initialWeights(SPEC, 1);
const release = (round: number, weights: Float32Array, runId = "run-a", isPublic = true): ModelRelease => ({ runId, round, modelHash: weightsHash(weights), seq: round + 10, spec: SPEC, ...(round < 0 ? { public: isPublic } : {}) });
const checkpoint = (weights: Float32Array) => ({ spec: SPEC, weights, path: "(memory)" });
const source = { kind: "simulation" as const, runId: "run-a", round: 0, ledgerSeq: 3 };

describe("exportReleasedMixture", () => {
  it("writes the public model beside the federated one, and reads back as the same mixture", async () => {
    const dir = join(root, "ok");
    const r = await exportReleasedMixture(dir, { release: release(4, federatedWeights), checkpoint: checkpoint(federatedWeights) }, { release: release(-1, publicWeights), checkpoint: checkpoint(publicWeights) }, 0.75, "simulation");
    expect(r).toEqual({ modelHash: weightsHash(federatedWeights), publicModelHash: weightsHash(publicWeights) });
    const back = readExportedModel(dir);
    expect(back.mixture?.federatedWeight).toBe(0.75);
    expect(Array.from(back.mixture!.publicModel.weights)).toEqual(Array.from(publicWeights));
    expect(back.mixture!.publicModel.mixture).toBeUndefined();
  });

  it("mixes in only the same run's initial model, at a weight in (0, 1]", async () => {
    const fed = { release: release(4, federatedWeights), checkpoint: checkpoint(federatedWeights) };
    await expect(exportReleasedMixture(join(root, "r2"), fed, { release: release(2, publicWeights), checkpoint: checkpoint(publicWeights) }, 0.5, "simulation")).rejects.toThrow(new ExportedModelError("the mixture's public model must be the initial model of run run-a, not round 2 of run run-a"));
    await expect(exportReleasedMixture(join(root, "other"), fed, { release: release(-1, publicWeights, "run-b"), checkpoint: checkpoint(publicWeights) }, 0.5, "simulation")).rejects.toThrow(new ExportedModelError("the mixture's public model must be the initial model of run run-a, not that of run run-b"));
    await expect(exportReleasedMixture(join(root, "random"), fed, { release: release(-1, publicWeights, "run-a", false), checkpoint: checkpoint(publicWeights) }, 0.5, "simulation")).rejects.toThrow(new ExportedModelError("run run-a started from a random initialisation, not a public pretrained model: there is no public model to mix with"));
    await expect(exportReleasedMixture(join(root, "w"), fed, { release: release(-1, publicWeights), checkpoint: checkpoint(publicWeights) }, 0, "simulation")).rejects.toThrow(ReleaseMixError);
    // A public checkpoint that is not what the ledger pinned is refused before anything is written.
    await expect(exportReleasedMixture(join(root, "h"), fed, { release: release(-1, publicWeights), checkpoint: checkpoint(initialWeights(SPEC, 9)) }, 0.5, "simulation")).rejects.toThrow(/hash mismatch: .* as the initial model of run run-a/);
  });
});

describe("readExportedModel: a mixture export on disk", () => {
  const mixtureOf = async (name: string, publicSpec: ModelSpec, publicW: Float32Array, nested = false): Promise<string> => {
    const dir = join(root, name);
    await exportModel(join(dir, "public"), publicSpec, publicW, source, nested ? { federatedWeight: 0.5, publicModel: "public", publicModelHash: weightsHash(publicW) } : undefined);
    await exportModel(dir, SPEC, federatedWeights, source, { federatedWeight: 0.5, publicModel: "public", publicModelHash: weightsHash(publicW) });
    return dir;
  };

  it("refuses a public half of another spec", async () => {
    const other: ModelSpec = { ...SPEC, hidden: 6 };
    const dir = await mixtureOf("spec", other, initialWeights(other, 1));
    expect(() => readExportedModel(dir)).toThrow(new ExportedModelError(`${join(dir, "public")}: the public model's spec differs from the federated model's; they cannot be mixed`));
  });

  it("refuses a public half that is itself a mixture, before following it any deeper", async () => {
    // Its own public/ does not even exist: the refusal comes from the description alone.
    const dir = await mixtureOf("nested", SPEC, publicWeights, true);
    expect(() => readExportedModel(dir)).toThrow(new ExportedModelError(`${join(dir, "public")}: the public model of a mixture must be a plain model, not a mixture itself`));
  });

  it("refuses a mixture description it cannot honour: a weight outside (0, 1], another directory, a malformed hash", async () => {
    const dir = await mixtureOf("desc", SPEC, publicWeights);
    expect(readExportedModel(dir).mixture?.federatedWeight).toBe(0.5);
    const original = readFileSync(join(dir, "tacit-model.json"), "utf8");
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ federatedWeight: 0 }, /release\.federatedWeight: Number must be greater than 0/],
      [{ federatedWeight: 1.5 }, /release\.federatedWeight: Number must be less than or equal to 1/],
      [{ publicModel: "../elsewhere" }, /release\.publicModel: Invalid literal value/],
      [{ publicModelHash: "abc" }, /release\.publicModelHash: must be 64 hex digits/],
    ];
    for (const [change, re] of cases) {
      const desc = JSON.parse(original);
      Object.assign(desc.release, change);
      writeFileSync(join(dir, "tacit-model.json"), JSON.stringify(desc));
      expect(() => readExportedModel(dir), JSON.stringify(change)).toThrow(re);
    }
  });
});
