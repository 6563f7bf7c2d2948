/**
 * ActiveRound's checks on messages into a running round, and PhaseGate (issue #16: the phase
 * check and the deadline could be deleted without a test failing). Each refusal is asserted with
 * the gRPC status the caller would get (through status-boundary.ts), then the control passes.
 */
import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { signBytes } from "../shared/crypto/index.ts";
import { fromSigned } from "../shared/modular/index.ts";
import { attestationBody, CohortTree, dpInputsFor } from "../shared/run/index.ts";
import { ActiveRound } from "../coordinator/rounds/active-round.ts";
import { calibrateDistributedDp, roundEvent } from "../shared/dp/index.ts";
import { PhaseGate } from "../coordinator/rounds/phase-gate.ts";
import { activeRoundFixture, refusal } from "./support/active-round-fixture.ts";

const round = () => activeRoundFixture({ devices: 3, runId: "run-m", round: 4, modelHash: "ab".repeat(32) });

const keys = (index: number) => ({ index, cPk: new Uint8Array(32), sPk: new Uint8Array(32), selfMaskCommitment: new Uint8Array(32), signature: new Uint8Array(64) });

describe("ActiveRound is built only for the cohort its signed config commits to", () => {
  it("refuses another cohort tree, a config of another size, or a device list of another length", () => {
    const { config, ids } = round();
    const devices = ["dev-0", "dev-1", "dev-2"];
    const swapped = new CohortTree([ids[1]!.publicRaw, ids[0]!.publicRaw, ids[2]!.publicRaw]);
    expect(() => new ActiveRound(config, swapped, devices)).toThrow("round run-m/4: the signed config commits to another cohort than the one given");
    const tree = new CohortTree(ids.map((k) => k.publicRaw));
    expect(() => new ActiveRound({ ...config, cohort: { ...config.cohort, size: 4 } }, tree, devices)).toThrow(/commits to another cohort/);
    expect(() => new ActiveRound(config, tree, devices.slice(0, 2))).toThrow("round run-m/4: 2 device ids for a cohort of 3");
    const active = new ActiveRound(config, tree, devices);
    expect(active.cohortDevices()).toEqual(devices);
    expect(active.cohortIndices()).toEqual([0, 1, 2]);
    expect(active.memberProof(2)).toEqual({ index: 2, identityPublicKey: Buffer.from(ids[2]!.publicRaw), path: tree.proof(2) });
  });
});

