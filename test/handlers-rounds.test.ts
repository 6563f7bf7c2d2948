/**
 * Issue #16: the device's round messages in coordinator/server/handlers.ts, in process — the
 * round reference, the byte fields and their exact lengths, the share and body bounds, and the
 * two paths that name a device in the ledger (a malformed unmasking share; a ConsistencyCheck
 * signature that does not verify). Each refusal is asserted with its status and text, and with
 * what the round was (not) handed. (SubmitMaskedInput's lengths are in server-mutants.test.ts.)
 */
import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { SecAggError } from "../shared/secagg/index.ts";
import { QUARANTINE_AFTER } from "../coordinator/state/offences.ts";
import { SECAGG_REFUSED } from "../coordinator/server/status-boundary.ts";
import { handlerHarness, type Recorded } from "./support/handler-harness.ts";
import { activeRoundFixture } from "./support/active-round-fixture.ts";
import { ActiveRound } from "../coordinator/rounds/active-round.ts";
import { PhaseGate } from "../coordinator/rounds/phase-gate.ts";
import { CohortTree } from "../shared/run/index.ts";

const S = grpc.status;
const REF = { runId: "run-r", round: 3 };
const ACK = { ok: true, detail: "" };

/** A harness whose active round records what it is handed; `behave` overrides its methods. */
function withRound(o: { phase?: string; gate?: boolean; behave?: Record<string, (...a: unknown[]) => unknown> } = {}) {
  const roundCalls: Recorded[] = [];
  const r = (name: string) => (...args: unknown[]) => {
    roundCalls.push([name, ...args]);
    return o.behave?.[name]?.(...args);
  };
  const round = {
    config: { runId: "run-r", round: 3, parameterCount: 100, secagg: { bits: 32 }, dp: {} },
    phase: o.phase ?? "advertise",
    gate: o.gate === false ? undefined : { settle: r("gate.settle") },
    memberIndex: (id: string) => (id === "dev-a" ? 4 : 9),
    decline: r("decline"),
    advertise: r("advertise"),
    shares: r("shares"),
    attest: r("attest"),
    maskedInput: r("maskedInput"),
    signSurvivors: r("signSurvivors"),
    unmask: r("unmask"),
    unmaskingSender: (id: string) => {
      roundCalls.push(["unmaskingSender", id]);
      o.behave?.unmaskingSender?.(id);
      return id === "dev-a" ? 4 : 9;
    },
  };
  const h = handlerHarness({
    activeRound: (ref: unknown) => {
      roundCalls.push(["activeRound", ref]);
      return round;
    },
  });
  return { h, roundCalls };
}

describe("the round reference every round message carries", () => {
  it("refuses a missing reference or run id, and a run id over 128 characters; takes one of exactly 128", async () => {
    const { h, roundCalls } = withRound();
    const decline = (ref: unknown) => h.unary("rounds", "Decline", "dev-a", { ref, reason: "x" });
    for (const ref of [null, undefined, { runId: "", round: 0 }]) {
      expect(await decline(ref), JSON.stringify(ref)).toEqual({ code: S.INVALID_ARGUMENT, details: "missing round reference (ref.run_id)" });
    }
    expect(await decline({ runId: "r".repeat(129), round: 0 })).toEqual({ code: S.INVALID_ARGUMENT, details: "run id too long" });
    expect(roundCalls).toEqual([]);
    expect(await decline({ runId: "r".repeat(128), round: 5 })).toEqual({ code: S.OK, details: "", value: ACK });
    expect(roundCalls).toEqual([["activeRound", { runId: "r".repeat(128), round: 5 }], ["decline", "dev-a", "x"]]);
  });

  it("asks the coordinator for that round, and lets its refusal through", async () => {
    const h = handlerHarness();
    const r = await h.unary("rounds", "Decline", "dev-a", { ref: REF, reason: "x" });
    expect(r.code).toBe(S.INTERNAL); // the harness's activeRound throws a plain Error
    expect(h.calls).toEqual([["activeRound", REF]]);
  });
});

