/**
 * RoundParticipant (client/participant/round-participant.ts), the device's side of a round, in
 * process: five devices and the real SecAggServer play a whole round through the messages the
 * coordinator would push, and the released sum is decoded with the round's own DP config. Each
 * defence the device has against a bad or hostile coordinator message is driven on its own:
 * what it refuses, what it then does not send, and that it never throws. These tests are what
 * the mutation run of `client/participant` relies on (the gRPC and daemon tests that also reach
 * this code run in child processes or need Redis, so Stryker cannot use them).
 */
import { describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { generateEd25519, publicKeyFromRaw, verifyBytes } from "../shared/crypto/index.ts";
import { aggregationLength, attestationBody, CohortTree, dpInputsFor, roundDpEvent, signRoundConfig, type RoundConfig } from "../shared/run/index.ts";
import { chooseParams, SecAggDevice, SecAggServer, wireAdvertisedKeys, type SecAggConfig } from "../shared/secagg/index.ts";
import { Writable } from "node:stream";
import { tmpdir } from "node:os";
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pino, { type Logger } from "pino";
import { evalInput } from "../client/participant/eval-input.ts";
import { calibrateDistributedDp, decodeAggregate } from "../shared/dp/index.ts";
import { canonicalJson } from "../shared/crypto/index.ts";
import { encodeEvalCounts, type EvalCounts } from "../shared/eval/index.ts";
import { RoundParticipant, type LocalUpdate, type ParticipantEvent, type ParticipantHooks, type RoundPhase } from "../client/participant/round-participant.ts";
import { BudgetRecord } from "../client/participant/budget-record.ts";
import type { DeviceLimits } from "../client/participant/device-guard.ts";
import type { CoordinatorClient, ServerEvent } from "../client/transport/coordinator-client.ts";

const coordinator = generateEd25519();
const N = 5;
const ids = Array.from({ length: N }, () => generateEd25519());
const ALL = ids.map((_, i) => i);
const tree = new CohortTree(ids.map((k) => k.publicRaw));
/** What the coordinator sends a peer about member `i`: its committed identity key and the proof. */
const proofOf = (i: number) => ({ index: i, identityPublicKey: Buffer.from(ids[i]!.publicRaw), path: tree.proof(i) });
const D = 16;
const weights = new Float32Array(D).map((_, i) => i / D);
const checkpoint = Buffer.from(weights.buffer);
const params = chooseParams({ cohortSize: N, dropoutFraction: 0.1, corruptFraction: 0.1, minSurvivors: 2 });
const runId = "run-participant";
const ref = { runId, round: 0 };
const OPEN_LIMITS: DeviceLimits = { maxDeviceEpsilon: Infinity, delta: 1e-5, minNoiseMultiplier: 0, minSurvivors: 2 };

function config(o: { attempt?: number; noiseMultiplier?: number; clip?: number; evaluation?: boolean } = {}): RoundConfig {
  const attempt = o.attempt ?? 0;
  return {
    protocol: o.evaluation ? "tacit-eval-v1" : "tacit-round-v1", runId, round: 0, attempt,
    modelHash: createHash("sha256").update(checkpoint).digest("hex"), parameterCount: D,
    model: { version: 1, vocabBuckets: 16, window: 2, embedDim: 4, hidden: 8, sessionGapSeconds: 1800 },
    training: { localEpochs: 1, maxLocalSteps: 1, batchSize: 1, learningRate: 0.1, optimizer: "sgd", seed: attempt, ...(o.evaluation ? { heldOutFraction: 0.1 } : {}) },
    dp: { mechanism: "ddgauss", clip: o.clip ?? 100, noiseMultiplier: o.noiseMultiplier ?? 0, minSurvivors: 2, expectedSurvivors: N, colluders: params.colluders, delta: 1e-6, rotationSeed: Buffer.alloc(32, 1).toString("base64") },
    secagg: { bits: 32, threshold: params.threshold, degree: params.degree, mode: params.mode, roundSeed: Buffer.alloc(32, attempt + 7).toString("base64"), guarantee: params.guarantee },
    signals: ["commit"],
    cohort: tree.commitment,
    populationSize: N,
    deadlines: { advertise: 1, share: 2, maskedInput: 3, unmask: 4 },
    issuedAt: 0,
    ...(o.evaluation ? { evaluation: { afterRound: 0, maxExamplesPerDevice: 100, noiseMultiplier: 0 } } : {}),
  };
}

function invite(cfg: RoundConfig, index: number, o: { badSignature?: boolean; checkpoint?: Buffer; label?: { runId: string; round: number }; cohortPath?: Buffer[] } = {}): ServerEvent {
  const signed = signRoundConfig(cfg, coordinator.privateKey);
  const signature = Buffer.from(signed.signature);
  if (o.badSignature) signature[5]! ^= 1;
  const cohortPath = o.cohortPath ?? (index < N ? tree.proof(index) : []);
  return { invite: { ref: o.label ?? ref, attempt: cfg.attempt, configJson: signed.json, configSignature: signature, checkpoint: o.checkpoint ?? checkpoint, index, cohortPath } } as ServerEvent;
}

/** A roster as the coordinator sends it: the advertisements, each with its member's cohort proof. */
function rosterEvent(advertised: number[], keys: Wire[]): ServerEvent {
  return { roster: { ref, advertised, keys, members: keys.map((k) => proofOf(k.index)) } } as ServerEvent;
}
const wireRoster = (server: SecAggServer, i: number): Wire[] => server.rosterFor(i).map((k) => ({ ...k, cPk: Buffer.from(k.cPk), sPk: Buffer.from(k.sPk), selfMaskCommitment: Buffer.from(k.selfMaskCommitment), signature: Buffer.from(k.signature) }));

interface Call {
  service: string;
  name: string;
  req: Record<string, unknown>;
}

interface Device {
  p: RoundParticipant;
  calls: Call[];
  events: ParticipantEvent[];
  budget: BudgetRecord;
  /** Budget entries as they were when each call left the device. */
  budgetAtCall: number[];
  drops: RoundPhase[];
}

const constant = (value: number) => async (cfg: RoundConfig): Promise<LocalUpdate> => ({ delta: new Float32Array(cfg.parameterCount).fill(value), loss: 1.5, examples: 7 });

function device(index: number, hooks: Partial<ParticipantHooks> = {}, limits: DeviceLimits = OPEN_LIMITS): Device {
  const d: Omit<Device, "p"> = { calls: [], events: [], budget: new BudgetRecord(), budgetAtCall: [], drops: [] };
  const p = participant(d, index, { onEvent: (e) => d.events.push(e), onDrop: (_c, phase) => d.drops.push(phase), ...hooks }, { limits });
  return { ...d, p };
}

/**
 * A RoundParticipant on `d`'s recording transport with exactly the hooks given (only `train`
 * defaults): for the tests of what a device does when an optional hook or a logger is absent.
 */
function participant(d: Pick<Device, "calls" | "budgetAtCall" | "budget">, index: number, hooks: Partial<ParticipantHooks>, o: { log?: Logger; budget?: BudgetRecord; limits?: DeviceLimits } = {}): RoundParticipant {
  return new RoundParticipant({
    deviceId: `dev-${index}`, identity: ids[index]!, coordinatorPublicKey: coordinator.publicRaw, client: clientOf(d), budget: o.budget ?? d.budget, limits: o.limits ?? OPEN_LIMITS,
    ...(o.log ? { log: o.log } : {}),
    hooks: { train: constant(index + 1), ...hooks },
  });
}

/** A recording transport: every call the device makes, and its budget's size as the call left. */
function clientOf(d: Pick<Device, "calls" | "budgetAtCall" | "budget">): CoordinatorClient {
  return {
    unary: async (service: string, name: string, req: Record<string, unknown>) => {
      d.calls.push({ service, name, req });
      d.budgetAtCall.push(d.budget.list().length);
      return {};
    },
  } as unknown as CoordinatorClient;
}

const names = (d: Device): string[] => d.calls.map((c) => c.name);
const lastCall = (d: Device, name: string): Record<string, unknown> => [...d.calls].reverse().find((c) => c.name === name)!.req;
const errors = (d: Device): string[] => d.events.flatMap((e) => (e.type === "error" ? [e.message] : []));

function secaggConfig(cfg: RoundConfig): SecAggConfig {
  return { runId: cfg.runId, round: cfg.round, attempt: cfg.attempt, bits: cfg.secagg.bits, vectorLength: aggregationLength(cfg), threshold: cfg.secagg.threshold, degree: cfg.secagg.degree, roundSeed: Buffer.from(cfg.secagg.roundSeed, "base64"), minSurvivors: cfg.dp.minSurvivors };
}

type Wire = { index: number; cPk: Buffer; sPk: Buffer; selfMaskCommitment: Buffer; signature: Buffer };
const fromWire = (k: Wire) => ({ index: k.index, cPk: new Uint8Array(k.cPk), sPk: new Uint8Array(k.sPk), selfMaskCommitment: new Uint8Array(k.selfMaskCommitment), signature: new Uint8Array(k.signature) });

/**
 * The coordinator's side of one round with the real SecAggServer: every message a device sends
 * is fed to it, and what it hands back is pushed to the devices. Returns the decoded sum.
 */
async function playRound(devices: Device[], cfg: RoundConfig): Promise<{ sum: Float32Array | undefined; raw: Uint32Array }> {
  const server = new SecAggServer(secaggConfig(cfg), ALL, new Map(ids.map((k, i) => [i, k.publicRaw])));
  const live = (): Device[] => devices.filter((d) => !d.drops.length);
  for (const [i, d] of devices.entries()) await d.p.handle(invite(cfg, i));
  for (const d of live()) server.receiveKeys(fromWire(lastCall(d, "AdvertiseKeys").keys as Wire));
  const advertised = server.closeAdvertise().map((k) => k.index);
  for (const [i, d] of devices.entries()) {
    if (!advertised.includes(i)) continue;
    await d.p.handle(rosterEvent(advertised, wireRoster(server, i)));
  }
  for (const [i, d] of devices.entries()) {
    if (!d.calls.some((c) => c.name === "ShareKeys")) continue;
    const shares = lastCall(d, "ShareKeys").shares as { from: number; to: number; ciphertext: Buffer }[];
    server.receiveShares(i, shares.map((s) => ({ ...s, ciphertext: new Uint8Array(s.ciphertext) })));
  }
  const inboxes = server.closeShareKeys();
  for (const [i, d] of devices.entries()) {
    const inbox = inboxes.get(i);
    if (inbox) await d.p.handle({ inbox: { ref, shares: inbox.map((s) => ({ ...s, ciphertext: Buffer.from(s.ciphertext) })) } } as ServerEvent);
  }
  for (const [i, d] of devices.entries()) {
    if (!d.calls.some((c) => c.name === "SubmitMaskedInput")) continue;
    const m = lastCall(d, "SubmitMaskedInput") as { bits: number; length: number; data: Buffer };
    const data = new Uint32Array(m.length);
    Buffer.from(data.buffer).set(m.data);
    server.receiveMaskedInput(i, { bits: m.bits, length: m.length, data });
  }
  const request = server.closeMaskedInput();
  for (const i of request.survivors) {
    const d = devices[i]!;
    const before = d.calls.length;
    await d.p.handle({ consistency: { ref, survivors: request.survivors } } as ServerEvent);
    if (d.calls.length > before) server.receiveConsistency({ index: i, signature: new Uint8Array(lastCall(d, "SignSurvivors").signature as Buffer) });
  }
  const signed = server.closeConsistency();
  for (const i of signed.survivors) {
    const d = devices[i]!;
    const before = d.calls.length;
    await d.p.handle({ unmask: { ref, survivors: signed.survivors, dropouts: signed.dropouts, signatures: signed.signatures!.map((s) => ({ index: s.index, signature: Buffer.from(s.signature) })) } } as ServerEvent);
    if (d.calls.length === before) continue;
    const u = lastCall(d, "SubmitUnmasking") as { selfMaskShares: { owner: number; share: Buffer }[]; secretKeyShares: { owner: number; share: Buffer }[] };
    const back = (l: { owner: number; share: Buffer }[]) => l.map((s) => ({ owner: s.owner, share: new Uint8Array(s.share) }));
    server.receiveUnmask({ from: i, selfMaskShares: back(u.selfMaskShares), secretKeyShares: back(u.secretKeyShares) });
  }
  const total = server.finish();
  const sum = cfg.evaluation ? undefined : decodeAggregate(total, calibrateDistributedDp(dpInputsFor(cfg)));
  for (const d of devices) await d.p.handle({ outcome: { ref, status: "completed", modelHash: "ab".repeat(32) } } as ServerEvent);
  return { sum, raw: total.data };
}

/** Decoding is exact up to the randomized rounding: 1/scale per coordinate. */
function expectSum(sum: Float32Array, expected: number[], cfg: RoundConfig): void {
  const tol = 2 / calibrateDistributedDp(dpInputsFor(cfg)).scale + 1e-6;
  expected.forEach((v, i) => expect(Math.abs(sum[i]! - v)).toBeLessThanOrEqual(tol * 3));
}

describe("a whole round through five RoundParticipants and the real SecAggServer", () => {
  it("releases the sum of the five updates; each device sends its messages in order, charges its budget before its input leaves, and records the outcome", async () => {
    const devices = ALL.map((i) => device(i));
    const cfg = config();
    const { sum } = await playRound(devices, cfg);
    expectSum(sum!, new Array(D).fill(1 + 2 + 3 + 4 + 5), cfg);
    for (const [i, d] of devices.entries()) {
      expect(names(d)).toEqual(["AdvertiseKeys", "ShareKeys", "SubmitAttestation", "SubmitMaskedInput", "SignSurvivors", "SubmitUnmasking"]);
      expect(d.calls.every((c) => c.service === "Rounds")).toBe(true);
      for (const c of d.calls) expect(c.req.ref).toEqual(ref);
      expect((lastCall(d, "AdvertiseKeys").keys as Wire).index).toBe(i);
      // Charged after the attestation, before the masked input.
      expect(d.budgetAtCall).toEqual([0, 0, 0, 1, 1, 1]);
      const [entry] = d.budget.list();
      expect(entry).toMatchObject({ runId, round: 0, attempt: 0, revealed: true, outcome: "completed", event: roundDpEvent(cfg) });
      expect(d.events.map((e) => e.type)).toEqual(["joined", "submitted", "outcome"]);
      expect(d.events[1]).toEqual({ type: "submitted", runId, round: 0, loss: 1.5, examples: 7, clipped: false });
      expect(d.events[2]).toEqual({ type: "outcome", runId, round: 0, status: "completed", modelHash: "ab".repeat(32) });
      const joined = d.events[0] as Extract<ParticipantEvent, { type: "joined" }>;
      expect(joined.projectedEpsilon).toBeGreaterThan(0);
      // The attestation is the canonical body of what this device added, signed by its identity.
      const att = lastCall(d, "SubmitAttestation") as { bodyJson: string; signature: Buffer };
      expect(att.bodyJson).toBe(canonicalJson(attestationBody(cfg, `dev-${i}`, roundDpEvent(cfg))));
      expect(verifyBytes(publicKeyFromRaw(ids[i]!.publicRaw), att.bodyJson, new Uint8Array(att.signature))).toBe(true);
      const masked = lastCall(d, "SubmitMaskedInput") as { bits: number; length: number; data: Buffer };
      expect(masked.bits).toBe(32);
      expect(masked.length).toBe(aggregationLength(cfg));
      expect(masked.data.byteLength).toBe(4 * aggregationLength(cfg));
    }
  });

  it("an update above the clip is sent clipped, and says so", async () => {
    const cfg = config({ clip: 1 });
    const devices = ALL.map((i) => device(i, i === 4 ? { train: constant(1) } : { train: constant(0) }));
    const { sum } = await playRound(devices, cfg);
    // ‖(1,…,1)‖ = 4 > 1: scaled to 1/4 per coordinate.
    expectSum(sum!, new Array(D).fill(0.25), cfg);
    expect(devices[4]!.events).toContainEqual({ type: "submitted", runId, round: 0, loss: 1.5, examples: 7, clipped: true });
    expect(devices[0]!.events).toContainEqual({ type: "submitted", runId, round: 0, loss: 1.5, examples: 7, clipped: false });
  });

  it("a diverged (non-finite) local update is sent as zeros with its noise share, not skipped", async () => {
    const nan = async (c: RoundConfig): Promise<LocalUpdate> => ({ delta: new Float32Array(c.parameterCount).fill(Number.NaN), loss: Number.NaN, examples: 3 });
    const devices = ALL.map((i) => (i === 0 ? device(0, { train: nan }) : device(i)));
    const cfg = config();
    const { sum } = await playRound(devices, cfg);
    expectSum(sum!, new Array(D).fill(2 + 3 + 4 + 5), cfg);
    expect(names(devices[0]!)).toContain("SubmitMaskedInput");
  });

  it.each(["advertise", "share", "masked-input", "unmask"] as RoundPhase[])("a device that vanishes at %s sends nothing from then on, reports it once, and the others' round still releases", async (phase) => {
    const devices = ALL.map((i) => (i === 0 ? device(0, { dropAt: () => phase }) : device(i)));
    const cfg = config();
    const { sum } = await playRound(devices, cfg);
    const sent: Record<RoundPhase, string[]> = {
      advertise: [],
      share: ["AdvertiseKeys"],
      "masked-input": ["AdvertiseKeys", "ShareKeys"],
      unmask: ["AdvertiseKeys", "ShareKeys", "SubmitAttestation", "SubmitMaskedInput", "SignSurvivors"],
    };
    expect(names(devices[0]!)).toEqual(sent[phase]);
    expect(devices[0]!.drops).toEqual([phase]);
    expect(devices[0]!.events.filter((e) => e.type === "dropped")).toEqual([{ type: "dropped", runId, round: 0, phase }]);
    expect(errors(devices[0]!)).toEqual([]);
    // Vanishing at unmask: its input is in the sum (it was masked in), only its reveal is missing.
    expectSum(sum!, new Array(D).fill(phase === "unmask" ? 15 : 14), cfg);
    // Nothing is charged for a round the device left before its input was sent.
    expect(devices[0]!.budget.list().length).toBe(phase === "unmask" ? 1 : 0);
    if (phase === "unmask") expect(devices[0]!.budget.list()[0]!.revealed).toBeUndefined();
  });
});

describe("the device refuses what a coordinator must not send, sends nothing for it, and never throws", () => {
  const joinedOnly = async (d: Device, ev: ServerEvent): Promise<void> => {
    await d.p.handle(ev);
    expect(d.calls).toEqual([]);
    expect(d.events.map((e) => e.type)).toEqual(["error"]);
    expect(d.budget.list()).toEqual([]);
  };

  it("an invitation whose config signature does not verify", async () => {
    const d = device(0);
    await joinedOnly(d, invite(config(), 0, { badSignature: true }));
    expect(d.events[0]).toMatchObject({ runId: "?", round: -1 });
  });

  it("an invitation signed by another key than the coordinator's", async () => {
    const d = device(0);
    const other = generateEd25519();
    const signed = signRoundConfig(config(), other.privateKey);
    await joinedOnly(d, { invite: { ref, attempt: 0, configJson: signed.json, configSignature: Buffer.from(signed.signature), checkpoint, index: 0 } } as ServerEvent);
  });

  it("an invitation labelled with another run or round than its signed config", async () => {
    await joinedOnly(device(0), invite(config(), 0, { label: { runId: "other", round: 0 } }));
    await joinedOnly(device(0), invite(config(), 0, { label: { runId, round: 3 } }));
  });

  it("an invitation at an index outside the signed cohort", async () => {
    const d = device(0);
    await joinedOnly(d, invite(config(), 7));
    expect(errors(d)[0]).toBe("invitation for round 0 gives index 7, outside the signed cohort of 5");
    const last = device(0);
    await joinedOnly(last, invite(config(), N, { cohortPath: tree.proof(N - 1) }));
    expect(errors(last)[0]).toMatch(/gives index 5, outside the signed cohort of 5/);
  });

  it("an invitation whose cohort proof does not put this device's key at its index: another member's slot, a bent path, another cohort", async () => {
    // Another cohort: this device at index 0 still, but another key at index 1 (a sibling on its path).
    const stranger = new CohortTree(ids.map((k, i) => (i === 1 ? generateEd25519().publicRaw : k.publicRaw)));
    const bent = tree.proof(0).map((h, l) => (l === 0 ? Buffer.from(h.map((b) => b ^ 1)) : h));
    const byOwnKey = new CohortTree(ids.map((k) => k.publicRaw).reverse()); // this device's key, committed at another index
    for (const ev of [invite(config(), 1), invite(config(), 0, { cohortPath: bent }), invite(config(), 0, { cohortPath: stranger.proof(0) }), invite(config(), 0, { cohortPath: [] }), invite({ ...config(), cohort: stranger.commitment }, 0), invite({ ...config(), cohort: byOwnKey.commitment }, 0, { cohortPath: byOwnKey.proof(N - 1) })]) {
      const d = device(0);
      await joinedOnly(d, ev);
      expect(errors(d)[0]).toMatch(/invitation's cohort proof does not put this device's identity key at index \d of the signed cohort/);
    }
  });

  it("a checkpoint of the wrong size", async () => {
    const d = device(0);
    await joinedOnly(d, invite(config(), 0, { checkpoint: checkpoint.subarray(4) }));
    expect(errors(d)[0]).toMatch(/checkpoint is 60 bytes, expected 64/);
  });

  it("a checkpoint whose hash is not the signed model hash", async () => {
    const d = device(0);
    const other = Buffer.from(checkpoint);
    other[0]! ^= 1;
    await joinedOnly(d, invite(config(), 0, { checkpoint: other }));
    expect(errors(d)[0]).toMatch(/does not match the signed model hash/);
  });

  it("the device trains from exactly the checkpoint's weights", async () => {
    const seen: Float32Array[] = [];
    const d = device(0, { train: async (c, w) => (seen.push(new Float32Array(w)), { delta: new Float32Array(c.parameterCount), loss: 0, examples: 1 }) });
    await d.p.handle(invite(config(), 0));
    expect([...seen[0]!]).toEqual([...weights]);
  });

  it("a roster that lists a member outside the signed cohort, as a key or as an advertiser", async () => {
    for (const bad of ["key", "advertiser"] as const) {
      const d = device(0);
      await d.p.handle(invite(config(), 0));
      const own = lastCall(d, "AdvertiseKeys").keys as Wire;
      const roster = bad === "key"
        ? { roster: { ref, advertised: [0], keys: [own, { ...own, index: 9 }], members: [proofOf(0), { ...proofOf(1), index: 9 }] } }
        : rosterEvent([0, 5], [own]);
      await d.p.handle(roster as ServerEvent);
      expect(names(d)).toEqual(["AdvertiseKeys"]);
      expect(errors(d)[0]).toBe(bad === "key" ? "roster's identity key for index 9 is not the one the signed cohort commits to" : "roster lists index 5 as an advertiser, outside the signed cohort of 5");
      expect(d.events.find((e) => e.type === "error")).toMatchObject({ runId, round: 0 });
    }
  });

  it("a roster whose neighbour comes without a proof, with a key the cohort does not commit to, or with another member's proof", async () => {
    const impostor = generateEd25519();
    const forged = new CohortTree([ids[0]!.publicRaw, impostor.publicRaw, ...ids.slice(2).map((k) => k.publicRaw)]);
    const variants = {
      "no proof": (keys: Wire[]) => ({ members: keys.filter((k) => k.index !== 1).map((k) => proofOf(k.index)), error: "roster gives no cohort proof for index 1" }),
      "uncommitted key": (keys: Wire[]) => ({ members: keys.map((k) => (k.index === 1 ? { index: 1, identityPublicKey: Buffer.from(impostor.publicRaw), path: forged.proof(1) } : proofOf(k.index))), error: "roster's identity key for index 1 is not the one the signed cohort commits to" }),
      "another member's proof": (keys: Wire[]) => ({ members: keys.map((k) => (k.index === 1 ? { ...proofOf(2), index: 1 } : proofOf(k.index))), error: "roster's identity key for index 1 is not the one the signed cohort commits to" }),
    };
    for (const [name, variant] of Object.entries(variants)) {
      const d = device(0);
      const cfg = config();
      const peers = ALL.slice(1).map((i) => new SecAggDevice(secaggConfig(cfg), i, { privateKey: (i === 1 && name === "uncommitted key" ? impostor : ids[i]!).privateKey }));
      await d.p.handle(invite(cfg, 0));
      const keys = [lastCall(d, "AdvertiseKeys").keys as Wire, ...peers.map((x) => wireAdvertisedKeys(x.advertiseKeys()) as Wire)];
      const { members, error } = variant(keys);
      await d.p.handle({ roster: { ref, advertised: ALL, keys, members } } as ServerEvent);
      expect(names(d), name).toEqual(["AdvertiseKeys"]);
      expect(errors(d), name).toEqual([error]);
    }
  });

  it("a local update of the wrong length", async () => {
    const devices = ALL.map((i) => (i === 0 ? device(0, { train: async () => ({ delta: new Float32Array(D - 1), loss: 0, examples: 1 }) }) : device(i)));
    const cfg = config();
    const { sum } = await playRound(devices, cfg);
    expectSum(sum!, new Array(D).fill(2 + 3 + 4 + 5), cfg);
    expect(names(devices[0]!)).toEqual(["AdvertiseKeys", "ShareKeys"]);
    expect(errors(devices[0]!)[0]).toMatch(/local update has 15 values, expected 16/);
    expect(devices[0]!.budget.list()).toEqual([]);
  });

  it("messages for a round the device never joined are ignored", async () => {
    const d = device(0);
    for (const ev of [
      { roster: { ref, advertised: [0], keys: [] } },
      { inbox: { ref, shares: [] } },
      { consistency: { ref, survivors: [0, 1] } },
      { unmask: { ref, survivors: [0, 1], dropouts: [], signatures: [] } },
    ]) await d.p.handle(ev as ServerEvent);
    expect(d.calls).toEqual([]);
    expect(d.events).toEqual([]);
  });

  it("a roster without a ref, and an event with nothing in it, are ignored", async () => {
    const d = device(0);
    await d.p.handle(invite(config(), 0));
    await d.p.handle({ roster: { ref: null, advertised: [0], keys: [] } } as unknown as ServerEvent);
    await d.p.handle({ outcome: { ref: null, status: "completed", modelHash: "" } } as unknown as ServerEvent);
    await d.p.handle({} as ServerEvent);
    expect(names(d)).toEqual(["AdvertiseKeys"]);
    expect(d.events.map((e) => e.type)).toEqual(["joined"]);
  });

  it("an aborted outcome is recorded as aborted, and the round's later messages are then ignored", async () => {
    const d = device(0);
    await d.p.handle(invite(config(), 0));
    await d.p.handle({ outcome: { ref, status: "aborted", modelHash: "" } } as ServerEvent);
    await d.p.handle({ consistency: { ref, survivors: [0, 1] } } as ServerEvent);
    expect(names(d)).toEqual(["AdvertiseKeys"]);
    expect(d.events.at(-1)).toEqual({ type: "outcome", runId, round: 0, status: "aborted", modelHash: "" });
  });

  it("an outcome for a round the device is not in is reported but touches no budget entry", async () => {
    const d = device(0);
    d.budget.charge({ runId, round: 0, attempt: 0, event: roundDpEvent(config()), at: 1 });
    await d.p.handle({ outcome: { ref: { runId, round: 5 }, status: "completed", modelHash: "" } } as ServerEvent);
    expect(d.budget.list()[0]!.outcome).toBeUndefined();
    expect(d.events).toEqual([{ type: "outcome", runId, round: 5, status: "completed", modelHash: "" }]);
  });
});

describe("declining an invitation", () => {
  it("a device its person paused declines with the person's reason, before training", async () => {
    let trained = 0;
    const d = device(0, { unavailable: () => ({ code: "PAUSED", reason: "paused by the person" }), train: async (c) => (trained++, { delta: new Float32Array(c.parameterCount), loss: 0, examples: 1 }) });
    await d.p.handle(invite(config(), 0));
    expect(names(d)).toEqual(["Decline"]);
    expect(lastCall(d, "Decline")).toEqual({ ref, reason: "PAUSED: paused by the person" });
    expect(d.events).toEqual([{ type: "declined", runId, round: 0, code: "PAUSED", reason: "paused by the person" }]);
    expect(trained).toBe(0);
    // A later round message for it is ignored: it never joined.
    await d.p.handle({ consistency: { ref, survivors: [0, 1] } } as ServerEvent);
    expect(names(d)).toEqual(["Decline"]);
  });

  it("a device that is available joins", async () => {
    const d = device(0, { unavailable: () => undefined });
    await d.p.handle(invite(config(), 0));
    expect(names(d)).toEqual(["AdvertiseKeys"]);
  });

  it("a device without an evaluator declines an evaluation round; with one it joins and sends only counts", async () => {
    const without = device(0);
    await without.p.handle(invite(config({ evaluation: true }), 0));
    expect(names(without)).toEqual(["Decline"]);
    expect(without.events[0]).toMatchObject({ type: "declined", code: "NO_EVALUATION" });

    let trained = 0;
    const counts: EvalCounts = { examples: 5, top1: 2, top3: 4, loss: 3, macroTop1: 0.4, macroTop3: 0.8, devices: 1 };
    const devices = ALL.map((i) => device(i, { evaluate: async () => counts, train: async (c) => (trained++, { delta: new Float32Array(c.parameterCount), loss: 0, examples: 1 }) }));
    const cfg = config({ evaluation: true });
    const { raw } = await playRound(devices, cfg);
    expect(trained).toBe(0);
    // Only the held-out counts are summed (noise multiplier 0 here): N devices' encoded counts.
    const one = encodeEvalCounts(counts, 100);
    expect([...raw]).toEqual(one.map((v) => v * N));
    for (const d of devices) expect(d.events.filter((e) => e.type === "evaluated")).toEqual([{ type: "evaluated", runId, round: 0, examples: 5 }]);
  });

  it("the guard's refusal is sent as the decline, and nothing is trained or charged", async () => {
    const d = device(0, {}, { ...OPEN_LIMITS, minNoiseMultiplier: 1 });
    await d.p.handle(invite(config({ noiseMultiplier: 0.5 }), 0));
    expect(names(d)).toEqual(["Decline"]);
    const declined = d.events[0] as Extract<ParticipantEvent, { type: "declined" }>;
    expect(declined.type).toBe("declined");
    expect(lastCall(d, "Decline").reason).toBe(`${declined.code}: ${declined.reason}`);
    expect(d.budget.list()).toEqual([]);
  });
});

describe("what the device signs and reveals", () => {
  it("it signs a survivor set once per attempt and reveals only for that set", async () => {
    const devices = ALL.map((i) => device(i));
    const cfg = config();
    await playRound(devices, cfg);
    const d = device(0);
    await d.p.handle(invite(cfg, 0));
    // Before its input was sent, the device refuses to sign (SecAggDevice's rule) — an error, not a throw.
    await d.p.handle({ consistency: { ref, survivors: ALL } } as ServerEvent);
    expect(names(d)).toEqual(["AdvertiseKeys"]);
    expect(errors(d)).toHaveLength(1);
  });

  it("an unmask request without enough signatures on the set is refused and reveals nothing", async () => {
    const devices = ALL.map((i) => device(i));
    const cfg = config();
    const server = new SecAggServer(secaggConfig(cfg), ALL, new Map(ids.map((k, i) => [i, k.publicRaw])));
    for (const [i, d] of devices.entries()) await d.p.handle(invite(cfg, i));
    for (const d of devices) server.receiveKeys(fromWire(lastCall(d, "AdvertiseKeys").keys as Wire));
    const advertised = server.closeAdvertise().map((k) => k.index);
    for (const [i, d] of devices.entries()) await d.p.handle(rosterEvent(advertised, wireRoster(server, i)));
    for (const [i, d] of devices.entries()) server.receiveShares(i, (lastCall(d, "ShareKeys").shares as { from: number; to: number; ciphertext: Buffer }[]).map((s) => ({ ...s, ciphertext: new Uint8Array(s.ciphertext) })));
    const inboxes = server.closeShareKeys();
    for (const [i, d] of devices.entries()) await d.p.handle({ inbox: { ref, shares: inboxes.get(i)!.map((s) => ({ ...s, ciphertext: Buffer.from(s.ciphertext) })) } } as ServerEvent);
    const d = devices[0]!;
    await d.p.handle({ consistency: { ref, survivors: ALL } } as ServerEvent);
    const own = new Uint8Array(lastCall(d, "SignSurvivors").signature as Buffer);
    await d.p.handle({ unmask: { ref, survivors: ALL, dropouts: [], signatures: [{ index: 0, signature: Buffer.from(own) }] } } as ServerEvent);
    expect(names(d)).not.toContain("SubmitUnmasking");
    expect(errors(d)).toHaveLength(1);
    expect(d.budget.list()[0]!.revealed).toBeUndefined();
  });
});

/** A pino logger whose lines land in `lines` (the device's warnings are part of its contract with its person). */
function captureLog(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({ write(chunk, _enc, cb) { lines.push(JSON.parse(String(chunk)) as Record<string, unknown>); cb(); } });
  return { log: pino({ level: "warn" }, stream), lines };
}

/** Joins attempt 0 and answers the roster with the real peers' keys; returns the inbox event for device 0. */
async function joinAndShare(d: Device, cfg = config(), afterInvite: () => Promise<void> = async () => undefined): Promise<ServerEvent> {
  const server = new SecAggServer(secaggConfig(cfg), ALL, new Map(ids.map((k, i) => [i, k.publicRaw])));
  const peers = ALL.slice(1).map((i) => new SecAggDevice(secaggConfig(cfg), i, { privateKey: ids[i]!.privateKey }));
  await d.p.handle(invite(cfg, 0));
  await afterInvite();
  server.receiveKeys(fromWire(lastCall(d, "AdvertiseKeys").keys as Wire));
  for (const x of peers) server.receiveKeys(x.advertiseKeys());
  const advertised = server.closeAdvertise().map((k) => k.index);
  await d.p.handle(rosterEvent(advertised, wireRoster(server, 0)));
  const entries = server.rosterFor(0).map((k) => ({ ...k, identityPublicKey: ids[k.index]!.publicRaw }));
  const toMe = peers.flatMap((x) => x.shareKeys(entries)).filter((s) => s.to === 0);
  return { inbox: { ref, shares: toMe.map((s) => ({ from: s.from, to: s.to, ciphertext: Buffer.from(s.ciphertext) })) } } as ServerEvent;
}

describe("without optional hooks, and with a logger", () => {
  it("a device with no onEvent or onDrop hook still completes a round, declines, drops and reports errors without throwing", async () => {
    const bare = (i: number, extra: Partial<ParticipantHooks> = {}): Device => {
      const d = device(i);
      return { ...d, p: participant(d, i, extra) };
    };
    const devices = ALL.map((i) => bare(i, i === 1 ? { dropAt: () => "unmask" } : {}));
    const cfg = config();
    const { sum } = await playRound(devices, cfg);
    expectSum(sum!, new Array(D).fill(15), cfg);
    expect(devices.map((d) => d.budget.list()[0]?.outcome)).toEqual(ALL.map(() => "completed"));
    const paused = bare(0, { unavailable: () => ({ code: "PAUSED", reason: "paused" }) });
    await paused.p.handle(invite(cfg, 0));
    expect(names(paused)).toEqual(["Decline"]);
    const broken = bare(0);
    await expect(broken.p.handle(invite(cfg, 0, { badSignature: true }))).resolves.toBeUndefined();
    const old = bare(0);
    await old.p.handle(invite(cfg, 0));
    old.p.arrived(invite(config({ attempt: 1 }), 0));
    await old.p.handle(invite(config({ attempt: 1 }), 0));
    expect(names(old)).toEqual(["AdvertiseKeys", "AdvertiseKeys"]);
  });

  it("a message that fails is logged with its reason; a diverged update is logged", async () => {
    const { log, lines } = captureLog();
    const d = device(0);
    const p = participant(d, 0, { train: async (c) => ({ delta: new Float32Array(c.parameterCount).fill(Number.NaN), loss: 0, examples: 1 }) }, { log });
    await p.handle(invite(config(), 0, { badSignature: true }));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ msg: "round message failed" });
    expect(String(lines[0]!.err)).toMatch(/signature/);
    const dd = { ...d, p };
    const inbox = await joinAndShare(dd);
    await p.handle(inbox);
    expect(names(d)).toEqual(["AdvertiseKeys", "ShareKeys", "SubmitAttestation", "SubmitMaskedInput"]);
    expect(lines[1]).toMatchObject({ msg: expect.stringMatching(/diverged/), runId, round: 0 });
  });
});

