/**
 * verifyLedger (shared/ledger/verify.ts) in process, for what no other test pinned (issue #16,
 * mutation testing): each line-format refusal of parseEntry with its message, each integrity and
 * semantic violation with its exact code, line and message, the figures (worst and median device ε
 * per round, population ε and its eligible pool, evaluations, enrollments, offences), and the
 * findings' shape. Every ledger is built and signed in process (test/support/ledger-text.ts).
 */
import { describe, expect, it } from "vitest";
import { sign } from "node:crypto";
import { canonicalJson } from "../shared/crypto/index.ts";
import { deviceEpsilon, populationEpsilonFixedSize, type DpEvent } from "../shared/dp/index.ts";
import { calibrateEvalDp, evalDpEvent } from "../shared/eval/eval-dp.ts";
import { LedgerFormatError, parseEntry, sealChain, verifyLedger, type Findings, type LedgerEntry, type Violation } from "../shared/ledger/index.ts";
import { evalDpInputs, parseRunSpec, type RunSpec } from "../shared/run/index.ts";
import { tinyRunSpec } from "./support/cluster.ts";
import { b64, LEDGER_MODEL_HASH, signedLedgerKit, type LedgerItem } from "./support/ledger-text.ts";

const kit = signedLedgerKit();
const { DEVICES, COORDINATOR, ML, SPEC, POLICY, EVENT, launch, round, attestation, attestedRound, honestRun, ledger, signedPolicy } = kit;
const ALL = DEVICES.map((_, i) => i);
const END = (runId: string): LedgerItem => ({ type: "run-end", body: { runId, state: "completed", detail: "" } });