describe("Rounds/Decline", () => {
  it("hands the round the device and its reason (the empty one when missing)", async () => {
    const { h, roundCalls } = withRound();
    expect(await h.unary("rounds", "Decline", "dev-a", { ref: REF, reason: "on battery" })).toEqual({ code: S.OK, details: "", value: ACK });
    expect(await h.unary("rounds", "Decline", "dev-b", { ref: REF })).toEqual({ code: S.OK, details: "", value: ACK });
    expect(roundCalls.filter((c) => c[0] === "decline")).toEqual([["decline", "dev-a", "on battery"], ["decline", "dev-b", ""]]);
  });
});

describe("Rounds/AdvertiseKeys", () => {
  const keys = () => ({ index: 4, cPk: Buffer.alloc(32, 1), sPk: Buffer.alloc(32, 2), selfMaskCommitment: Buffer.alloc(32, 3), signature: Buffer.alloc(64, 4) });

  it("hands the round the four byte fields and the index, copied", async () => {
    const { h, roundCalls } = withRound();
    expect(await h.unary("rounds", "AdvertiseKeys", "dev-a", { ref: REF, keys: keys() })).toEqual({ code: S.OK, details: "", value: ACK });
    expect(roundCalls).toEqual([
      ["activeRound", REF],
      ["advertise", "dev-a", { index: 4, cPk: new Uint8Array(32).fill(1), sPk: new Uint8Array(32).fill(2), selfMaskCommitment: new Uint8Array(32).fill(3), signature: new Uint8Array(64).fill(4) }],
    ]);
  });

  it("refuses missing keys, and each field missing or of the wrong length, naming it", async () => {
    const { h, roundCalls } = withRound();
    const send = (k: unknown) => h.unary("rounds", "AdvertiseKeys", "dev-a", { ref: REF, keys: k });
    expect(await send(null)).toEqual({ code: S.INVALID_ARGUMENT, details: "missing keys" });
    for (const [field, name, len] of [["cPk", "c_pk", 32], ["sPk", "s_pk", 32], ["selfMaskCommitment", "self_mask_commitment", 32], ["signature", "signature", 64]] as const) {
      expect(await send({ ...keys(), [field]: Buffer.alloc(0) }), field).toEqual({ code: S.INVALID_ARGUMENT, details: `missing ${name}` });
      expect(await send({ ...keys(), [field]: undefined }), field).toEqual({ code: S.INVALID_ARGUMENT, details: `missing ${name}` });
      expect(await send({ ...keys(), [field]: Buffer.alloc(len - 1, 1) }), field).toEqual({ code: S.INVALID_ARGUMENT, details: `${name} must be ${len} bytes, got ${len - 1}` });
      expect(await send({ ...keys(), [field]: Buffer.alloc(len + 1, 1) }), field).toEqual({ code: S.INVALID_ARGUMENT, details: `${name} must be ${len} bytes, got ${len + 1}` });
    }
    // Checked before the round is even looked up.
    expect(roundCalls).toEqual([]);
  });

  it("checks the keys before the reference", async () => {
    const { h } = withRound();
    expect(await h.unary("rounds", "AdvertiseKeys", "dev-a", { ref: null, keys: null })).toEqual({ code: S.INVALID_ARGUMENT, details: "missing keys" });
    expect(await h.unary("rounds", "AdvertiseKeys", "dev-a", { ref: null, keys: keys() })).toEqual({ code: S.INVALID_ARGUMENT, details: "missing round reference (ref.run_id)" });
  });
});