describe("more of what the device refuses or ignores", () => {
  it("arrived() ignores everything but invitations, and a label it has already seen newer than", async () => {
    const d = device(0);
    for (const ev of [{ roster: { ref, advertised: [], keys: [] } }, { outcome: { ref, status: "completed", modelHash: "" } }, {}]) expect(() => d.p.arrived(ev as ServerEvent)).not.toThrow();
    d.p.arrived(invite(config({ attempt: 2 }), 0));
    d.p.arrived(invite(config({ attempt: 1 }), 0)); // a late label must not lower what the device has seen
    await d.p.handle(invite(config({ attempt: 1 }), 0));
    expect(d.calls).toEqual([]);
    expect(d.events).toEqual([{ type: "superseded", runId, round: 0, attempt: 1 }]);
  });

  it("a newer invitation handled without arrived() first supersedes the attempt held, once", async () => {
    const signals: AbortSignal[] = [];
    const d = device(0, { train: (_c, _w, s) => (signals.push(s!), new Promise<LocalUpdate>(() => undefined)) });
    await d.p.handle(invite(config(), 0));
    d.p.arrived(invite(config({ attempt: 1 }), 0));
    d.p.arrived(invite(config({ attempt: 2 }), 0));
    expect(d.events.filter((e) => e.type === "superseded")).toEqual([{ type: "superseded", runId, round: 0, attempt: 0 }]);
    const e = device(0, { train: (_c, _w, s) => (signals.push(s!), new Promise<LocalUpdate>(() => undefined)) });
    await e.p.handle(invite(config(), 0));
    await e.p.handle(invite(config({ attempt: 1 }), 0));
    expect(signals.at(-2)!.aborted).toBe(true);
    expect(signals.at(-1)!.aborted).toBe(false);
    expect(e.events.filter((x) => x.type === "superseded")).toEqual([{ type: "superseded", runId, round: 0, attempt: 0 }]);
  });

  it("an invitation without a label is still checked against the attempts the device holds", async () => {
    const d = device(0);
    await d.p.handle(invite(config({ attempt: 1 }), 0));
    const unlabelled = (cfg: RoundConfig): ServerEvent => {
      const ev = invite(cfg, 0);
      return { invite: { ...ev.invite!, ref: null } } as unknown as ServerEvent;
    };
    await d.p.handle(unlabelled(config()));
    expect(d.events.at(-1)).toEqual({ type: "superseded", runId, round: 0, attempt: 0 });
    await d.p.handle(unlabelled(config({ attempt: 1 })));
    expect(errors(d).at(-1)).toMatch(/second invitation to run-participant\/0 attempt 1/);
    expect(names(d)).toEqual(["AdvertiseKeys"]);
    await d.p.handle(unlabelled(config({ attempt: 2 })));
    expect(names(d)).toEqual(["AdvertiseKeys", "AdvertiseKeys"]);
  });

  it("a second invitation to the attempt already joined is refused, not joined again", async () => {
    const d = device(0);
    await d.p.handle(invite(config(), 0));
    await d.p.handle(invite(config(), 0));
    expect(names(d)).toEqual(["AdvertiseKeys"]);
    expect(errors(d)).toEqual([`a second invitation to ${runId}/0 attempt 0, which this device already joined; ignored`]);
  });

  it("rounds of different runs are kept apart", async () => {
    const d = device(0);
    const inbox = await joinAndShare(d, config(), async () => {
      await d.p.handle({ outcome: { ref: { runId: "other", round: 0 }, status: "completed", modelHash: "" } } as ServerEvent);
      await d.p.handle({ outcome: { ref: { runId, round: 1 }, status: "completed", modelHash: "" } } as ServerEvent);
    });
    expect(names(d)).toEqual(["AdvertiseKeys", "ShareKeys"]);
    await d.p.handle(inbox);
    expect(names(d)).toContain("SubmitMaskedInput");
  });

  it("an invitation's refusal names the label and the signed config", async () => {
    const d = device(0);
    await d.p.handle(invite(config(), 0, { label: { runId: "other", round: 2 } }));
    expect(errors(d)).toEqual([`invitation labelled other/2 attempt 0 carries the signed config of ${runId}/0 attempt 0`]);
  });

  it("a checkpoint refusal names both hashes", async () => {
    const d = device(0);
    const other = Buffer.from(checkpoint);
    other[0]! ^= 1;
    await d.p.handle(invite(config(), 0, { checkpoint: other }));
    const got = createHash("sha256").update(other).digest("hex").slice(0, 12);
    expect(errors(d)).toEqual([`checkpoint hash ${got} does not match the signed model hash ${config().modelHash.slice(0, 12)}`]);
  });

  it("the evaluation decline says why, and a decline goes to the Rounds service", async () => {
    const d = device(0);
    await d.p.handle(invite(config({ evaluation: true }), 0));
    expect(d.calls).toEqual([{ service: "Rounds", name: "Decline", req: { ref, reason: "NO_EVALUATION: this device does not evaluate" } }]);
  });

  it("a roster from a coordinator that sends no advertiser list still shares with every key given; one that lists an advertiser without its keys is refused", async () => {
    for (const variant of ["no-list", "missing-keys"] as const) {
      const d = device(0);
      const cfg = config();
      const peers = ALL.slice(1).map((i) => new SecAggDevice(secaggConfig(cfg), i, { privateKey: ids[i]!.privateKey }));
      await d.p.handle(invite(cfg, 0));
      const keys = [lastCall(d, "AdvertiseKeys").keys as Wire, ...peers.map((x) => wireAdvertisedKeys(x.advertiseKeys()))];
      await d.p.handle(variant === "no-list" ? rosterEvent([], keys) : rosterEvent(ALL, keys.slice(0, -1)));
      if (variant === "no-list") {
        expect(names(d)).toEqual(["AdvertiseKeys", "ShareKeys"]);
        expect((lastCall(d, "ShareKeys").shares as unknown[]).length).toBe(N - 1);
      } else {
        expect(names(d)).toEqual(["AdvertiseKeys"]);
        expect(errors(d)).toHaveLength(1);
      }
    }
  });

  it("an update with one non-finite coordinate is sent as zeros too", async () => {
    const one = async (c: RoundConfig): Promise<LocalUpdate> => {
      const delta = new Float32Array(c.parameterCount).fill(1);
      delta[3] = Number.POSITIVE_INFINITY;
      return { delta, loss: 0, examples: 1 };
    };
    const devices = ALL.map((i) => (i === 0 ? device(0, { train: one }) : device(i)));
    const cfg = config();
    const { sum } = await playRound(devices, cfg);
    expectSum(sum!, new Array(D).fill(14), cfg);
  });

  it("local training that fails is reported, and nothing is sent or charged", async () => {
    const d = device(0, { train: async () => { throw new Error("out of memory"); } });
    const inbox = await joinAndShare(d);
    await d.p.handle(inbox);
    expect(names(d)).toEqual(["AdvertiseKeys", "ShareKeys"]);
    expect(errors(d)).toEqual(["out of memory"]);
    expect(d.budget.list()).toEqual([]);
  });

  it("a device that vanishes at share ignores the round's later messages", async () => {
    const d = device(0, { dropAt: () => "share" });
    const inbox = await joinAndShare(d);
    await d.p.handle(inbox);
    await d.p.handle({ consistency: { ref, survivors: ALL } } as ServerEvent);
    await d.p.handle({ unmask: { ref, survivors: ALL, dropouts: [], signatures: [] } } as ServerEvent);
    expect(names(d)).toEqual(["AdvertiseKeys"]);
    expect(d.events.map((e) => e.type)).toEqual(["joined", "dropped"]);
  });

  it("an evaluation device that vanishes at masked input sends no counts", async () => {
    const counts: EvalCounts = { examples: 5, top1: 2, top3: 4, loss: 3, macroTop1: 0.4, macroTop3: 0.8, devices: 1 };
    const d = device(0, { evaluate: async () => counts, dropAt: () => "masked-input" });
    const inbox = await joinAndShare(d, config({ evaluation: true }));
    await d.p.handle(inbox);
    expect(names(d)).toEqual(["AdvertiseKeys", "ShareKeys"]);
    expect(d.events.map((e) => e.type)).toEqual(["joined", "dropped"]);
  });

  it("the coordinator's outcome is what the budget records: aborted stays aborted, completed completed", async () => {
    for (const status of ["aborted", "completed"] as const) {
      const d = device(0);
      const inbox = await joinAndShare(d);
      await d.p.handle(inbox);
      await d.p.handle({ outcome: { ref, status, modelHash: "" } } as ServerEvent);
      expect(d.budget.list().map((e) => e.outcome)).toEqual([status]);
    }
  });

  it("a budget that cannot be written makes the outcome an error with the round's ref, not a throw", async () => {
    const d = device(0);
    // Its parent is a file: every write fails (ENOTDIR).
    const notADir = join(mkdtempSync(join(tmpdir(), "tacit-budget-")), "file");
    writeFileSync(notADir, "");
    const budget = new BudgetRecord(join(notADir, "budget.json"));
    const p = participant(d, 0, { onEvent: (e) => d.events.push(e) }, { budget });
    await p.handle(invite(config(), 0));
    await expect(p.handle({ outcome: { ref, status: "completed", modelHash: "" } } as ServerEvent)).resolves.toBeUndefined();
    expect(d.events.map((e) => [e.type, e.runId, e.round])).toEqual([["joined", runId, 0], ["error", runId, 0]]);
  });

  it("evalInput refuses a training round", () => {
    expect(() => evalInput(config(), { examples: 1, top1: 0, top3: 0, loss: 0, macroTop1: 0, macroTop3: 0, devices: 1 })).toThrow("round 0 is not an evaluation round");
  });
});

