/**
 * verifyLedger's checks that no test pinned (issue #16: deleting any of them broke nothing).
 * Each case starts from one honest, signed ledger (which verifies with no violation) and
 * changes one thing, then asserts the exact violation code the reviewer is shown.
 */
import { describe, expect, it } from "vitest";
import { LedgerWriter, memberView, verifyLedger } from "../shared/ledger/index.ts";
import { b64, signedLedgerKit } from "./support/ledger-text.ts";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const { EVENT, DEVICES, COORDINATOR, REVIEWER, ML, SPEC, POLICY, signedPolicy, launch, round, attestation, attestedRound, honestRun, ledger } = signedLedgerKit();

const codes = (text: string, opts: Parameters<typeof verifyLedger>[1] = {}): string[] => verifyLedger(text, { policy: POLICY, ...opts }).violations.map((v) => v.code);

describe("verifyLedger: the honest ledger", () => {
  it("verifies, and reports the run, its rounds and every device", () => {
    const f = verifyLedger(ledger(honestRun("r1")), { policy: POLICY, trustedCoordinatorKey: b64(COORDINATOR.publicRaw) });
    expect(f.violations).toEqual([]);
    expect(f.ok).toBe(true);
    expect(f.entries).toBe(2 + 1 + 12 + 1);
    expect(f.coordinatorPublicKey).toBe(b64(COORDINATOR.publicRaw));
    expect(f.runs.map((r) => [r.runId, r.state, r.rounds.map((x) => [x.round, x.status, x.cohort, x.survivors])])).toEqual([["r1", "completed", [[0, "completed", 5, 5], [1, "completed", 5, 5]]]]);
    expect(f.devices.map((d) => [d.deviceId, d.rounds])).toEqual(DEVICES.map((d) => [d.id, 2]));
    // Two rounds cost more than one, and every device the same.
    const [r0, r1] = f.runs[0]!.rounds;
    expect(r1!.worstDeviceEpsilon).toBeGreaterThan(r0!.worstDeviceEpsilon);
    expect(r0!.worstDeviceEpsilon).toBeGreaterThan(0);
    expect(r1!.medianDeviceEpsilon).toBe(r1!.worstDeviceEpsilon);
    expect(f.devices.every((d) => d.deviceEpsilon === r1!.worstDeviceEpsilon)).toBe(true);
  });
});

describe("verifyLedger: one change, one violation", () => {
  it("UNTRUSTED_COORDINATOR when the genesis key is not the one the reviewer trusts", () => {
    expect(codes(ledger(honestRun("r1")), { trustedCoordinatorKey: b64(REVIEWER.publicRaw) })).toEqual(["UNTRUSTED_COORDINATOR"]);
  });

  it("SURVIVOR_NOT_IN_COHORT when a round's survivor was never in its cohort", () => {
    const cohort = DEVICES.slice(0, 4).map((d) => d.id);
    const items = [launch("r1"), round("r1", 0, { cohort, survivors: [...cohort, "dev-4"] }), ...[0, 1, 2, 3, 4].map((i) => attestation("r1", 0, i))];
    expect(codes(ledger(items))).toEqual(["SURVIVOR_NOT_IN_COHORT"]);
  });

  it("ATTESTATION_NOT_SURVIVOR when a cohort member that dropped attests the round", () => {
    const items = [launch("r1"), ...attestedRound("r1", 0, [0, 1, 2, 3]), attestation("r1", 0, 4)];
    expect(codes(ledger(items))).toEqual(["ATTESTATION_NOT_SURVIVOR"]);
  });

  it("TOO_FEW_SURVIVORS when a round is released below the run's minSurvivors; an aborted one is fine", () => {
    expect(codes(ledger([launch("r1"), ...attestedRound("r1", 0, [0, 1, 2])]))).toEqual(["TOO_FEW_SURVIVORS"]);
    expect(codes(ledger([launch("r1"), round("r1", 0, { survivors: ["dev-0"], status: "aborted" }), ...attestedRound("r1", 0, [0, 1, 2, 3])]))).toEqual([]);
  });

  it("ROUND_ORDER when a round is skipped", () => {
    expect(codes(ledger([launch("r1"), ...attestedRound("r1", 0), ...attestedRound("r1", 2)]))).toEqual(["ROUND_ORDER"]);
  });

  it("RUN_TWICE, ROUND_WITHOUT_RUN, END_WITHOUT_RUN and AFTER_RUN_END", () => {
    expect(codes(ledger([launch("r1"), launch("r1")]))).toEqual(["RUN_TWICE"]);
    expect(codes(ledger([round("ghost", 0)]))).toEqual(["ROUND_WITHOUT_RUN"]);
    expect(codes(ledger([{ type: "run-end", body: { runId: "ghost", state: "cancelled", detail: "" } }]))).toEqual(["END_WITHOUT_RUN"]);
    expect(codes(ledger([...honestRun("r1"), round("r1", 2)]))).toContain("AFTER_RUN_END");
  });

  it("LAUNCH_REQUEST when the recorded spec is not what the ML team signed", () => {
    expect(codes(ledger([launch("r1", SPEC, { ...SPEC, noiseMultiplier: 2 })]))).toEqual(["LAUNCH_REQUEST"]);
  });

  it("ATTESTATION_MISMATCH when the signed body names another round; ATTESTATION_MECHANISM for another mechanism", () => {
    const items = [launch("r1"), round("r1", 0), ...[0, 1, 2, 3].map((i) => attestation("r1", 0, i)), attestation("r1", 0, 4, { round: 1 })];
    expect(codes(ledger(items))).toEqual(["ATTESTATION_MISMATCH"]);
    const other = [launch("r1"), round("r1", 0), ...[0, 1, 2, 3].map((i) => attestation("r1", 0, i)), attestation("r1", 0, 4, { event: { ...EVENT, devices: 4 } })];
    expect(codes(ledger(other))).toEqual(["ATTESTATION_MECHANISM"]);
  });

  it("POLICY_NOT_IN_LEDGER when the reviewer holds another policy", () => {
    const mine = signedPolicy({ maxDeviceEpsilon: 999, allowedSignals: ["commit"] });
    expect(codes(ledger(honestRun("r1")), { policy: mine })).toEqual(["POLICY_NOT_IN_LEDGER"]);
  });

  it("DEVICE_BUDGET when a device's ε exceeds the policy's maximum", () => {
    const text = ledger(honestRun("r1"));
    const eps = verifyLedger(text, { policy: POLICY }).devices[0]!.deviceEpsilon;
    const tight = signedPolicy({ maxDeviceEpsilon: eps * 0.99 });
    const atLimit = signedPolicy({ maxDeviceEpsilon: eps });
    const withPolicy = (p: typeof POLICY): string => ledger(honestRun("r1"), { policy: p });
    // (The launch's projected ε is checked against the same limit: POLICY_maxDeviceEpsilon.)
    const budget = (p: typeof POLICY) => verifyLedger(withPolicy(p), { policy: p }).violations.filter((v) => v.code === "DEVICE_BUDGET");
    expect(budget(tight).map((v) => v.message.split(" reached")[0])).toEqual(DEVICES.map((d) => `device ${d.id}`));
    expect(budget(atLimit)).toEqual([]);
  });
});

