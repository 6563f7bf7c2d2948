/**
 * `tacit verify` checks the model a run started from (issue #13): the launch entry's
 * initialModelHash must be the spec's pinned `initialModel.sha256`, every attempt of round 0 must
 * train from it, and with `--initial-model CKPT` the reviewer's own copy of the public checkpoint
 * must be what some run started from.
 */
import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sign } from "node:crypto";
import { generateEd25519 } from "../shared/crypto/index.ts";
import { LedgerWriter, verifyLedger } from "../shared/ledger/index.ts";
import { initialWeights, saveCheckpoint } from "../shared/model/index.ts";
import type { RunSpec } from "../shared/run/index.ts";
import { runVerify } from "../cli/commands/verify.ts";
import { TINY_MODEL, tinyRunSpec } from "./support/cluster.ts";

const X = "aa".repeat(32);
const Y = "bb".repeat(32);
const Z = "cc".repeat(32);

/** A ledger with one run: its launch records `recorded`, its round-0 attempts start from `before`. */
function ledger(o: { pinned?: string; recorded?: unknown; before: string[] }): string {
  const dir = mkdtempSync(join(tmpdir(), "tacit-initial-"));
  const key = generateEd25519();
  const ml = generateEd25519();
  const w = LedgerWriter.open(join(dir, "l.jsonl"), key.privateKey);
  w.append("genesis", { coordinatorPublicKey: Buffer.from(key.publicRaw).toString("base64") });
  const spec: RunSpec = tinyRunSpec(o.pinned ? { initialModel: { checkpoint: "/cp", sha256: o.pinned, source: "public", dataset: "data/devactions" } } : {});
  const body = JSON.stringify(spec);
  w.append("run-launch", { runId: "r", spec, request: { body, publicKey: Buffer.from(ml.publicRaw).toString("base64"), signature: Buffer.from(sign(null, Buffer.from(body), ml.privateKey)).toString("base64") }, ...(o.recorded !== undefined ? { initialModelHash: o.recorded } : {}) });
  o.before.forEach((h, attempt) => w.append("round", { runId: "r", round: 0, attempt, status: "aborted", modelHashBefore: h, modelHashAfter: h, cohort: [], survivors: [] }));
  return readFileSync(join(dir, "l.jsonl"), "utf8");
}

const codes = (text: string): string[] => verifyLedger(text).violations.filter((v) => v.code === "INITIAL_MODEL").map((v) => v.message);

describe("verify: the run's initial model", () => {
  it("holds when the launch installed the pinned model and round 0 trained from it", () => {
    expect(codes(ledger({ pinned: X, recorded: X, before: [X, X] }))).toEqual([]);
    // No pinned model: round 0 must still start from what the launch recorded.
    expect(codes(ledger({ recorded: Z, before: [Z] }))).toEqual([]);
  });
  it("flags a launch that installed another model than the spec pins, or recorded none", () => {
    expect(codes(ledger({ pinned: X, recorded: Y, before: [Y] }))).toEqual([expect.stringMatching(/started from model b+, but the spec pins initial model a+/)]);
    expect(codes(ledger({ pinned: X, before: [X] }))).toEqual([expect.stringMatching(/records no initial model hash/)]);
    expect(codes(ledger({ pinned: X, recorded: "not-a-hash", before: [] }))).toEqual([expect.stringMatching(/is not a SHA-256/)]);
  });
  it("flags a round-0 attempt that trained from another model than the launch recorded", () => {
    expect(codes(ledger({ pinned: X, recorded: X, before: [X, Y] }))).toEqual([expect.stringMatching(/round 0 attempt 1: trained from model b+, not the initial model a+/)]);
    expect(codes(ledger({ recorded: Z, before: [Y] }))).toHaveLength(1);
  });
});

describe("tacit verify --initial-model", () => {
  it("accepts the checkpoint a run started from and names one no run used", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tacit-initial-cli-"));
    const sha = await saveCheckpoint(join(dir, "cp"), TINY_MODEL, initialWeights(TINY_MODEL, 5), { source: "public" });
    await saveCheckpoint(join(dir, "other"), TINY_MODEL, initialWeights(TINY_MODEL, 6), { source: "public" });
    const file = join(dir, "l.jsonl");
    writeFileSync(file, ledger({ pinned: sha, recorded: sha, before: [sha] }));
    const good = await runVerify({ ledger: file, delta: "1e-6", initialModel: join(dir, "cp") });
    expect(good.stdout).not.toMatch(/INITIAL_MODEL/);
    const bad = await runVerify({ ledger: file, delta: "1e-6", initialModel: join(dir, "other") });
    expect(bad.exitCode).toBe(1);
    expect(bad.stdout).toMatch(/INITIAL_MODEL_FILE: no run in the ledger started from .*other/);
    const missing = await runVerify({ ledger: file, delta: "1e-6", initialModel: join(dir, "nope") });
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/--initial-model/);
  });
});