describe("hooks are optional, and a missing one is not an error", () => {
  const bareWith = (hooks: Partial<ParticipantHooks>, log?: Logger): Device => {
    const d = device(0);
    return { ...d, p: participant(d, 0, hooks, log ? { log } : {}) };
  };

  it("no onEvent: a drop still reaches onDrop; no onDrop: a drop is not an error", async () => {
    const drops: RoundPhase[] = [];
    const a = bareWith({ dropAt: () => "advertise", onDrop: (_c, phase) => drops.push(phase) });
    await a.p.handle(invite(config(), 0));
    expect(drops).toEqual(["advertise"]);
    const events: ParticipantEvent[] = [];
    const b = bareWith({ dropAt: () => "share", onEvent: (e) => events.push(e) });
    await joinAndShare(b);
    expect(events.map((e) => e.type)).toEqual(["joined", "dropped"]);
  });

  it("no onEvent: a whole round, a superseded invitation and an outcome log no failure", async () => {
    const { log, lines } = captureLog();
    const d = bareWith({}, log);
    const inbox = await joinAndShare(d);
    await d.p.handle(inbox);
    await d.p.handle({ outcome: { ref, status: "completed", modelHash: "" } } as ServerEvent);
    await d.p.handle(invite(config({ attempt: 2 }), 0));
    await d.p.handle(invite(config({ attempt: 1 }), 0)); // labelled, older: skipped unopened
    const unlabelled = invite(config({ attempt: 1 }), 0);
    await d.p.handle({ invite: { ...unlabelled.invite!, ref: null } } as unknown as ServerEvent); // opened, then skipped
    expect(names(d)).toEqual(["AdvertiseKeys", "ShareKeys", "SubmitAttestation", "SubmitMaskedInput", "AdvertiseKeys"]);
    expect(lines).toEqual([]);
  });
});