describe("verifyLedger: a device's view is not the ledger", () => {
  it("MEMBERS_WITHHELD for a round line served as a device's view: it still verifies, but counts nobody", () => {
    const lines = ledger(honestRun("r1")).trimEnd().split("\n");
    const round0 = lines.findIndex((l) => l.includes('"type":"round"'));
    const full = JSON.parse(lines[round0]!) as { body: Record<string, unknown> };
    const asView = lines.map((l, i) => (i === round0 ? JSON.stringify({ ...full, body: memberView(full.body, "dev-2") }) : l));
    const f = verifyLedger(asView.join("\n") + "\n", { policy: POLICY });
    expect(f.violations.map((v) => [v.code, v.line])).toEqual([
      ["MEMBERS_WITHHELD", round0 + 1],
      // With its survivors withheld, the round looks released below its minimum and its
      // attestations unsolicited: the reviewer must be given the full ledger.
      ["TOO_FEW_SURVIVORS", round0 + 1],
      ...[0, 1, 2, 3, 4].map((i) => ["ATTESTATION_NOT_SURVIVOR", round0 + 2 + i]),
    ]);
  });
});

describe("verifyLedger: integrity", () => {
  it("TRUNCATED and HEAD_MISMATCH against a head known out of band", () => {
    const text = ledger(honestRun("r1"));
    const entries = text.trimEnd().split("\n").map((l) => JSON.parse(l) as { seq: number; hash: string });
    const last = entries.at(-1)!;
    expect(codes(text, { expectedHead: { seq: last.seq, hash: last.hash } })).toEqual([]);
    const cut = text.split("\n").slice(0, -2).join("\n") + "\n";
    expect(codes(cut, { expectedHead: { seq: last.seq, hash: last.hash } })).toContain("TRUNCATED");
    expect(verifyLedger(text, { policy: POLICY, expectedHead: { seq: 3, hash: last.hash } }).violations).toEqual([expect.objectContaining({ code: "HEAD_MISMATCH", line: 4 })]);
  });

  it("names an edited entry (HASH), a reordering (SEQUENCE, CHAIN) and entries another key signed (SIGNATURE)", () => {
    const lines = ledger(honestRun("r1")).trimEnd().split("\n");
    const edited = lines.map((l, i) => (i === 3 ? l.replace('"attempt":0', '"attempt":1') : l));
    expect(verifyLedger(edited.join("\n") + "\n", { integrityOnly: true }).violations.map((v) => [v.code, v.line])).toEqual([["HASH", 4]]);
    const swapped = [...lines];
    [swapped[4], swapped[5]] = [swapped[5]!, swapped[4]!];
    const sv = verifyLedger(swapped.join("\n") + "\n", { integrityOnly: true }).violations.map((v) => v.code);
    expect(sv).toContain("SEQUENCE");
    expect(sv).toContain("CHAIN");
    // A round's member lists are covered through their commitment: moving a survivor is an edit.
    const round0 = lines.findIndex((l) => l.includes('"type":"round"'));
    const moved = lines.map((l, i) => (i === round0 ? l.replace('"survivors":["dev-0","dev-1"', '"survivors":["dev-1","dev-0"') : l));
    expect(moved[round0]).not.toBe(lines[round0]);
    expect(verifyLedger(moved.join("\n") + "\n", { integrityOnly: true }).violations.map((v) => [v.code, v.line])).toEqual([["HASH", round0 + 1]]);
    const f = verifyLedger(lines.join("\n") + "\n", { integrityOnly: true });
    expect(f).toMatchObject({ ok: true, runs: [], devices: [], violations: [] });
    // Written with another key than the genesis names: every entry's signature fails.
    const dir = mkdtempSync(join(tmpdir(), "tacit-ledger-mutants-"));
    const w = LedgerWriter.open(join(dir, "l.jsonl"), ML.privateKey);
    w.append("genesis", { coordinatorPublicKey: b64(COORDINATOR.publicRaw) });
    w.append("run-end", { runId: "x", state: "cancelled", detail: "" });
    expect(verifyLedger(readFileSync(join(dir, "l.jsonl"), "utf8"), { integrityOnly: true }).violations.map((v) => [v.code, v.line])).toEqual([["SIGNATURE", 1], ["SIGNATURE", 2]]);
  });
});
