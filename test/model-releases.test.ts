/**
 * Which models a ledger released (shared/ledger/model-releases.ts), on a sealed ledger built in
 * process: each run's initial model and the model after every completed round, with the run's
 * model spec — and findRelease's refusals, each naming what the ledger does record.
 */
import { describe, expect, it } from "vitest";
import { generateEd25519 } from "../shared/crypto/index.ts";
import { sealChain } from "../shared/ledger/index.ts";
import { findRelease, ModelReleaseError, modelReleases } from "../shared/ledger/model-releases.ts";

const KEY = generateEd25519();
const SPEC_A = { vocabBuckets: 64, window: 4 };
const SPEC_B = { vocabBuckets: 128, window: 8 };
const h = (c: string): string => c.repeat(64);

function ledger(): string {
  const entries = sealChain(
    [
      { type: "run-launch", body: { runId: "run-a", spec: { model: SPEC_A, initialModel: { source: "public", sha256: h("a") } }, initialModelHash: h("a") } },
      { type: "run-launch", body: { runId: "run-b", spec: { model: SPEC_B } } },
      { type: "round", body: { runId: "run-a", round: 0, status: "completed", modelHashAfter: h("1") } },
      // An aborted attempt releases nothing, nor does a completed round without a model hash.
      { type: "round", body: { runId: "run-a", round: 1, status: "aborted", modelHashAfter: h("9") } },
      { type: "round", body: { runId: "run-b", round: 0, status: "completed" } },
      { type: "round", body: { runId: "run-b", round: 0, status: "completed", modelHashAfter: h("2") } },
      { type: "round", body: { runId: "run-a", round: 1, status: "completed", modelHashAfter: h("3") } },
      // Not a release: no run id, a non-numeric round.
      { type: "round", body: { round: 2, status: "completed", modelHashAfter: h("4") } },
      { type: "round", body: { runId: "run-a", round: "2", status: "completed", modelHashAfter: h("5") } },
      // Initial models that are not public: a seeded random initialisation, and a spec naming another hash.
      { type: "run-launch", body: { runId: "run-c", spec: { model: SPEC_A }, initialModelHash: h("c") } },
      { type: "run-launch", body: { runId: "run-d", spec: { model: SPEC_A, initialModel: { source: "public", sha256: h("e") } }, initialModelHash: h("d") } },
    ],
    undefined,
    1_700_000_000_000,
    KEY.privateKey,
  );
  return entries.map((e) => JSON.stringify(e)).join("\n") + "\n";
}

describe("modelReleases", () => {
  it("lists each run's initial model (round −1, only when its launch names one; public only when the spec pins it as public) and every completed round's model, with the run's spec", () => {
    expect(modelReleases(ledger())).toEqual([
      { runId: "run-a", round: -1, modelHash: h("a"), seq: 0, spec: SPEC_A, public: true },
      { runId: "run-a", round: 0, modelHash: h("1"), seq: 2, spec: SPEC_A },
      { runId: "run-b", round: 0, modelHash: h("2"), seq: 5, spec: SPEC_B },
      { runId: "run-a", round: 1, modelHash: h("3"), seq: 6, spec: SPEC_A },
      { runId: "run-c", round: -1, modelHash: h("c"), seq: 9, spec: SPEC_A, public: false },
      { runId: "run-d", round: -1, modelHash: h("d"), seq: 10, spec: SPEC_A, public: false },
    ]);
  });

  it("reads nothing from an empty ledger and refuses a malformed line by its number", () => {
    expect(modelReleases("")).toEqual([]);
    expect(() => modelReleases(ledger() + "{not json\n")).toThrow(/line 12: not JSON/);
  });
});

describe("findRelease", () => {
  const releases = modelReleases(ledger());

  it("returns the asked round, the initial model at −1, and the last completed round by default", () => {
    expect(findRelease(releases, "run-a", 0).modelHash).toBe(h("1"));
    expect(findRelease(releases, "run-a", -1).modelHash).toBe(h("a"));
    expect(findRelease(releases, "run-a").modelHash).toBe(h("3"));
    expect(findRelease(releases, "run-b").modelHash).toBe(h("2"));
  });

  it("refuses an unknown run, a round never released and a run with no completed round, naming what there is", () => {
    expect(() => findRelease(releases, "run-z")).toThrow(new ModelReleaseError("run run-z is not in the ledger (runs: run-a, run-b, run-c, run-d)"));
    expect(() => findRelease([], "run-z")).toThrow(new ModelReleaseError("run run-z is not in the ledger"));
    expect(() => findRelease(releases, "run-a", 2)).toThrow(new ModelReleaseError("round 2 of run run-a was not released (completed rounds in the ledger: 0, 1)"));
    expect(() => findRelease(releases, "run-b", -1)).toThrow(new ModelReleaseError("round -1 of run run-b was not released (completed rounds in the ledger: 0)"));
    const onlyInitial = releases.filter((r) => r.round < 0);
    expect(() => findRelease(onlyInitial, "run-a")).toThrow(new ModelReleaseError("run run-a has no completed round yet: nothing trained to export"));
    expect(() => findRelease(onlyInitial, "run-a", 0)).toThrow(new ModelReleaseError("round 0 of run run-a was not released (completed rounds in the ledger: none)"));
  });
});
