import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateEd25519 } from "../shared/crypto/ed25519.ts";
import { LedgerWriter, checkLocalCopy, entryHash, filterEntriesForDevice, memberView, sealEntry, type LedgerEntry } from "../shared/ledger/index.ts";

function buildLedger(): LedgerEntry[] {
  const key = generateEd25519();
  const path = join(mkdtempSync(join(tmpdir(), "tacit-local-")), "ledger.jsonl");
  const w = LedgerWriter.open(path, key.privateKey);
  w.append("genesis", { coordinatorPublicKey: "k" });
  for (let r = 0; r < 3; r++) {
    w.append("round", { runId: "run-1", round: r, cohort: ["d0", "d1", r === 2 ? "d3" : "d2"], survivors: ["d0", "d1"] });
    w.append("attestation", { deviceId: "d0", runId: "run-1", round: r });
    w.append("attestation", { deviceId: "d1", runId: "run-1", round: r });
  }
  return readFileSync(path, "utf8").trim().split("\n").map((l) => JSON.parse(l) as LedgerEntry);
}

describe("device local copy of the ledger", () => {
  it("keeps exactly the rounds a device was sampled into and its own attestations", () => {
    const entries = buildLedger();
    expect(filterEntriesForDevice(entries, "d0").map((e) => e.seq)).toEqual([1, 2, 4, 5, 7, 8]);
    expect(filterEntriesForDevice(entries, "d2").map((e) => e.seq)).toEqual([1, 4]);
    expect(filterEntriesForDevice(entries, "d3").map((e) => e.seq)).toEqual([7]);
  });

  it("finds no mismatch against an intact ledger, and names rewritten or deleted entries", () => {
    const entries = buildLedger();
    const local = filterEntriesForDevice(entries, "d0");
    expect(checkLocalCopy(local, entries)).toEqual([]);
    // The coordinator rewrites round 1 (re-signed, so its own chain could be rebuilt) and drops d0's last attestation.
    const other = generateEd25519();
    const rewritten = entries.map((e) => (e.seq === 4 ? sealEntry({ ...e, body: { ...e.body, survivors: ["d1"] } }, other.privateKey) : e)).filter((e) => e.seq !== 8);
    const mismatches = checkLocalCopy(local, rewritten);
    expect(mismatches.map((m) => [m.seq, m.problem])).toEqual([[4, "changed"], [8, "missing"]]);
    expect(mismatches[0]!.message).toMatch(/entry 4 \(round\) differs/);
  });

  it("keeps a member-committed round when its view proves the device's membership, and only then", () => {
    const key = generateEd25519();
    const path = join(mkdtempSync(join(tmpdir(), "tacit-local-")), "ledger.jsonl");
    const w = LedgerWriter.open(path, key.privateKey);
    w.append("genesis", { coordinatorPublicKey: "k" });
    w.append("round", { runId: "run-1", round: 0, cohort: ["d0", "d1", "d2"], survivors: ["d0", "d1"], declined: ["d2"], memberKey: "a1".repeat(32) });
    const full = readFileSync(path, "utf8").trim().split("\n").map((l) => JSON.parse(l) as LedgerEntry);
    const viewFor = (id: string, entries = full) => entries.map((e) => ({ ...e, body: memberView(e.body, id) }));
    // What the coordinator serves d0 verifies against the signed hash and is kept.
    const d0 = viewFor("d0");
    expect(entryHash(d0[1]!)).toBe(full[1]!.hash);
    expect(filterEntriesForDevice(d0, "d0").map((e) => e.seq)).toEqual([1]);
    expect(filterEntriesForDevice(viewFor("d2"), "d2").map((e) => e.seq)).toEqual([1]);
    // d1's view served to d0, an outsider's view, and a proof with altered roles prove nothing for d0.
    expect(filterEntriesForDevice(viewFor("d1"), "d0")).toEqual([]);
    expect(filterEntriesForDevice(viewFor("d9"), "d9")).toEqual([]);
    const forged = d0.map((e) => (e.seq === 1 ? { ...e, body: { ...e.body, memberProof: { ...(e.body.memberProof as object), roles: { inCohort: true, survived: false, declined: true } } } } : e));
    expect(filterEntriesForDevice(forged, "d0")).toEqual([]);
    // A rewrite of the full entry (d0 no longer a survivor, re-signed) shows in d0's later view.
    const rewritten = full.map((e) => (e.seq === 1 ? sealEntry({ ...e, body: { ...e.body, survivors: ["d1"] } }, key.privateKey) : e));
    expect(checkLocalCopy(filterEntriesForDevice(d0, "d0"), viewFor("d0", rewritten)).map((m) => [m.seq, m.problem])).toEqual([[1, "changed"]]);
    expect(checkLocalCopy(filterEntriesForDevice(d0, "d0"), viewFor("d0")).length).toBe(0);
  });
});