describe("more of the attempt bookkeeping", () => {
  it("after a round's outcome, an older attempt's invitation (even unlabelled) is not joined", async () => {
    const d = device(0);
    await d.p.handle(invite(config({ attempt: 1 }), 0));
    await d.p.handle({ outcome: { ref, status: "aborted", modelHash: "" } } as ServerEvent);
    const old = invite(config(), 0);
    await d.p.handle({ invite: { ...old.invite!, ref: null } } as unknown as ServerEvent);
    expect(names(d)).toEqual(["AdvertiseKeys"]);
    expect(d.events.at(-1)).toEqual({ type: "superseded", runId, round: 0, attempt: 0 });
  });

  it("an update with one non-finite coordinate is still submitted (as zeros), and a finite one logs nothing", async () => {
    const { log, lines } = captureLog();
    const d = device(0);
    const p = participant(d, 0, {}, { log });
    const inbox = await joinAndShare({ ...d, p });
    await p.handle(inbox);
    expect(names(d)).toContain("SubmitMaskedInput");
    expect(lines).toEqual([]);
    const one = async (c: RoundConfig): Promise<LocalUpdate> => {
      const delta = new Float32Array(c.parameterCount).fill(1);
      delta[3] = Number.NaN;
      return { delta, loss: 0, examples: 1 };
    };
    const e = device(0, { train: one });
    await e.p.handle(await joinAndShare(e));
    expect(names(e)).toEqual(["AdvertiseKeys", "ShareKeys", "SubmitAttestation", "SubmitMaskedInput"]);
    expect(errors(e)).toEqual([]);
  });

  it("an evaluation attempt superseded while counting sends nothing and reports no error", async () => {
    const counting = new Promise<EvalCounts>(() => undefined);
    const d = device(0, { evaluate: () => counting });
    const inbox = await joinAndShare(d, config({ evaluation: true }));
    const pending = d.p.handle(inbox);
    await new Promise((r) => setImmediate(r));
    d.p.arrived(invite(config({ attempt: 1, evaluation: true }), 0));
    await pending;
    expect(names(d)).toEqual(["AdvertiseKeys", "ShareKeys"]);
    expect(errors(d)).toEqual([]);
  });
});