describe("Rounds/ShareKeys", () => {
  const share = (from: number, to: number, bytes = 48) => ({ from, to, ciphertext: Buffer.alloc(bytes, to) });

  it("hands the round each share's endpoints and ciphertext; no shares is an empty list", async () => {
    const { h, roundCalls } = withRound();
    expect(await h.unary("rounds", "ShareKeys", "dev-a", { ref: REF, shares: [share(4, 1), share(4, 2, 4096)] })).toEqual({ code: S.OK, details: "", value: ACK });
    expect(await h.unary("rounds", "ShareKeys", "dev-b", { ref: REF })).toEqual({ code: S.OK, details: "", value: ACK });
    expect(roundCalls.filter((c) => c[0] === "shares")).toEqual([
      ["shares", "dev-a", [{ from: 4, to: 1, ciphertext: new Uint8Array(48).fill(1) }, { from: 4, to: 2, ciphertext: new Uint8Array(4096).fill(2) }]],
      ["shares", "dev-b", []],
    ]);
  });

  it("refuses a share whose ciphertext is missing, empty or over 4096 bytes, naming its position", async () => {
    const { h, roundCalls } = withRound();
    const send = (shares: unknown[]) => h.unary("rounds", "ShareKeys", "dev-a", { ref: REF, shares });
    expect(await send([share(4, 1), { from: 4, to: 2, ciphertext: undefined }])).toEqual({ code: S.INVALID_ARGUMENT, details: "share 1: ciphertext missing or over 4096 bytes" });
    expect(await send([{ from: 4, to: 2, ciphertext: Buffer.alloc(0) }])).toEqual({ code: S.INVALID_ARGUMENT, details: "share 0: ciphertext missing or over 4096 bytes" });
    expect(await send([share(4, 1), share(4, 2), share(4, 3, 4097)])).toEqual({ code: S.INVALID_ARGUMENT, details: "share 2: ciphertext missing or over 4096 bytes" });
    expect(roundCalls).toEqual([]);
  });

  it("takes 100 000 shares in one message and refuses one more", async () => {
    const { h, roundCalls } = withRound();
    const one = Buffer.alloc(8, 1);
    const many = (n: number) => Array.from({ length: n }, (_, i) => ({ from: 0, to: i, ciphertext: one }));
    expect(await h.unary("rounds", "ShareKeys", "dev-a", { ref: REF, shares: many(100_001) })).toEqual({ code: S.INVALID_ARGUMENT, details: "too many shares (100001)" });
    expect(roundCalls).toEqual([]);
    expect((await h.unary("rounds", "ShareKeys", "dev-a", { ref: REF, shares: many(100_000) })).code).toBe(S.OK);
    expect((roundCalls[1]![2] as unknown[]).length).toBe(100_000);
  });
});

describe("Rounds/SubmitAttestation", () => {
  it("hands the round the body and the 64-byte signature", async () => {
    const { h, roundCalls } = withRound();
    expect(await h.unary("rounds", "SubmitAttestation", "dev-a", { ref: REF, bodyJson: '{"a":1}', signature: Buffer.alloc(64, 9) })).toEqual({ code: S.OK, details: "", value: ACK });
    expect(roundCalls).toEqual([["activeRound", REF], ["attest", "dev-a", '{"a":1}', new Uint8Array(64).fill(9)]]);
  });

  it("takes a body of exactly 16 KiB; refuses an empty or longer one, and a bad signature", async () => {
    const { h, roundCalls } = withRound();
    const send = (bodyJson: string | undefined, signature: Buffer | null = Buffer.alloc(64)) => h.unary("rounds", "SubmitAttestation", "dev-a", { ref: REF, bodyJson, signature: signature ?? undefined });
    const big = { code: S.INVALID_ARGUMENT, details: "attestation body missing or over 16 KiB" };
    expect(await send("")).toEqual(big);
    expect(await send(undefined)).toEqual(big);
    expect(await send("x".repeat(16 * 1024 + 1))).toEqual(big);
    expect(roundCalls).toEqual([]);
    expect(await send("{}", null)).toEqual({ code: S.INVALID_ARGUMENT, details: "missing signature" });
    expect(await send("{}", Buffer.alloc(63))).toEqual({ code: S.INVALID_ARGUMENT, details: "signature must be 64 bytes, got 63" });
    expect(roundCalls.filter((c) => c[0] === "attest")).toEqual([]);
    expect((await send("x".repeat(16 * 1024))).code).toBe(S.OK);
    expect(roundCalls.filter((c) => c[0] === "attest")).toHaveLength(1);
  });
});