const verify = (text: string, opts: Parameters<typeof verifyLedger>[1] = {}): Findings => verifyLedger(text, { policy: POLICY, ...opts });
const codes = (text: string, opts: Parameters<typeof verifyLedger>[1] = {}): string[] => verify(text, opts).violations.map((v) => v.code);
const only = (text: string, code: string, opts: Parameters<typeof verifyLedger>[1] = {}): Violation[] => verify(text, opts).violations.filter((v) => v.code === code);
const lines = (text: string): string[] => text.trimEnd().split("\n");
const unlines = (ls: string[]): string => ls.join("\n") + "\n";
const thrown = (f: () => unknown): string => {
  try {
    f();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("did not throw");
};

/** An attestation entry whose signed body is `bodyJson` as given (not necessarily JSON). */
function rawAttestation(runId: string, r: number, device: number, bodyJson: string, identityPublicKey = b64(DEVICES[device]!.key.publicRaw)): LedgerItem {
  const d = DEVICES[device]!;
  return { type: "attestation", body: { runId, round: r, deviceId: d.id, identityPublicKey, bodyJson, signature: b64(sign(null, Buffer.from(bodyJson), d.key.privateKey)) } };
}

/** Entries sealed by the kit's coordinator key (first entry as given: no genesis added). */
const sealed = (items: LedgerItem[], key = COORDINATOR.privateKey): string => unlines(sealChain(items, undefined, 1_700_000_000_000, key).map((e) => JSON.stringify(e)));

describe("parseEntry: one line, strictly", () => {
  const GOOD = { seq: 0, prevHash: "0".repeat(64), time: 1, type: "genesis", body: {}, hash: "a".repeat(64), signature: "s" };
  const refuse = (x: unknown, message: string) => {
    const line = typeof x === "string" ? x : JSON.stringify(x);
    expect(() => parseEntry(line, 7)).toThrow(new LedgerFormatError(`line 7: ${message}`));
    try {
      parseEntry(line, 7);
    } catch (err) {
      expect(err).toBeInstanceOf(LedgerFormatError);
      expect((err as Error).name).toBe("LedgerFormatError");
    }
  };

  it("accepts a well-formed entry as it is", () => {
    expect(parseEntry(JSON.stringify(GOOD), 1)).toEqual(GOOD);
  });

  it("refuses what is not a JSON object", () => {
    refuse("{", "not JSON (truncated or corrupted entry)");
    refuse("null", "not a JSON object");
    refuse("42", "not a JSON object");
    refuse('"entry"', "not a JSON object");
  });

  it("refuses a missing or non-integer seq, a missing or malformed prevHash, a missing time", () => {
    refuse({ ...GOOD, seq: undefined }, "missing or non-integer seq");
    refuse({ ...GOOD, seq: 1.5 }, "missing or non-integer seq");
    refuse({ ...GOOD, seq: "0" }, "missing or non-integer seq");
    for (const prevHash of [undefined, 5, ["0".repeat(64)], "ab", "x" + "0".repeat(64), "0".repeat(64) + "x", "A".repeat(64)]) refuse({ ...GOOD, prevHash }, "missing or malformed prevHash");
    refuse({ ...GOOD, time: undefined }, "missing time");
    refuse({ ...GOOD, time: "1" }, "missing time");
  });

  it("refuses an unknown type, a missing body, a missing or malformed hash, a missing signature", () => {
    refuse({ ...GOOD, type: undefined }, "unknown entry type 'undefined'");
    refuse({ ...GOOD, type: 5 }, "unknown entry type '5'");
    refuse({ ...GOOD, type: "bogus" }, "unknown entry type 'bogus'");
    refuse({ ...GOOD, body: undefined }, "missing body");
    refuse({ ...GOOD, body: null }, "missing body");
    refuse({ ...GOOD, body: "body" }, "missing body");
    for (const hash of [undefined, 5, ["a".repeat(64)], "ab", "x" + "a".repeat(64), "a".repeat(64) + "x", "A".repeat(64)]) refuse({ ...GOOD, hash }, "missing or malformed hash");
    refuse({ ...GOOD, signature: undefined }, "missing signature");
    refuse({ ...GOOD, signature: 5 }, "missing signature");
  });

  it("verifyLedger refuses an empty text, a last line without its newline, and names the bad line", () => {
    expect(() => verifyLedger("")).toThrow(new LedgerFormatError("ledger is empty"));
    const text = ledger(honestRun("r1"));
    expect(() => verifyLedger(text.slice(0, -1))).toThrow(new LedgerFormatError(`line ${lines(text).length}: truncated (no newline at the end of the last entry)`));
    expect(() => verifyLedger(text + "{")).toThrow(new LedgerFormatError(`line ${lines(text).length + 1}: truncated (no newline at the end of the last entry)`));
    const ls = lines(text);
    ls[2] = "[";
    expect(() => verifyLedger(unlines(ls))).toThrow(new LedgerFormatError("line 3: not JSON (truncated or corrupted entry)"));
  });
});

describe("verifyLedger: integrity", () => {
  it("integrityOnly: the findings' exact shape, not ok when a check fails, δ as requested", () => {
    const text = ledger(honestRun("r1"));
    const ls = lines(text);
    ls[3] = ls[3]!.replace('"attempt":0', '"attempt":1');
    const f = verifyLedger(unlines(ls), { integrityOnly: true });
    expect(f).toStrictEqual({ ok: false, entries: ls.length, delta: 1e-6, coordinatorPublicKey: b64(COORDINATOR.publicRaw), runs: [], devices: [], enrollments: [], offences: [], violations: [{ code: "HASH", line: 4, message: "the entry's content does not match its hash (edited)" }] });
    expect(verifyLedger(text, { integrityOnly: true, delta: 1e-5 })).toMatchObject({ ok: true, delta: 1e-5, violations: [] });
  });

  it("a deleted entry: SEQUENCE and CHAIN from that line on, with their messages", () => {
    const ls = lines(ledger(honestRun("r1")));
    ls.splice(3, 1);
    const v = verifyLedger(unlines(ls), { integrityOnly: true }).violations;
    expect(v.slice(0, 2)).toStrictEqual([
      { code: "SEQUENCE", line: 4, message: "entry has seq 4, expected 3 (an entry was deleted, duplicated or reordered)" },
      { code: "CHAIN", line: 4, message: "prevHash does not match the previous entry's hash (chain broken)" },
    ]);
    expect(v.slice(2).map((x) => x.code)).toEqual(Array(ls.length - 4).fill("SEQUENCE"));
  });

  it("SIGNATURE for entries signed with another key; GENESIS_AGAIN for a second genesis", () => {
    expect(verifyLedger(sealed([{ type: "genesis", body: { coordinatorPublicKey: b64(COORDINATOR.publicRaw) } }, END("x")], ML.privateKey), { integrityOnly: true }).violations).toStrictEqual([
      { code: "SIGNATURE", line: 1, message: "the coordinator's signature does not verify" },
      { code: "SIGNATURE", line: 2, message: "the coordinator's signature does not verify" },
    ]);
    const genesis: LedgerItem = { type: "genesis", body: { coordinatorPublicKey: b64(COORDINATOR.publicRaw) } };
    expect(verifyLedger(sealed([genesis, END("x"), genesis]), { integrityOnly: true }).violations).toStrictEqual([{ code: "GENESIS_AGAIN", line: 3, message: "a second genesis entry" }]);
  });

  it("NO_GENESIS and BAD_GENESIS_KEY: no key to check signatures with, and none reported", () => {
    const f = verifyLedger(sealed([END("x"), END("y")]), { integrityOnly: true });
    expect(f.coordinatorPublicKey).toBeUndefined();
    expect(f.violations).toStrictEqual([
      { code: "NO_GENESIS", line: 1, message: "the first entry is not the genesis entry" },
      { code: "BAD_GENESIS_KEY", line: 1, message: "the genesis entry does not carry a valid ed25519 key" },
    ]);
    const keyless = verifyLedger(sealed([{ type: "genesis", body: {} }, END("x")]), { integrityOnly: true });
    expect(keyless.coordinatorPublicKey).toBe("");
    expect(keyless.violations).toStrictEqual([{ code: "BAD_GENESIS_KEY", line: 1, message: "the genesis entry does not carry a valid ed25519 key" }]);
    const short = verifyLedger(sealed([{ type: "genesis", body: { coordinatorPublicKey: b64(COORDINATOR.publicRaw.slice(1)) } }]), { integrityOnly: true });
    expect(short.violations.map((v) => v.code)).toEqual(["BAD_GENESIS_KEY"]);
  });

  it("UNTRUSTED_COORDINATOR, TRUNCATED and HEAD_MISMATCH with their messages; a violation without a line has no line key", () => {
    const text = ledger(honestRun("r1"));
    expect(verify(text, { trustedCoordinatorKey: b64(ML.publicRaw) }).violations).toStrictEqual([{ code: "UNTRUSTED_COORDINATOR", line: 1, message: "the genesis key is not the coordinator key you trust" }]);
    expect(verify(text, { trustedCoordinatorKey: b64(COORDINATOR.publicRaw) }).violations).toEqual([]);
    const n = lines(text).length;
    const last = JSON.parse(lines(text)[n - 1]!) as LedgerEntry;
    const cut = unlines(lines(text).slice(0, -2));
    expect(verifyLedger(cut, { integrityOnly: true, expectedHead: { seq: last.seq, hash: last.hash } }).violations).toStrictEqual([{ code: "TRUNCATED", message: `the ledger ends at seq ${n - 3}, but entry ${n - 1} is known to exist (entries were cut off)` }]);
    expect(verifyLedger(text, { integrityOnly: true, expectedHead: { seq: 3, hash: last.hash } }).violations).toStrictEqual([{ code: "HEAD_MISMATCH", line: 4, message: "entry 3 is not the one known out of band (history was rewritten)" }]);
  });
});

describe("verifyLedger: launches", () => {
  it("RUN_TWICE and END_WITHOUT_RUN with their messages; a run without its end is 'launched'", () => {
    expect(only(ledger([launch("r1"), launch("r1")]), "RUN_TWICE")).toStrictEqual([{ code: "RUN_TWICE", line: 4, message: "run r1 launched twice" }]);
    expect(verify(ledger([END("ghost")])).violations).toStrictEqual([{ code: "END_WITHOUT_RUN", line: 3, message: "run ghost ended but was never launched" }]);
    const f = verify(ledger([launch("r1")]));
    expect(f.runs).toStrictEqual([{ runId: "r1", launchedAtLine: 3, spec: SPEC, policyLine: 2, rounds: [], state: "launched" }]);
  });

  it("RUN_SPEC names the spec's problem; the run's rounds and attestations are still walked without one", () => {
    const bogus = { ...SPEC, rounds: 0 };
    const f = verify(ledger([launch("r1", bogus), ...attestedRound("r1", 0), END("r1")]));
    expect(f.violations).toStrictEqual([{ code: "RUN_SPEC", line: 3, message: thrown(() => parseRunSpec(bogus)) }]);
    expect(f.runs[0]!.spec).toBeUndefined();
    expect(f.runs[0]!.rounds.map((r) => [r.round, r.status, r.survivors])).toEqual([[0, "completed", 5]]);
    expect(f.devices.map((d) => d.rounds)).toEqual([1, 1, 1, 1, 1]);
  });

  it("LAUNCH_REQUEST: a request that is missing, incomplete or signed by another key does not verify; one that cannot be read is malformed", () => {
    const req = (request: unknown): LedgerItem => ({ type: "run-launch", body: { runId: "r1", spec: SPEC, request } });
    const good = launch("r1").body.request as { body: string; publicKey: string; signature: string };
    const msg = (text: string): string[] => only(text, "LAUNCH_REQUEST").map((v) => v.message);
    const NOT = "run r1: the ML team's signed request does not verify";
    expect(msg(ledger([req(good)]))).toEqual([]);
    expect(msg(ledger([req(undefined)]))).toEqual([NOT]);
    expect(msg(ledger([req({ ...good, body: "" })]))).toEqual([NOT]);
    expect(msg(ledger([req({ ...good, publicKey: undefined })]))).toEqual([NOT]);
    expect(msg(ledger([req({ ...good, signature: undefined })]))).toEqual([NOT]);
    expect(msg(ledger([req({ ...good, publicKey: b64(COORDINATOR.publicRaw) })]))).toEqual([NOT]);
    expect(msg(ledger([req({ ...good, publicKey: "AAAA" })]))).toEqual(["run r1: malformed signed request"]);
    const notJson = "not json";
    expect(msg(ledger([req({ body: notJson, publicKey: good.publicKey, signature: b64(sign(null, Buffer.from(notJson), ML.privateKey)) })]))).toEqual(["run r1: malformed signed request"]);
    expect(msg(ledger([launch("r1", SPEC, { ...SPEC, clip: 6 })]))).toEqual(["run r1: the recorded spec differs from what the ML team signed"]);
  });

  it("POLICY_<rule> for a run the policy in force forbids, naming the run; no policy, no such check", () => {
    const weak = { ...SPEC, noiseMultiplier: 0.5 };
    const v = only(ledger([launch("r1", weak)]), "POLICY_minNoiseMultiplier");
    expect(v.map((x) => [x.line, x.message.split(" (")[0]])).toEqual([[3, "run r1: noise multiplier 0.5 is below the policy minimum 1"]]);
    expect(verifyLedger(ledger([launch("r1", weak)], { policy: null })).violations).toEqual([]);
  });

  it("POLICY_SIGNATURE for a policy entry that does not verify; its δ is not used", () => {
    const forged = { ...signedPolicy({ delta: 1e-9 }) };
    forged.body = { ...forged.body, maxDeviceEpsilon: 5000 };
    const f = verify(ledger([{ type: "policy", body: { policy: forged } }]));
    expect(f.violations).toStrictEqual([{ code: "POLICY_SIGNATURE", line: 3, message: "policy signature does not verify: the policy was changed after the reviewer signed it, or signed with another key" }]);
    expect(f.delta).toBe(1e-6);
  });

  it("POLICY_NOT_IN_LEDGER: its message, and no line", () => {
    expect(verify(ledger(honestRun("r1")), { policy: signedPolicy({ maxDeviceEpsilon: 999 }) }).violations).toStrictEqual([{ code: "POLICY_NOT_IN_LEDGER", message: "the policy file you hold is not the one recorded in the ledger" }]);
  });

  it("δ comes from policy entries only: a policy carried in another entry's body changes nothing", () => {
    const other = signedPolicy({ delta: 1e-9 });
    const f = verify(ledger([{ type: "enrollment-token", body: { creator: "admin", policy: other } }, ...honestRun("r1")]));
    expect(f.violations).toEqual([]);
    expect(f.delta).toBe(1e-6);
  });

  it("a run's figures are at the δ of the policy in force at its launch; budgets at the latest policy's", () => {
    const later = signedPolicy({ delta: 1e-9 });
    const f = verifyLedger(ledger([...honestRun("r1"), { type: "policy", body: { policy: later } }, ...honestRun("r2")]), { policy: POLICY });
    expect(f.violations).toEqual([]);
    expect(f.delta).toBe(1e-9);
    expect(f.runs.map((r) => [r.runId, r.policyLine, r.rounds.map((x) => x.delta)])).toEqual([["r1", 2, [1e-6, 1e-6]], ["r2", 17, [1e-9, 1e-9]]]);
    const eps = (n: number, delta: number) => deviceEpsilon(Array<DpEvent>(n).fill(EVENT), delta);
    expect(f.runs[0]!.rounds[1]!.worstDeviceEpsilon).toBe(eps(2, 1e-6));
    expect(f.runs[1]!.rounds[1]!.worstDeviceEpsilon).toBe(eps(4, 1e-9));
    expect(f.devices.map((d) => d.deviceEpsilon)).toEqual(Array(5).fill(eps(4, 1e-9)));
    // The reviewer's policy need only be one of the ledger's.
    expect(verifyLedger(ledger([...honestRun("r1"), { type: "policy", body: { policy: later } }]), { policy: later }).violations).toEqual([]);
  });
});

describe("verifyLedger: rounds", () => {
  it("ROUND_WITHOUT_RUN, EVALUATION_WITHOUT_RUN, ROUND_ORDER, SURVIVOR_NOT_IN_COHORT, TOO_FEW_SURVIVORS: their messages", () => {
    expect(verify(ledger([round("ghost", 0)])).violations).toStrictEqual([{ code: "ROUND_WITHOUT_RUN", line: 3, message: "round of run ghost, which was never launched" }]);
    expect(verify(ledger([{ type: "evaluation", body: { runId: "ghost", round: 1_000_000 } }])).violations).toStrictEqual([{ code: "EVALUATION_WITHOUT_RUN", line: 3, message: "evaluation of run ghost, which was never launched" }]);
    expect(only(ledger([launch("r1"), ...attestedRound("r1", 0), ...attestedRound("r1", 2)]), "ROUND_ORDER")).toStrictEqual([{ code: "ROUND_ORDER", line: 10, message: "run r1: round 2 recorded when round 1 was expected" }]);
    const cohort = DEVICES.slice(0, 4).map((d) => d.id);
    expect(only(ledger([launch("r1"), round("r1", 0, { cohort, survivors: [...cohort, "dev-4"] })]), "SURVIVOR_NOT_IN_COHORT")).toStrictEqual([{ code: "SURVIVOR_NOT_IN_COHORT", line: 4, message: "run r1 round 0: a survivor is not in the cohort" }]);
    expect(only(ledger([launch("r1"), ...attestedRound("r1", 0, [0, 1, 2])]), "TOO_FEW_SURVIVORS")).toStrictEqual([{ code: "TOO_FEW_SURVIVORS", line: 4, message: "run r1 round 0: released with 3 survivors < minSurvivors 4" }]);
  });

  it("MEMBERS_WITHHELD only for a round whose lists were replaced by a commitment; a round without lists counts nobody", () => {
    const withheld = round("r1", 0, { status: "aborted", body: { cohort: undefined, survivors: undefined, memberKey: undefined, members: "ab".repeat(32) } });
    expect(verify(ledger([launch("r1"), withheld])).violations).toStrictEqual([{ code: "MEMBERS_WITHHELD", line: 4, message: "run r1 round 0: the member lists are withheld (a device's view, not the ledger): nobody's ε can be counted from it" }]);
    const bare = round("r1", 0, { status: "aborted", body: { cohort: undefined, survivors: undefined, memberKey: undefined } });
    const f = verify(ledger([launch("r1"), bare]));
    expect(f.violations).toEqual([]);
    expect(f.runs[0]!.rounds).toStrictEqual([{ round: 0, delta: 1e-6, attempt: 0, status: "aborted", cohort: 0, survivors: 0, worstDeviceEpsilon: 0, medianDeviceEpsilon: 0, populationEpsilon: 0 }]);
  });

  it("MECHANISM for a completed round whose mechanism cannot be read: nobody is charged it", () => {
    const items = [launch("r1"), round("r1", 0, { body: { mechanism: { kind: "bogus" } } }), ...ALL.map((i) => attestation("r1", 0, i, { event: { kind: "bogus" } }))];
    const f = verify(ledger(items));
    expect(f.violations).toStrictEqual([{ code: "MECHANISM", line: 4, message: "run r1 round 0: unknown mechanism 'bogus'" }]);
    expect(f.devices).toEqual([]);
  });

  it("NOISE_IGNORES_COLLUDERS names the shares counted and the honest survivors assured", () => {
    const k = signedLedgerKit({ event: { ...EVENT, devices: 4 } as DpEvent });
    const v = verifyLedger(k.ledger([k.launch("r1"), ...k.attestedRound("r1", 0)]), { policy: k.POLICY }).violations;
    expect(v).toStrictEqual([{ code: "NOISE_IGNORES_COLLUDERS", line: 4, message: "run r1 round 0: the mechanism counts 4 noise shares, but only 3 honest survivors are assured (minSurvivors 4 − ⌈0.1 · 5⌉ colluders)" }]);
  });

  it("a round's attempt is its figures' and its attestations' (0 when the round names none)", () => {
    const items = [launch("r1"), round("r1", 0, { body: { attempt: 2 } }), ...ALL.map((i) => attestation("r1", 0, i, { attempt: 2 })), round("r1", 1, { body: { attempt: undefined } }), ...ALL.map((i) => attestation("r1", 1, i))];
    const f = verify(ledger(items));
    expect(f.violations).toEqual([]);
    expect(f.runs[0]!.rounds.map((r) => r.attempt)).toEqual([2, 0]);
  });
});

describe("verifyLedger: the figures", () => {
  // Gaussian rounds (no collusion check), minSurvivors 2: devices survive 1, 2 or 3 rounds.
  const G: DpEvent = { kind: "gaussian", noiseMultiplier: 1 };
  const spec = tinyRunSpec({ noiseMultiplier: 1, rounds: 3, cohortSize: 5, minSurvivors: 2, populationSize: 5, clip: 5 });
  const k = signedLedgerKit({ spec, event: G, policy: { minSurvivors: 2 } });
  const e = (n: number): number => deviceEpsilon(Array<DpEvent>(n).fill(G), 1e-6);
  const ids = (xs: number[]): string[] => xs.map((i) => `dev-${i}`);
  const attested = (r: number, cohort: number[], survivors: number[], body: Record<string, unknown> = {}): LedgerItem[] => [k.round("r1", r, { cohort: ids(cohort), survivors: ids(survivors), body }), ...survivors.map((i) => k.attestation("r1", r, i))];

  it("worst and median device ε over the round's cohort (survivors and dropouts alike), never over devices outside it", () => {
    const items = [k.launch("r1"), ...attested(0, [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]), ...attested(1, [0, 1, 2, 3, 4], [0, 3, 4]), ...attested(2, [0, 1, 2, 3], [0, 3])];
    const f = verifyLedger(k.ledger(items), { policy: k.POLICY });
    expect(f.violations).toEqual([]);
    const rounds = f.runs[0]!.rounds;
    // Round 1: ε (in ledger order) e2 e1 e1 e2 e2, median e2. Round 2: e3 e1 e1 e3 (dev-4 is not in its cohort), median (e1 + e3)/2.
    expect(rounds.map((r) => [r.worstDeviceEpsilon, r.medianDeviceEpsilon])).toEqual([[e(1), e(1)], [e(2), e(2)], [e(3), (e(1) + e(3)) / 2]]);
    expect(rounds.map((r) => [r.cohort, r.survivors])).toEqual([[5, 5], [5, 3], [4, 2]]);
    expect(rounds[2]!.populationEpsilon).toBe(populationEpsilonFixedSize([{ event: G, eligible: 5, cohort: 5 }, { event: G, eligible: 5, cohort: 5 }, { event: G, eligible: 4, cohort: 4 }], 1e-6));
    expect(f.devices).toStrictEqual([
      { deviceId: "dev-0", rounds: 3, deviceEpsilon: e(3) },
      { deviceId: "dev-1", rounds: 1, deviceEpsilon: e(1) },
      { deviceId: "dev-2", rounds: 1, deviceEpsilon: e(1) },
      { deviceId: "dev-3", rounds: 3, deviceEpsilon: e(3) },
      { deviceId: "dev-4", rounds: 2, deviceEpsilon: e(2) },
    ]);
    expect("requestedDelta" in f).toBe(false);
  });

  it("population ε draws from the recorded eligible pool only when it is an integer ≥ the cohort", () => {
    const pop = (eligible: unknown): number => {
      const f = verifyLedger(k.ledger([k.launch("r1"), ...attested(0, [0, 1, 2, 3, 4], [0, 1, 2, 3, 4], { privacy: { eligible } })]), { policy: k.POLICY });
      expect(f.violations).toEqual([]);
      return f.runs[0]!.rounds[0]!.populationEpsilon;
    };
    const at = (eligible: number): number => populationEpsilonFixedSize([{ event: G, eligible, cohort: 5 }], 1e-6);
    expect(pop(10_000)).toBe(at(10_000));
    expect(pop(10_000)).toBeLessThan(at(5));
    expect(pop(10_000.5)).toBe(at(5));
    expect(pop(3)).toBe(at(5));
    expect(pop(5)).toBe(at(5));
  });

  it("ε is unbounded (∞) for a mechanism the accountant refuses or cannot bound, in the figures and the DEVICE_BUDGET message", () => {
    const refused: DpEvent = { kind: "sampledWithoutReplacement", sourceDatasetSize: 1, sampleSize: 5, event: G };
    const items = [k.launch("r1"), k.round("r1", 0, { body: { mechanism: refused } }), ...ALL.map((i) => k.attestation("r1", 0, i, { event: refused }))];
    const f = verifyLedger(k.ledger(items), { policy: k.POLICY });
    expect(f.devices.map((d) => d.deviceEpsilon)).toEqual(Array(5).fill(Infinity));
    expect(f.runs[0]!.rounds[0]).toMatchObject({ worstDeviceEpsilon: Infinity, medianDeviceEpsilon: Infinity, populationEpsilon: Infinity });
    expect(f.violations.map((v) => v.message)).toEqual(DEVICES.map((d) => `device ${d.id} reached ε ∞ > policy maximum 1000 at the policy's δ = 0.000001`));
    expect(f.violations.every((v) => v.code === "DEVICE_BUDGET" && !("line" in v))).toBe(true);
    const nonPrivate = [k.launch("r1"), k.round("r1", 0, { body: { mechanism: { kind: "nonPrivate" } } }), ...ALL.map((i) => k.attestation("r1", 0, i, { event: { kind: "nonPrivate" } }))];
    expect(verifyLedger(k.ledger(nonPrivate), { policy: k.POLICY }).runs[0]!.rounds[0]!.populationEpsilon).toBe(Infinity);
  });

  it("DEVICE_BUDGET names the device's ε to 3 decimals; without a policy there is no budget, and δ is the requested one", () => {
    const tight = k.signedPolicy({ maxDeviceEpsilon: 0.5 });
    const text = k.ledger([k.launch("r1"), ...attested(0, [0, 1], [0, 1])], { policy: tight });
    expect(only(text, "DEVICE_BUDGET", { policy: tight }).map((v) => v.message)).toEqual([`device dev-0 reached ε ${e(1).toFixed(3)} > policy maximum 0.5 at the policy's δ = 0.000001`, `device dev-1 reached ε ${e(1).toFixed(3)} > policy maximum 0.5 at the policy's δ = 0.000001`]);
    const none = k.ledger([k.launch("r1"), ...attested(0, [0, 1], [0, 1])], { policy: null });
    const f = verifyLedger(none);
    expect(f.violations).toEqual([]);
    expect(f.delta).toBe(1e-6);
    const at5 = verifyLedger(none, { delta: 1e-5 });
    expect(at5.delta).toBe(1e-5);
    expect("requestedDelta" in at5).toBe(false);
    expect(at5.devices[0]).toStrictEqual({ deviceId: "dev-0", rounds: 1, deviceEpsilon: deviceEpsilon([G], 1e-5) });
  });

  it("a requested δ other than the policy's adds requestedDelta and each device's ε at it", () => {
    const f = verifyLedger(k.ledger([k.launch("r1"), ...attested(0, [0, 1], [0, 1])]), { policy: k.POLICY, delta: 1e-5 });
    expect(f.delta).toBe(1e-6);
    expect(f.requestedDelta).toBe(1e-5);
    expect(f.devices[0]).toStrictEqual({ deviceId: "dev-0", rounds: 1, deviceEpsilon: e(1), epsilonAtRequestedDelta: deviceEpsilon([G], 1e-5) });
  });

  it("a round before any charge reports 0, not NaN", () => {
    const f = verifyLedger(k.ledger([k.launch("r1"), k.round("r1", 0, { cohort: [], survivors: [], status: "aborted" })]), { policy: k.POLICY });
    expect(f.runs[0]!.rounds[0]).toMatchObject({ worstDeviceEpsilon: 0, medianDeviceEpsilon: 0, populationEpsilon: 0 });
  });
});

describe("verifyLedger: attestations", () => {
  it("ATTESTATION_SIGNATURE for a signature by another key and for one that is not 64 bytes of base64", () => {
    const forged = attestation("r1", 0, 4);
    forged.body = { ...forged.body, signature: b64(sign(null, Buffer.from(String(forged.body.bodyJson)), DEVICES[0]!.key.privateKey)) };
    const short = attestation("r1", 0, 4);
    short.body = { ...short.body, signature: "abc" };
    for (const a of [forged, short]) {
      expect(verify(ledger([launch("r1"), round("r1", 0), ...[0, 1, 2, 3].map((i) => attestation("r1", 0, i)), a])).violations).toStrictEqual([{ code: "ATTESTATION_SIGNATURE", line: 9, message: "device dev-4's attestation for run r1 round 0 does not verify" }]);
    }
  });

  it("ATTESTATION_MISMATCH when the signed body names another device or run", () => {
    for (const over of [{ deviceId: "dev-3" }, { runId: "r2" }, { round: 1 }]) {
      expect(verify(ledger([launch("r1"), round("r1", 0), ...[0, 1, 2, 3].map((i) => attestation("r1", 0, i)), attestation("r1", 0, 4, over)])).violations).toStrictEqual([{ code: "ATTESTATION_MISMATCH", line: 9, message: "attestation body names another device, run or round" }]);
    }
  });

  it("ATTESTATION_MECHANISM and ATTESTATION_NOT_SURVIVOR with their messages", () => {
    const other = { ...EVENT, devices: 2 };
    expect(verify(ledger([launch("r1"), round("r1", 0), ...[0, 1, 2, 3].map((i) => attestation("r1", 0, i)), attestation("r1", 0, 4, { event: other })])).violations).toStrictEqual([{ code: "ATTESTATION_MECHANISM", line: 9, message: "device dev-4 attests a mechanism that differs from round 0's" }]);
    expect(verify(ledger([launch("r1"), ...attestedRound("r1", 0, [0, 1, 2, 3]), attestation("r1", 0, 4)])).violations).toStrictEqual([{ code: "ATTESTATION_NOT_SURVIVOR", line: 9, message: "device dev-4 attests round 0 of r1 but is not among its survivors" }]);
  });

  it("an attestation of a run never launched, or of a round never recorded, is not a survivor's (and nothing else)", () => {
    expect(verify(ledger([attestation("ghost", 0, 0)])).violations).toStrictEqual([{ code: "ATTESTATION_NOT_SURVIVOR", line: 3, message: "device dev-0 attests round 0 of ghost but is not among its survivors" }]);
    expect(codes(ledger([launch("r1"), attestation("r1", 5, 0)]))).toEqual(["ATTESTATION_NOT_SURVIVOR"]);
  });

  it("an aborted round's survivor may attest it: no parameters to check, nothing missing", () => {
    expect(codes(ledger([launch("r1"), round("r1", 0, { status: "aborted" }), ...ALL.map((i) => attestation("r1", 0, i, { attempt: 7, clip: 1 }))]))).toEqual([]);
  });

  it("ATTESTATION_MALFORMED for a signed body that is not JSON or a key that is not ed25519; the survivor then has no attestation", () => {
    for (const a of [rawAttestation("r1", 0, 4, "not json"), rawAttestation("r1", 0, 4, canonicalJson({ deviceId: "dev-4", runId: "r1", round: 0 }), "AAAA")]) {
      expect(verify(ledger([launch("r1"), round("r1", 0), ...[0, 1, 2, 3].map((i) => attestation("r1", 0, i)), a])).violations).toStrictEqual([
        { code: "ATTESTATION_MALFORMED", line: 9, message: "malformed attestation" },
        { code: "MISSING_ATTESTATION", line: 4, message: "run r1 round 0: 1 survivor(s) without a signed attestation (dev-4)" },
      ]);
    }
  });

  it("ATTESTATION_PARAMETERS: each parameter that is not the round's, by name, with both values", () => {
    const text = ledger([launch("r1"), round("r1", 0), ...[0, 1, 2].map((i) => attestation("r1", 0, i)), attestation("r1", 0, 3, { mechanism: "skellam", clip: 4 }), attestation("r1", 0, 4, { noiseMultiplier: 2, minSurvivors: 3, attempt: 1, modelHash: "ee".repeat(32) })]);
    const p = (d: number, m: string) => `device dev-${d}'s attestation for run r1 round 0: ${m}`;
    expect(verify(text).violations).toStrictEqual([
      { code: "ATTESTATION_PARAMETERS", line: 8, message: p(3, `mechanism is "skellam", the round's is "ddgauss"`) },
      { code: "ATTESTATION_PARAMETERS", line: 8, message: p(3, `clip is 4, the round's is 5`) },
      { code: "ATTESTATION_PARAMETERS", line: 9, message: p(4, `attempt is 1, the round's is 0`) },
      { code: "ATTESTATION_PARAMETERS", line: 9, message: p(4, `modelHash is "${"ee".repeat(32)}", the round's is "${LEDGER_MODEL_HASH}"`) },
      { code: "ATTESTATION_PARAMETERS", line: 9, message: p(4, `noiseMultiplier is 2, the round's is 1`) },
      { code: "ATTESTATION_PARAMETERS", line: 9, message: p(4, `minSurvivors is 3, the round's is 4`) },
    ]);
  });

  it("the model hash is checked only when the round records one as a string", () => {
    const round1 = (modelHashBefore: unknown) => [launch("r1"), ...attestedRound("r1", 0), round("r1", 1, { body: { modelHashBefore } }), ...ALL.map((i) => attestation("r1", 1, i, { modelHash: "ee".repeat(32) }))];
    expect(codes(ledger(round1(undefined)))).toEqual([]);
    expect(codes(ledger(round1(123)))).toEqual([]);
    expect(codes(ledger(round1("ff".repeat(32))))).toEqual(Array(5).fill("ATTESTATION_PARAMETERS"));
  });

  it("MISSING_ATTESTATION names at most five survivors, then '…'", () => {
    const spec = tinyRunSpec({ noiseMultiplier: 1, rounds: 2, cohortSize: 7, minSurvivors: 4, populationSize: 7, clip: 5 });
    const k = signedLedgerKit({ devices: 7, spec });
    const missing = (attested: number[]) => verifyLedger(k.ledger([k.launch("r1"), k.round("r1", 0), ...attested.map((i) => k.attestation("r1", 0, i))]), { policy: k.POLICY }).violations;
    expect(missing([])).toStrictEqual([{ code: "MISSING_ATTESTATION", line: 4, message: "run r1 round 0: 7 survivor(s) without a signed attestation (dev-0, dev-1, dev-2, dev-3, dev-4, …)" }]);
    expect(missing([0]).map((v) => v.message)).toEqual(["run r1 round 0: 6 survivor(s) without a signed attestation (dev-1, dev-2, dev-3, dev-4, dev-5, …)"]);
    expect(missing([0, 1]).map((v) => v.message)).toEqual(["run r1 round 0: 5 survivor(s) without a signed attestation (dev-2, dev-3, dev-4, dev-5, dev-6)"]);
  });
});

describe("verifyLedger: after a run's end", () => {
  it("AFTER_RUN_END names the entry's type and the end's line; entries of no run are never after an end", () => {
    expect(only(ledger([...honestRun("r1"), round("r1", 2)]), "AFTER_RUN_END")).toStrictEqual([{ code: "AFTER_RUN_END", line: 17, message: "run r1: a round entry after the run ended (line 16)" }]);
    const f = verify(ledger([{ type: "run-end", body: { state: "cancelled" } }, { type: "enrollment-token", body: { creator: "admin" } }]));
    expect(f.violations).toStrictEqual([{ code: "END_WITHOUT_RUN", line: 3, message: "run undefined ended but was never launched" }]);
  });
});

describe("verifyLedger: enrollments and offences", () => {
  it("counts tokens and enrolled devices per creator, and offences per device, in ledger order", () => {
    const items: LedgerItem[] = [
      { type: "enrollment-token", body: { tokenId: "t1", creator: "admin-1" } },
      { type: "enrollment-token", body: { tokenId: "t2", creator: "admin-1" } },
      { type: "device-offence", body: { deviceId: "dev-9", runId: "r", round: 0, reason: "x" } },
      { type: "enrollment", body: { deviceId: "dev-0", creator: "admin-1" } },
      { type: "enrollment", body: { deviceId: "dev-1", creator: "admin-3" } },
      { type: "enrollment-token", body: { tokenId: "t3", creator: "admin-2" } },
      { type: "device-offence", body: { deviceId: "dev-8", runId: "r", round: 0, reason: "x" } },
      { type: "device-offence", body: { deviceId: "dev-9", runId: "r", round: 1, reason: "x" } },
    ];
    const f = verify(ledger(items));
    expect(f.violations).toEqual([]);
    expect(f.enrollments).toStrictEqual([{ creator: "admin-1", tokens: 2, devices: 1 }, { creator: "admin-3", tokens: 0, devices: 1 }, { creator: "admin-2", tokens: 1, devices: 0 }]);
    expect(f.offences).toStrictEqual([{ deviceId: "dev-9", count: 2 }, { deviceId: "dev-8", count: 1 }]);
  });
});

describe("verifyLedger: evaluations", () => {
  const EVAL = { everyRounds: 1, heldOutFraction: 0.1, maxExamplesPerDevice: 10, noiseMultiplier: 1 };
  const spec: RunSpec = tinyRunSpec({ noiseMultiplier: 1, rounds: 2, cohortSize: 5, minSurvivors: 4, populationSize: 5, clip: 5, evaluation: EVAL });
  const k = signedLedgerKit({ spec });
  const evEvent = (cohort: number, s: RunSpec = spec): DpEvent => evalDpEvent(calibrateEvalDp(evalDpInputs(s.evaluation!, { minSurvivors: s.minSurvivors, colluders: Math.ceil(s.corruptTolerance * cohort), maxSummands: cohort, bits: s.bits })));
  const R = 1_000_000;
  const evaluation = (x: { cohort?: number[]; survivors?: number[]; mechanism?: unknown; status?: string; extra?: Record<string, unknown> } = {}): LedgerItem => {
    const cohort = (x.cohort ?? [0, 1, 2, 3, 4]).map((i) => `dev-${i}`);
    return { type: "evaluation", body: { runId: "r1", round: R, afterRound: 0, status: x.status ?? "completed", modelHash: LEDGER_MODEL_HASH, mechanism: x.mechanism === undefined ? evEvent(cohort.length) : x.mechanism, cohort, survivors: (x.survivors ?? x.cohort ?? [0, 1, 2, 3, 4]).map((i) => `dev-${i}`), declined: [], ...x.extra } };
  };
  const evAttest = (i: number, event: DpEvent = evEvent(5)) => k.attestation("r1", R, i, { event, noiseMultiplier: EVAL.noiseMultiplier });

  it("charges an evaluation's survivors its mechanism and records its figures; later rounds compose it", () => {
    const ev = evEvent(5);
    // dev-0 drops out of round 0, dev-4 out of the evaluation.
    const items = [k.launch("r1"), ...k.attestedRound("r1", 0, [1, 2, 3, 4]), evaluation({ survivors: [0, 1, 2, 3], extra: { counts: [3, 4], noiseMultiplier: 1 } }), ...[0, 1, 2, 3].map((i) => evAttest(i)), ...k.attestedRound("r1", 1)];
    const f = verifyLedger(k.ledger(items), { policy: k.POLICY });
    expect(f.violations).toEqual([]);
    const worst = deviceEpsilon([k.EVENT, ev], 1e-6);
    // Its worst ε is the survivors' highest (dev-1..3, charged both), not dev-0's (the evaluation only).
    expect(f.runs[0]!.evaluations).toStrictEqual([{ round: R, afterRound: 0, status: "completed", survivors: 4, counts: [3, 4], noiseMultiplier: 1, worstDeviceEpsilon: worst }]);
    expect(worst).toBeGreaterThan(deviceEpsilon([ev], 1e-6));
    expect(f.devices.map((d) => [d.deviceId, d.rounds])).toEqual([["dev-1", 3], ["dev-2", 3], ["dev-3", 3], ["dev-4", 2], ["dev-0", 2]]);
    const r1 = f.runs[0]!.rounds[1]!;
    expect(r1.worstDeviceEpsilon).toBe(deviceEpsilon([k.EVENT, ev, k.EVENT], 1e-6));
    // An evaluation claims no amplification: its pool is its cohort.
    expect(r1.populationEpsilon).toBe(populationEpsilonFixedSize([{ event: k.EVENT, eligible: 5, cohort: 5 }, { event: ev, eligible: 5, cohort: 5 }, { event: k.EVENT, eligible: 5, cohort: 5 }], 1e-6));
  });

  it("an evaluation without counts or noise multiplier records null and 0; an aborted one charges nobody", () => {
    const f = verifyLedger(k.ledger([k.launch("r1"), evaluation({ status: "aborted", mechanism: null, survivors: [] })]), { policy: k.POLICY });
    expect(f.violations).toEqual([]);
    expect(f.runs[0]!.evaluations).toStrictEqual([{ round: R, afterRound: 0, status: "aborted", survivors: 0, counts: null, noiseMultiplier: 0, worstDeviceEpsilon: 0 }]);
    expect(f.devices).toEqual([]);
    expect(verifyLedger(k.ledger([k.launch("r1")]), { policy: k.POLICY }).runs[0]).not.toHaveProperty("evaluations");
  });

  it("EVALUATION_MECHANISM for a mechanism other than the spec implies, or for a run that asks for none; MECHANISM and TOO_FEW_SURVIVORS as for rounds", () => {
    const wrong = { ...evEvent(5), devices: 2 };
    expect(verifyLedger(k.ledger([k.launch("r1"), evaluation({ mechanism: wrong }), ...[0, 1, 2, 3, 4].map((i) => evAttest(i, wrong))]), { policy: k.POLICY }).violations).toStrictEqual([
      { code: "EVALUATION_MECHANISM", line: 4, message: "run r1 evaluation 1000000: the recorded mechanism is not the one the run's evaluation spec implies for a cohort of 5" },
    ]);
    const specless = verifyLedger(ledger([launch("r1", { ...SPEC, rounds: 0 }), evaluation()])).violations.map((v) => [v.code, v.message]);
    expect(specless.slice(1)).toEqual([["EVALUATION_MECHANISM", "run r1 evaluation 1000000: the run's spec asks for no evaluation"]]);
    const plain = verifyLedger(ledger([launch("r1"), evaluation(), ...[0, 1, 2, 3, 4].map((i) => attestation("r1", R, i, { event: evEvent(5) }))])).violations;
    expect(plain).toStrictEqual([{ code: "EVALUATION_MECHANISM", line: 4, message: "run r1 evaluation 1000000: the run's spec asks for no evaluation" }]);
    expect(verifyLedger(k.ledger([k.launch("r1"), evaluation({ mechanism: { kind: "bogus" } })]), { policy: k.POLICY }).violations).toStrictEqual([{ code: "MECHANISM", line: 4, message: "run r1 evaluation 1000000: unknown mechanism 'bogus'" }]);
    const few = verifyLedger(k.ledger([k.launch("r1"), evaluation({ survivors: [0, 1, 2] }), ...[0, 1, 2].map((i) => evAttest(i))]), { policy: k.POLICY }).violations;
    expect(few).toStrictEqual([{ code: "TOO_FEW_SURVIVORS", line: 4, message: "run r1 evaluation 1000000: released with 3 survivors < minSurvivors 4" }]);
    const atFloor = verifyLedger(k.ledger([k.launch("r1"), evaluation({ survivors: [0, 1, 2, 3] }), ...[0, 1, 2, 3].map((i) => evAttest(i))]), { policy: k.POLICY }).violations;
    expect(atFloor).toEqual([]);
  });

  it("EVALUATION_MECHANISM when the spec's evaluation cannot be calibrated for the recorded cohort", () => {
    // A cohort of 40 tolerates ⌈0.1 · 40⌉ = 4 colluders: no fewer than minSurvivors 4, so no noise is assured.
    const cohort = Array.from({ length: 40 }, (_, i) => i);
    const problem = thrown(() => evEvent(40));
    const v = verifyLedger(k.ledger([k.launch("r1"), evaluation({ cohort, survivors: [0, 1, 2, 3, 4], mechanism: evEvent(5) })]), { policy: k.POLICY }).violations;
    expect(v).toStrictEqual([{ code: "EVALUATION_MECHANISM", line: 4, message: `run r1 evaluation 1000000: ${problem}` }]);
  });
});

describe("LedgerFormatError", () => {
  it("is named", () => {
    expect(new LedgerFormatError("x").name).toBe("LedgerFormatError");
  });
});
