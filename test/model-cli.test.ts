/**
 * The ML team's export loop through the real CLI, on one real federated simulation with DP
 * noise (3 devices, 2 rounds): `simulate --out` writes the final model, `model export` writes
 * any released round from the coordinator's state dir, `verify --model` finds it in the ledger
 * with its ε at release, `model predict` answers with the caller's tokens — and each wrong
 * input (unknown run or round, a checkpoint the ledger did not release, an altered export, a
 * model the ledger never released) is refused by name.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runTacit } from "./support/run-tacit.ts";
import { modelReleases } from "../shared/ledger/model-releases.ts";
import { readDevactionsDir } from "../shared/data/index.ts";
import {
  buildExamples, concatExamples, contextIds, exportModel, initBackend, initialWeights, predictDistribution, readExportedModel, saveCheckpoint, tokenBucket, topBuckets, Trainer, DEFAULT_MODEL_SPEC, TIED_COPY_MODEL_SPEC,
} from "../shared/model/index.ts";
import { exportFromStateDir, predictFromExport } from "../cli/commands/model.ts";
import { ledgerText } from "./support/ledger-text.ts";
import { runVerify } from "../cli/commands/verify.ts";

// In-process where the CLI's own function is reachable: a spawned CLI costs seconds on a loaded machine.
const verify = (ledger: string, model: string, json = false) => runVerify({ ledger, model, delta: "1e-6", json });

describe("tacit model export / predict and verify --model (real simulation)", () => {
  let tmp: string;
  let out: string;
  let state: string;
  let runId: string;
  let vocabFile: string;
  const cli = (args: string[]) => runTacit(args);

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "tacit-model-cli-"));
    out = join(tmp, "out");
    state = join(tmp, "state");
    const r = await cli(["simulate", "--dataset", "data/devactions", "--clients", "3", "--rounds", "2", "--noise-multiplier", "1", "--out", out, "--state-dir", state]);
    expect(r.status, r.stderr).toBe(0);
    runId = readdirSync(join(state, "store", "checkpoints"))[0]!;
    // The caller's vocabulary: every token of the dataset, most frequent first.
    const counts = new Map<string, number>();
    for (const u of readdirSync("data/devactions").filter((f) => f.endsWith(".tsv"))) {
      for (const line of readFileSync(join("data/devactions", u), "utf8").split("\n")) {
        const tok = line.split("\t")[1];
        if (tok) counts.set(tok, (counts.get(tok) ?? 0) + 1);
      }
    }
    vocabFile = join(tmp, "vocab.txt");
    writeFileSync(vocabFile, [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([t]) => t).join("\n") + "\n");
  }, 300_000);
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it("simulate --out writes the final model as the ledger released it, and model export writes the same from the state dir", async () => {
    const ledger = readFileSync(join(out, "ledger.jsonl"), "utf8");
    const rounds = modelReleases(ledger).filter((r) => r.round >= 0);
    expect(rounds.map((r) => r.round)).toEqual([0, 1]);
    const sim = JSON.parse(readFileSync(join(out, "model", "tacit-model.json"), "utf8"));
    expect(sim).toMatchObject({ format: "tacit-model-export-v1", model: TIED_COPY_MODEL_SPEC, modelHash: rounds[1]!.modelHash, window: 8, sessionGapSeconds: 1800, source: { kind: "simulation", runId, round: 1, ledgerSeq: rounds[1]!.seq } });

    const r = await cli(["model", "export", "--run", runId, "--out", join(tmp, "last"), "--state-dir", state, "--json"]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ runId, round: 1, modelHash: rounds[1]!.modelHash });
    expect(readFileSync(join(tmp, "last", "weights.bin")).equals(readFileSync(join(out, "model", "weights.bin")))).toBe(true);

    const r0 = await exportFromStateDir({ run: runId, round: "0", out: join(tmp, "r0"), stateDir: state });
    expect(r0).toMatchObject({ round: 0, modelHash: rounds[0]!.modelHash, ledgerSeq: rounds[0]!.seq });
    expect(readExportedModel(join(tmp, "r0")).modelHash).toBe(rounds[0]!.modelHash);

    // A released mixture needs the run's public initial model; this run started from random weights.
    await expect(exportFromStateDir({ run: runId, out: join(tmp, "mix"), stateDir: state, releaseMix: "0.5" })).rejects.toThrow(`--release-mix: run ${runId} started from a random initialisation; there is no public model to mix with`);
    await expect(exportFromStateDir({ run: runId, out: join(tmp, "mix"), stateDir: state, releaseMix: "2" })).rejects.toThrow("--release-mix must be at most 1, got 2");
    expect(existsSync(join(tmp, "mix"))).toBe(false);
    // Built by hand with this run's random initial model as the "public" half: verify does not call it released.
    const initial = await exportFromStateDir({ run: runId, round: "-1", out: join(tmp, "hand", "public"), stateDir: state });
    const last = readExportedModel(join(tmp, "last"));
    await exportModel(join(tmp, "hand"), last.spec, last.weights, { kind: "simulation", runId, round: 1, ledgerSeq: rounds[1]!.seq }, { federatedWeight: 0.5, publicModel: "public", publicModelHash: initial.modelHash });
    expect(readExportedModel(join(tmp, "hand")).mixture?.publicModel.modelHash).toBe(initial.modelHash);
    const v = await verify(join(out, "ledger.jsonl"), join(tmp, "hand"));
    expect(v.exitCode).toBe(1);
    expect(v.stdout).toMatch(/NOT RELEASED — .* or its public half \(hash [0-9a-f]{64}\) is not the initial model of the run that released it/);
    // Weight 1 is the federated model alone: a plain export.
    await exportFromStateDir({ run: runId, out: join(tmp, "w1"), stateDir: state, releaseMix: "1" });
    expect(readExportedModel(join(tmp, "w1")).mixture).toBeUndefined();
    expect(existsSync(join(tmp, "w1", "public"))).toBe(false);
  });

  it("verify --model names the release and its ε, which grows from round 0 to round 1", async () => {
    const v1 = await verify(join(out, "ledger.jsonl"), join(out, "model"), true);
    expect(v1.exitCode, v1.stderr).toBe(0);
    const f1 = JSON.parse(v1.stdout);
    expect(f1.model.released).toBe(true);
    const rel1 = f1.model.releases[0];
    expect(rel1).toMatchObject({ runId, round: 1 });
    const figures = f1.runs[0].rounds.filter((x: { status: string }) => x.status === "completed");
    expect(rel1.worstDeviceEpsilon).toBe(figures[1].worstDeviceEpsilon);
    expect(Number.isFinite(rel1.worstDeviceEpsilon)).toBe(true);

    const v0 = await verify(join(out, "ledger.jsonl"), join(tmp, "r0"));
    expect(v0.exitCode, v0.stderr).toBe(0);
    const m = /RELEASED after round 0 of run \S+ \(ledger entry \d+, hash [0-9a-f]{64}\); ε at release: worst device ([\d.]+) at δ = 0.000001/.exec(v0.stdout);
    expect(m, v0.stdout).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0);
    expect(Number(m![1])).toBeLessThan(rel1.worstDeviceEpsilon);
    process.stdout.write(`ε at release: round 0 ${m![1]}, round 1 ${rel1.worstDeviceEpsilon.toFixed(3)} (δ = 1e-6)\n`);
  });

  it("verify --model refuses an altered export and a directory that is not an export (exit 2)", async () => {
    const altered = join(tmp, "altered");
    cpSync(join(out, "model"), altered, { recursive: true });
    const w = readFileSync(join(altered, "weights.bin"));
    // The last value of output/bias: a change the tied-kernel and copy-table checks cannot see, only the hash.
    const manifest = JSON.parse(readFileSync(join(altered, "model.json"), "utf8")).weightsManifest[0].weights as { name: string; shape: number[] }[];
    let end = 0;
    for (const entry of manifest) {
      end += 4 * entry.shape.reduce((a, b) => a * b, 1);
      if (entry.name === "output/bias") break;
    }
    expect(manifest.some((e) => e.name === "output/bias")).toBe(true);
    w.writeFloatLE(w.readFloatLE(end - 4) + 1, end - 4);
    writeFileSync(join(altered, "weights.bin"), w);
    const bad = await verify(join(out, "ledger.jsonl"), altered);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/--model: .* \(hash mismatch: the weights were changed after export\)/);

    const notExport = await verify(join(out, "ledger.jsonl"), join(state, "store", "checkpoints", runId));
    expect(notExport.exitCode).toBe(2);
    expect(notExport.stderr).toMatch(/is not a Tacit model export \(no tacit-model\.json\)/);
  });

  it("verify --model reports a model the ledger never released (exit 1)", async () => {
    // A well-formed export of a model this ledger never released.
    const other = join(tmp, "other");
    await exportModel(other, DEFAULT_MODEL_SPEC, initialWeights(DEFAULT_MODEL_SPEC, 99), { kind: "centralized-simulation", epochs: 0 });
    const nr = await verify(join(out, "ledger.jsonl"), other);
    expect(nr.exitCode).toBe(1);
    expect(nr.stdout).toMatch(/NOT RELEASED — its weights hash to [0-9a-f]{64}, which no completed round or run launch in this ledger records/);

  });

  describe("model export refuses, by name and without writing anything", () => {
    const x = () => join(tmp, "x");
    /** A state dir holding only the ledger (edited by `edit`) and, optionally, the checkpoints. */
    const stateWith = (name: string, o: { checkpoints: boolean; edit?: (lines: string[]) => string[] }): string => {
      const d = join(tmp, name);
      const lines = ledgerText(state).trim().split("\n");
      // The store: its checkpoints and round decisions when asked for, and the (edited) ledger as one segment.
      if (o.checkpoints) cpSync(join(state, "store"), join(d, "store"), { recursive: true, filter: (src) => !src.includes(`${join(state, "store", "ledger")}`) });
      mkdirSync(join(d, "store", "ledger"), { recursive: true });
      writeFileSync(join(d, "store", "ledger", "000000000000.jsonl"), (o.edit ? o.edit(lines) : lines).join("\n") + "\n");
      return d;
    };

    it("an unknown run", async () => {
      await expect(exportFromStateDir({ run: "run-nope", out: x(), stateDir: state })).rejects.toThrow(new RegExp(`^run run-nope is not in the ledger \\(runs: ${runId}\\)`));
    });
    it("a round the ledger does not record as completed", async () => {
      await expect(exportFromStateDir({ run: runId, round: "5", out: x(), stateDir: state })).rejects.toThrow(/^round 5 of run \S+ was not released \(completed rounds in the ledger: 0, 1\)/);
    });
    it("a run with no completed round yet", async () => {
      const d = stateWith("no-rounds", { checkpoints: true, edit: (ls) => ls.filter((l) => JSON.parse(l).type !== "round") });
      await expect(exportFromStateDir({ run: runId, out: x(), stateDir: d })).rejects.toThrow(/^run \S+ has no completed round yet: nothing trained to export/);
    });
    it("a directory that is not a coordinator's state dir", async () => {
      await expect(exportFromStateDir({ run: runId, out: x(), stateDir: join(tmp, "nowhere") })).rejects.toThrow(/no ledger in .*nowhere.*: is --state-dir .* the coordinator's state directory\?/);
    });
    it("a released round whose checkpoint is missing", async () => {
      const d = stateWith("no-checkpoints", { checkpoints: false });
      await expect(exportFromStateDir({ run: runId, out: x(), stateDir: d })).rejects.toThrow(/^no checkpoint for round 1 of run \S+ in /);
    });
    it("a run whose spec in the ledger is not a model spec", async () => {
      const d = stateWith("bad-spec", {
        checkpoints: true,
        edit: (ls) => ls.map((l) => {
          const e = JSON.parse(l);
          if (e.type === "run-launch") e.body.spec.model.window = 0;
          return JSON.stringify(e);
        }),
      });
      await expect(exportFromStateDir({ run: runId, out: x(), stateDir: d })).rejects.toThrow(/invalid model spec: window: Number must be greater than or equal to 1/);
    });
    it("a checkpoint consistent in itself that is not the model the ledger released (hash mismatch)", async () => {
      const d = stateWith("swapped", { checkpoints: true });
      // The committed attempt's checkpoint (round-00001-a<attempt>, as the commit record names it) replaced.
      const runDir = join(d, "store", "checkpoints", runId);
      const committed = join(runDir, readdirSync(runDir).find((n) => n.startsWith("round-00001"))!);
      rmSync(committed, { recursive: true });
      await saveCheckpoint(committed, DEFAULT_MODEL_SPEC, initialWeights(DEFAULT_MODEL_SPEC, 5), { runId, round: 1 });
      await expect(exportFromStateDir({ run: runId, out: x(), stateDir: d })).rejects.toThrow(/^hash mismatch: the checkpoint .*round-00001(-a\d+)? hashes to [0-9a-f]{64}, but the ledger released [0-9a-f]{64} as the model after round 1/);
      expect(existsSync(join(x(), "tacit-model.json"))).toBe(false);
    });
  });

  it("model predict prints the top-K next actions as the caller's tokens (JSON and text), buckets without a vocabulary", async () => {
    // A model really trained on the same users' actions (the DP simulation's is mostly noise).
    await initBackend();
    const users = (await readDevactionsDir("data/devactions")).slice(0, 3);
    const t = new Trainer(DEFAULT_MODEL_SPEC);
    t.setWeights(initialWeights(DEFAULT_MODEL_SPEC, 1));
    await t.train(concatExamples(users.map((u) => buildExamples(u, DEFAULT_MODEL_SPEC)), DEFAULT_MODEL_SPEC.window), { epochs: 4, batchSize: 32, learningRate: 0.01, optimizer: "adam", seed: 1 });
    const trained = join(tmp, "trained");
    await exportModel(trained, DEFAULT_MODEL_SPEC, t.getWeights(), { kind: "centralized-simulation", epochs: 4 });
    t.dispose();

    const context = "commit:fix M:vite:packages/vite:ts";
    const r = await cli(["model", "predict", "--model", trained, "--context", context, "--top", "4", "--vocab", vocabFile, "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const { predictions } = JSON.parse(r.stdout) as { predictions: ({ token: string; p: number } | { bucket: number; p: number })[] };
    expect(predictions).toHaveLength(4);
    // The same figures as the model itself gives, each token in its predicted bucket.
    const m = readExportedModel(trained);
    const expected = topBuckets(predictDistribution(m.spec, m.weights, contextIds(context.split(" "), m.spec)), 4);
    predictions.forEach((p, i) => {
      expect(p.p).toBeCloseTo(expected[i]!.p, 12);
      expect("token" in p && tokenBucket(p.token, m.spec)).toBe(expected[i]!.bucket);
    });
    expect(predictions[0]!.p).toBeGreaterThanOrEqual(predictions[3]!.p);
    process.stdout.write(`predict after "${context}": ${JSON.stringify(predictions)}\n`);

    const text = await cli(["model", "predict", "--model", trained, "--context", context, "--top", "2", "--vocab", vocabFile]);
    expect(text.stdout).toMatch(/^next actions after "commit:fix M:vite:packages\/vite:ts" \(model [0-9a-f]{12}\):\n {3}1\. \S+ {2}\d+\.\d%\n {3}2\. /);

    const buckets = predictFromExport({ model: trained, context, top: "5" });
    for (const p of buckets.predictions) expect(Object.keys(p).sort()).toEqual(["bucket", "p"]);
  });

  describe("model predict refuses, by name", () => {
    const model = () => join(out, "model");
    it("a directory that is not an export", () => {
      expect(() => predictFromExport({ model: state, context: "a", top: "5" })).toThrow(/is not a Tacit model export \(no tacit-model\.json\)/);
    });
    it("an unreadable vocabulary", () => {
      expect(() => predictFromExport({ model: model(), context: "a", top: "5", vocab: join(tmp, "missing.txt") })).toThrow(/cannot read --vocab/);
    });
    it("two vocabularies at once", () => {
      expect(() => predictFromExport({ model: model(), context: "a", top: "5", vocab: vocabFile, clientStateDir: tmp })).toThrow(/give either --vocab or --client-state-dir, not both/);
    });
    it("a laptop state dir without an action store", () => {
      expect(() => predictFromExport({ model: model(), context: "a", top: "5", clientStateDir: tmp })).toThrow(/--client-state-dir .* has no action store/);
    });
  });
});