describe("Rounds/SubmitMaskedInput", () => {
  it("refuses a message without data as zero bytes", async () => {
    const { h, roundCalls } = withRound();
    expect(await h.unary("rounds", "SubmitMaskedInput", "dev-a", { ref: REF, bits: 32, length: 128 })).toEqual({ code: S.INVALID_ARGUMENT, details: "masked input data is 0 bytes, expected 512" });
    expect(roundCalls).toEqual([["activeRound", REF]]);
  });

  it("answers the acknowledgement after handing the vector to the round", async () => {
    const { h, roundCalls } = withRound();
    expect(await h.unary("rounds", "SubmitMaskedInput", "dev-b", { ref: REF, bits: 32, length: 128, data: Buffer.alloc(512, 1) })).toEqual({ code: S.OK, details: "", value: ACK });
    expect(roundCalls.map((c) => [c[0], c[1]])).toEqual([["activeRound", REF], ["maskedInput", "dev-b"]]);
  });
});

describe("Rounds/SignSurvivors", () => {
  const badSig = () => {
    throw new SecAggError("BAD_SIGNATURE", "does not verify over the survivors");
  };

  it("hands the round the 64-byte signature; refuses a missing or short one before the round sees it", async () => {
    const { h, roundCalls } = withRound({ phase: "consistency" });
    expect(await h.unary("rounds", "SignSurvivors", "dev-a", { ref: REF, signature: Buffer.alloc(64, 5) })).toEqual({ code: S.OK, details: "", value: ACK });
    expect(await h.unary("rounds", "SignSurvivors", "dev-a", { ref: REF })).toEqual({ code: S.INVALID_ARGUMENT, details: "missing signature" });
    expect(await h.unary("rounds", "SignSurvivors", "dev-a", { ref: REF, signature: Buffer.alloc(65) })).toEqual({ code: S.INVALID_ARGUMENT, details: "signature must be 64 bytes, got 65" });
    expect(roundCalls.filter((c) => c[0] !== "activeRound")).toEqual([["signSurvivors", "dev-a", new Uint8Array(64).fill(5)]]);
    // A refused signature field is not an offence.
    expect(h.calls).toEqual([]);
  });

  it("a signature that does not verify names the device in the ledger and stops waiting for it in the consistency phase", async () => {
    const { h, roundCalls } = withRound({ phase: "consistency", behave: { signSurvivors: badSig } });
    expect(await h.unary("rounds", "SignSurvivors", "dev-a", { ref: REF, signature: Buffer.alloc(64) })).toEqual({ code: S.INVALID_ARGUMENT, details: SECAGG_REFUSED });
    expect(h.calls).toEqual([["ledger.offence", { deviceId: "dev-a", runId: "run-r", round: 3, reason: "its ConsistencyCheck signature does not verify over the survivor set it was shown" }]]);
    expect(roundCalls.filter((c) => c[0] === "gate.settle")).toEqual([["gate.settle", 4]]);
  });

  it("past the consistency phase the offence is still recorded but no gate is settled; without a gate nothing breaks", async () => {
    const late = withRound({ phase: "unmask", behave: { signSurvivors: badSig } });
    expect((await late.h.unary("rounds", "SignSurvivors", "dev-a", { ref: REF, signature: Buffer.alloc(64) })).code).toBe(S.INVALID_ARGUMENT);
    expect(late.h.calls.map((c) => c[0])).toEqual(["ledger.offence"]);
    expect(late.roundCalls.filter((c) => c[0] === "gate.settle")).toEqual([]);
    const gateless = withRound({ phase: "consistency", gate: false, behave: { signSurvivors: badSig } });
    expect(await gateless.h.unary("rounds", "SignSurvivors", "dev-a", { ref: REF, signature: Buffer.alloc(64) })).toEqual({ code: S.INVALID_ARGUMENT, details: SECAGG_REFUSED });
    expect(gateless.h.calls.map((c) => c[0])).toEqual(["ledger.offence"]);
  });

  it("any other refusal of the round is passed through and names nobody", async () => {
    const other = withRound({ phase: "consistency", behave: { signSurvivors: () => { throw new SecAggError("DUPLICATE", "signed twice"); } } });
    expect(await other.h.unary("rounds", "SignSurvivors", "dev-a", { ref: REF, signature: Buffer.alloc(64) })).toEqual({ code: S.INVALID_ARGUMENT, details: SECAGG_REFUSED });
    // Not secure aggregation's: an error that merely carries the same code is not an offence.
    const plain = withRound({ phase: "consistency", behave: { signSurvivors: () => { throw Object.assign(new Error("BAD_SIGNATURE"), { code: "BAD_SIGNATURE" }); } } });
    expect((await plain.h.unary("rounds", "SignSurvivors", "dev-a", { ref: REF, signature: Buffer.alloc(64) })).code).toBe(S.INTERNAL);
    for (const x of [other, plain]) {
      expect(x.h.calls).toEqual([]);
      expect(x.roundCalls.filter((c) => c[0] === "gate.settle")).toEqual([]);
    }
  });

  it("the third offence quarantines the device: its stream is ended through the hub", async () => {
    const { h } = withRound({ phase: "consistency", behave: { signSurvivors: badSig } });
    for (let i = 0; i < QUARANTINE_AFTER; i++) await h.unary("rounds", "SignSurvivors", "dev-a", { ref: REF, signature: Buffer.alloc(64) });
    expect(h.calls.map((c) => c[0])).toEqual([...Array<string>(QUARANTINE_AFTER).fill("ledger.offence"), "hub.remove"]);
  });
});