describe("ActiveRound refuses messages that do not belong to the current phase", () => {
  it("a device outside the cohort, or claiming another index", () => {
    const { active } = round();
    active.gate = new PhaseGate([0, 1, 2], Date.now() + 60_000);
    expect(refusal(() => active.advertise("stranger", keys(0)))).toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: expect.stringMatching(/not in the cohort of round run-m\/4/) });
    expect(refusal(() => active.advertise("dev-1", keys(2)))).toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: expect.stringMatching(/claim index 2, caller is 1/) });
    expect(refusal(() => active.unmask("dev-1", { from: 0, selfMaskShares: [], secretKeyShares: [] }))).toMatchObject({ code: grpc.status.PERMISSION_DENIED });
    expect(active.memberIndex("dev-2")).toBe(2);
    active.gate.finish();
  });

  it("every phase's message is refused in every other phase", () => {
    const { active } = round();
    active.gate = new PhaseGate([0, 1, 2], Date.now() + 60_000);
    const y = fromSigned(32, [0]);
    const calls: [string, () => void][] = [
      ["advertise", () => active.advertise("dev-0", keys(0))],
      ["share", () => active.shares("dev-0", [])],
      ["masked-input", () => active.maskedInput("dev-0", y)],
      ["consistency", () => active.signSurvivors("dev-0", new Uint8Array(64))],
      ["unmask", () => active.unmask("dev-0", { from: 0, selfMaskShares: [], secretKeyShares: [] })],
    ];
    for (const phase of ["advertise", "share", "masked-input", "consistency", "unmask", "finished"] as const) {
      active.phase = phase;
      for (const [p, call] of calls) {
        if (p === phase) continue;
        expect(refusal(call), `${p} in phase ${phase}`).toEqual({ code: grpc.status.FAILED_PRECONDITION, details: `round run-m/4 is in phase ${phase}, not ${p}` });
      }
    }
    active.gate.finish();
  });

  it("a device the phase no longer expects (answered, dropped or not a survivor) is refused", () => {
    const { active } = round();
    active.gate = new PhaseGate([0, 1], Date.now() + 60_000);
    expect(refusal(() => active.advertise("dev-2", keys(2)))).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: expect.stringMatching(/device index 2 is not expected in phase advertise/) });
    active.dropDevice("dev-1");
    expect(active.gate.expects(1)).toBe(false);
    expect(refusal(() => active.advertise("dev-1", keys(1)))).toMatchObject({ code: grpc.status.FAILED_PRECONDITION });
    active.dropDevice("stranger"); // not a member: nothing happens
    expect(active.gate.expects(0)).toBe(true);
    active.gate.finish();
  });

  it("declines only during the invitation, once, with the reason cut to 200 characters", () => {
    const { active } = round();
    active.gate = new PhaseGate([0, 1, 2], Date.now() + 60_000);
    active.decline("dev-0", "x".repeat(500));
    expect(active.declines.get(0)).toBe("x".repeat(200));
    expect(active.gate.expects(0)).toBe(false);
    expect(refusal(() => active.decline("dev-0", "again"))).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: expect.stringMatching(/already answered/) });
    active.phase = "share";
    expect(refusal(() => active.decline("dev-1", "late"))).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: expect.stringMatching(/past the invitation/) });
    active.gate.finish();
  });

  it("attestations: only in share or masked-input, signed by the member, naming this device, run and round, once", () => {
    const { active, ids } = round();
    active.gate = new PhaseGate([0, 1, 2], Date.now() + 60_000);
    const body = (o: object) => JSON.stringify({ deviceId: "dev-0", runId: "run-m", round: 4, ...o });
    const sig = (b: string, i = 0) => signBytes(ids[i]!.privateKey, b);
    for (const phase of ["advertise", "consistency", "unmask", "finished"] as const) {
      active.phase = phase;
      expect(refusal(() => active.attest("dev-0", body({}), sig(body({}))))).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: expect.stringMatching(/does not take attestations/) });
    }
    active.phase = "share";
    expect(refusal(() => active.attest("dev-0", body({}), sig(body({}), 1)))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/does not verify/) });
    expect(refusal(() => active.attest("dev-0", "{not json", sig("{not json")))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: "attestation body is not JSON" });
    for (const other of [{ deviceId: "dev-1" }, { runId: "run-n" }, { round: 5 }]) {
      expect(refusal(() => active.attest("dev-0", body(other), sig(body(other))))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: "attestation names another device, run or round" });
    }
    // Right names but none of the round's parameters: refused for the parameters, and nothing is recorded.
    expect(refusal(() => active.attest("dev-0", body({}), sig(body({}))))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/does not match round run-m\/4/) });
    expect(active.attestations.size).toBe(0);
    active.gate.finish();
  });

  it("takes the round's own attestation in share or masked-input, once per device", () => {
    const { active, ids, config } = round();
    active.gate = new PhaseGate([0, 1, 2], Date.now() + 60_000);
    const event = roundEvent(calibrateDistributedDp(dpInputsFor(config)));
    const json = (i: number) => JSON.stringify(attestationBody(config, `dev-${i}`, event));
    active.phase = "share";
    active.attest("dev-0", json(0), signBytes(ids[0]!.privateKey, json(0)));
    expect(refusal(() => active.attest("dev-0", json(0), signBytes(ids[0]!.privateKey, json(0))))).toMatchObject({ code: grpc.status.ALREADY_EXISTS, details: expect.stringMatching(/device index 0 already attested round run-m\/4/) });
    active.phase = "masked-input";
    active.attest("dev-1", json(1), signBytes(ids[1]!.privateKey, json(1)));
    expect([...active.attestations.keys()]).toEqual([0, 1]);
    expect(active.attestations.get(1)).toEqual({ deviceId: "dev-1", identityPublicKey: Buffer.from(ids[1]!.publicRaw).toString("base64"), body: json(1), signature: signBytes(ids[1]!.privateKey, json(1)) });
    // Device 2 has not attested: its masked input is refused.
    expect(refusal(() => active.maskedInput("dev-2", fromSigned(32, [0])))).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: expect.stringMatching(/before an accepted attestation/) });
    active.gate.finish();
  });
});

describe("PhaseGate", () => {
  it("ends when every expected device has answered or dropped, and reports which were still expected", async () => {
    const gate = new PhaseGate([3, 5], Date.now() + 600_000);
    let ended = false;
    void gate.done.then(() => (ended = true));
    expect(gate.settle(3)).toBe(true);
    expect(gate.settle(3)).toBe(false);
    expect(gate.expects(5)).toBe(true);
    await Promise.resolve();
    expect(ended).toBe(false);
    expect(gate.settle(5)).toBe(true);
    await gate.done;
    expect(ended).toBe(true);
  });

  it("ends at its deadline with devices still pending (a silent device does not hold the round)", async () => {
    const gate = new PhaseGate([1, 2], Date.now() - 1);
    await gate.done;
    expect(gate.expects(1)).toBe(true);
    expect(gate.expects(2)).toBe(true);
  });

  it("with nobody expected, is done at once", async () => {
    await new PhaseGate([], Date.now() + 600_000).done;
  });
});
