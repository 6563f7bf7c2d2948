/**
 * A device abandons a superseded attempt's work as soon as a newer attempt's invitation
 * arrives (RoundParticipant.arrived): an older invitation still waiting its turn is skipped
 * unopened, a wait for local training ends without sending anything (no attestation, no masked
 * input, no budget charge), later messages of the old attempt are ignored — and the newer
 * attempt is joined. The invitation's label must match its signed config.
 */
import { describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { generateEd25519 } from "../shared/crypto/index.ts";
import { aggregationLength, CohortTree, signRoundConfig, type RoundConfig } from "../shared/run/index.ts";
import { chooseParams, SecAggDevice, wireAdvertisedKeys, type SecAggConfig } from "../shared/secagg/index.ts";
import { RoundParticipant, type LocalUpdate, type ParticipantEvent } from "../client/participant/round-participant.ts";
import { BudgetRecord } from "../client/participant/budget-record.ts";
import type { CoordinatorClient, ServerEvent } from "../client/transport/coordinator-client.ts";

const coordinator = generateEd25519();
const ids = [generateEd25519(), generateEd25519(), generateEd25519()];
const tree = new CohortTree(ids.map((k) => k.publicRaw));
const weights = new Float32Array(8).fill(0.5);
const checkpoint = Buffer.from(weights.buffer);
const params = chooseParams({ cohortSize: 3, dropoutFraction: 0.1, corruptFraction: 0.1, minSurvivors: 2 });
const runId = "run-superseded";

function config(attempt: number): RoundConfig {
  return {
    protocol: "tacit-round-v1", runId, round: 0, attempt,
    modelHash: createHash("sha256").update(checkpoint).digest("hex"), parameterCount: weights.length,
    model: { version: 1, vocabBuckets: 16, window: 2, embedDim: 4, hidden: 8, sessionGapSeconds: 1800 },
    training: { localEpochs: 1, maxLocalSteps: 1, batchSize: 1, learningRate: 0.1, optimizer: "sgd", seed: attempt },
    dp: { mechanism: "ddgauss", clip: 1, noiseMultiplier: 1, minSurvivors: 2, expectedSurvivors: 3, colluders: params.colluders, delta: 1e-6, rotationSeed: Buffer.alloc(32, 1).toString("base64") },
    secagg: { bits: 32, threshold: params.threshold, degree: params.degree, mode: params.mode, roundSeed: Buffer.alloc(32, attempt + 7).toString("base64"), guarantee: params.guarantee },
    signals: ["commit"],
    cohort: tree.commitment,
    populationSize: 3,
    deadlines: { advertise: 1, share: 2, maskedInput: 3, unmask: 4 },
    issuedAt: 0,
  };
}

function invite(attempt: number, o: { label?: number; badSignature?: boolean } = {}): ServerEvent {
  const signed = signRoundConfig(config(attempt), coordinator.privateKey);
  const signature = Buffer.from(signed.signature);
  if (o.badSignature) signature[0]! ^= 1;
  return { invite: { ref: { runId, round: 0 }, attempt: o.label ?? attempt, configJson: signed.json, configSignature: signature, checkpoint, index: 0, cohortPath: tree.proof(0) } } as ServerEvent;
}

function secaggConfig(cfg: RoundConfig): SecAggConfig {
  return { runId: cfg.runId, round: cfg.round, attempt: cfg.attempt, bits: cfg.secagg.bits, vectorLength: aggregationLength(cfg), threshold: cfg.secagg.threshold, degree: cfg.secagg.degree, roundSeed: Buffer.from(cfg.secagg.roundSeed, "base64"), minSurvivors: cfg.dp.minSurvivors };
}

function device(train: (cfg: RoundConfig, w: Float32Array, signal?: AbortSignal) => Promise<LocalUpdate>) {
  const calls: { name: string; req: Record<string, unknown> }[] = [];
  const events: ParticipantEvent[] = [];
  const client = { unary: async (_s: string, name: string, req: Record<string, unknown>) => (calls.push({ name, req }), {}) } as unknown as CoordinatorClient;
  const budget = new BudgetRecord();
  const p = new RoundParticipant({
    deviceId: "dev-0", identity: ids[0]!, coordinatorPublicKey: coordinator.publicRaw, client, budget,
    limits: { maxDeviceEpsilon: Infinity, delta: 1e-5, minNoiseMultiplier: 0, minSurvivors: 2 },
    hooks: { train, onEvent: (e) => events.push(e) },
  });
  return { p, calls, events, budget };
}

const names = (calls: { name: string }[]): string[] => calls.map((c) => c.name);

describe("a newer attempt's invitation supersedes the older attempt at once", () => {
  it("an older invitation still waiting its turn is skipped unopened; the newer one is joined", async () => {
    const d = device(async (cfg) => ({ delta: new Float32Array(cfg.parameterCount), loss: 0, examples: 1 }));
    // Both arrive before the first is handled (a busy device); the old one even has a bad
    // signature, which would be an error if it were opened.
    const old = invite(0, { badSignature: true });
    const next = invite(1);
    d.p.arrived(old);
    d.p.arrived(next);
    await d.p.handle(old);
    expect(d.calls).toEqual([]);
    expect(d.events.filter((e) => e.type === "error")).toEqual([]);
    expect(d.events).toContainEqual({ type: "superseded", runId, round: 0, attempt: 0 });
    await d.p.handle(next);
    expect(names(d.calls)).toEqual(["AdvertiseKeys"]);
    expect((d.calls[0]!.req.keys as { index: number }).index).toBe(0);
  });

  it("a wait for training ends when the newer invitation arrives: nothing is sent or charged for the old attempt", async () => {
    const signals: AbortSignal[] = [];
    // Training of attempt 0 never finishes by itself (a slow laptop).
    const d = device((_cfg, _w, signal) => (signals.push(signal!), new Promise<LocalUpdate>(() => undefined)));
    await d.p.handle(invite(0));
    const cfg = config(0);
    const sc = secaggConfig(cfg);
    const advertised = d.calls[0]!.req.keys as { index: number; cPk: Buffer; sPk: Buffer; selfMaskCommitment: Buffer; signature: Buffer };
    const peers = [1, 2].map((i) => new SecAggDevice(sc, i, { privateKey: ids[i]!.privateKey }));
    const keys = [advertised, ...peers.map((x) => x.advertiseKeys())];
    const members = keys.map((k) => ({ index: k.index, identityPublicKey: Buffer.from(ids[k.index]!.publicRaw), path: tree.proof(k.index) }));
    const roster = { ref: { runId, round: 0 }, advertised: [0, 1, 2], keys: keys.map(wireAdvertisedKeys), members };
    await d.p.handle({ roster } as ServerEvent);
    expect(names(d.calls)).toEqual(["AdvertiseKeys", "ShareKeys"]);
    const entries = keys.map((k) => ({ index: k.index, cPk: new Uint8Array(k.cPk), sPk: new Uint8Array(k.sPk), selfMaskCommitment: new Uint8Array(k.selfMaskCommitment), signature: new Uint8Array(k.signature), identityPublicKey: ids[k.index]!.publicRaw }));
    const toMe = peers.flatMap((x) => x.shareKeys(entries)).filter((s) => s.to === 0);
    const inbox = d.p.handle({ inbox: { ref: { runId, round: 0 }, shares: toMe.map((s) => ({ from: s.from, to: s.to, ciphertext: Buffer.from(s.ciphertext) })) } } as ServerEvent);
    await new Promise((r) => setImmediate(r));
    expect(signals[0]!.aborted).toBe(false);

    d.p.arrived(invite(1));
    expect(signals[0]!.aborted).toBe(true);
    await inbox; // returns although training never finished
    expect(names(d.calls)).toEqual(["AdvertiseKeys", "ShareKeys"]);
    expect(d.budget.list()).toEqual([]);
    expect(d.events).toContainEqual({ type: "superseded", runId, round: 0, attempt: 0 });
    // A late message of the old attempt is ignored; the newer attempt is joined.
    await d.p.handle({ consistency: { ref: { runId, round: 0 }, survivors: [0, 1, 2] } } as ServerEvent);
    await d.p.handle(invite(1));
    expect(names(d.calls)).toEqual(["AdvertiseKeys", "ShareKeys", "AdvertiseKeys"]);
    expect(d.events.filter((e) => e.type === "error")).toEqual([]);
  });

  it("an invitation whose label does not match its signed config is refused", async () => {
    const d = device(async (cfg) => ({ delta: new Float32Array(cfg.parameterCount), loss: 0, examples: 1 }));
    await d.p.handle(invite(0, { label: 3 }));
    expect(d.calls).toEqual([]);
    expect(d.events.map((e) => e.type)).toEqual(["error"]);
  });

  it("an older attempt's invitation handled after a newer one is ignored", async () => {
    const d = device(async (cfg) => ({ delta: new Float32Array(cfg.parameterCount), loss: 0, examples: 1 }));
    await d.p.handle(invite(1));
    await d.p.handle(invite(0));
    expect(names(d.calls)).toEqual(["AdvertiseKeys"]);
    expect(d.events).toContainEqual({ type: "superseded", runId, round: 0, attempt: 0 });
  });
});