describe("Rounds/SubmitUnmasking", () => {
  const ok = (owner: number) => ({ owner, share: Buffer.alloc(32, owner + 1) });
  /** Not a field element (the field is mod 2^521 − 1): the largest 66-byte number. */
  const notField = (owner: number) => ({ owner, share: Buffer.alloc(66, 0xff) });

  it("hands the round both share lists, from the device's member index", async () => {
    const { h, roundCalls } = withRound({ phase: "unmask" });
    expect(await h.unary("rounds", "SubmitUnmasking", "dev-a", { ref: REF, selfMaskShares: [ok(1)], secretKeyShares: [ok(2), ok(3)] })).toEqual({ code: S.OK, details: "", value: ACK });
    expect(await h.unary("rounds", "SubmitUnmasking", "dev-b", { ref: REF })).toEqual({ code: S.OK, details: "", value: ACK });
    expect(roundCalls.filter((c) => c[0] === "unmask")).toEqual([
      ["unmask", "dev-a", { from: 4, selfMaskShares: [{ owner: 1, share: new Uint8Array(32).fill(2) }], secretKeyShares: [{ owner: 2, share: new Uint8Array(32).fill(3) }, { owner: 3, share: new Uint8Array(32).fill(4) }] }],
      ["unmask", "dev-b", { from: 9, selfMaskShares: [], secretKeyShares: [] }],
    ]);
    expect(h.calls).toEqual([]);
  });

  it("refuses an empty share in either list as missing", async () => {
    const { h, roundCalls } = withRound({ phase: "unmask" });
    for (const req of [{ selfMaskShares: [ok(1), { owner: 2, share: Buffer.alloc(0) }] }, { secretKeyShares: [{ owner: 2 }] }]) {
      expect(await h.unary("rounds", "SubmitUnmasking", "dev-a", { ref: REF, ...req })).toEqual({ code: S.INVALID_ARGUMENT, details: "missing share" });
    }
    expect(roundCalls.filter((c) => c[0] !== "activeRound")).toEqual([]);
  });

  it("a share that is not a field element names the device in the ledger and settles it in the unmask phase", async () => {
    for (const req of [{ selfMaskShares: [ok(1), notField(6)] }, { secretKeyShares: [notField(6)] }]) {
      const { h, roundCalls } = withRound({ phase: "unmask" });
      expect(await h.unary("rounds", "SubmitUnmasking", "dev-a", { ref: REF, ...req })).toEqual({
        code: S.INVALID_ARGUMENT,
        details: "unmasking share for member 6 is not a field element: this device is named in the ledger",
      });
      expect(h.calls).toEqual([["ledger.offence", { deviceId: "dev-a", runId: "run-r", round: 3, reason: "unmasking share for member 6 is not a field element" }]]);
      expect(roundCalls.filter((c) => c[0] !== "activeRound")).toEqual([["unmaskingSender", "dev-a"], ["gate.settle", 4]]);
    }
  });

  it("a device the round does not expect in the unmask phase is refused before its shares are judged: no offence, nothing settled", async () => {
    const notExpected = () => {
      throw new SecAggError("ABORTED", "stand-in for the round's refusal");
    };
    const early = withRound({ phase: "consistency", behave: { unmaskingSender: notExpected } });
    const r = await early.h.unary("rounds", "SubmitUnmasking", "dev-a", { ref: REF, selfMaskShares: [notField(2)] });
    expect(r.code).not.toBe(S.OK);
    expect(r.details).not.toMatch(/named in the ledger/);
    expect(early.h.calls).toEqual([]);
    expect(early.roundCalls.filter((c) => c[0] !== "activeRound")).toEqual([["unmaskingSender", "dev-a"]]);
    const gateless = withRound({ phase: "unmask", gate: false });
    expect((await gateless.h.unary("rounds", "SubmitUnmasking", "dev-a", { ref: REF, selfMaskShares: [notField(2)] })).details).toMatch(/^unmasking share for member 2 is not a field element/);
    expect(gateless.roundCalls.filter((c) => c[0] !== "activeRound")).toEqual([["unmaskingSender", "dev-a"]]);
  });

  it("with a real round: a non-member, or a member before the unmask phase, is never named; a member is named once per round", async () => {
    const { config, ids } = activeRoundFixture({ devices: 3, runId: "run-r", round: 3, modelHash: "ab".repeat(32) });
    const active = new ActiveRound(config, new CohortTree(ids.map((k) => k.publicRaw)), ["dev-a", "dev-x", "dev-y"]);
    active.gate = new PhaseGate([0, 1, 2], Date.now() + 60_000);
    const h = handlerHarness({ activeRound: () => active });
    const bad = { ref: REF, selfMaskShares: [notField(1)] };
    for (let i = 0; i < 5; i++) expect((await h.unary("rounds", "SubmitUnmasking", "dev-b", bad)).code).toBe(S.PERMISSION_DENIED);
    expect((await h.unary("rounds", "SubmitUnmasking", "dev-a", bad))).toMatchObject({ code: S.FAILED_PRECONDITION, details: "round run-r/3 is in phase advertise, not unmask" });
    expect(h.calls.filter((c) => c[0] === "ledger.offence")).toEqual([]);
    active.gate.finish();
    active.phase = "unmask";
    active.gate = new PhaseGate([0, 1, 2], Date.now() + 60_000);
    expect((await h.unary("rounds", "SubmitUnmasking", "dev-a", bad)).details).toBe("unmasking share for member 1 is not a field element: this device is named in the ledger");
    expect((await h.unary("rounds", "SubmitUnmasking", "dev-a", bad))).toMatchObject({ code: S.FAILED_PRECONDITION, details: expect.stringMatching(/device index 0 is not expected in phase unmask/) });
    expect(h.calls.filter((c) => c[0] === "ledger.offence")).toHaveLength(1);
    active.gate.finish();
  });
});
