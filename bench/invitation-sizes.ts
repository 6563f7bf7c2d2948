/**
 * Bytes a device receives per round message at a given cohort size, with the real serializer
 * and the coordinator's own encoders (DeviceHub.encodeInvites / encodeRosters): the signed
 * config, one invitation, and one roster of the device's own and its k neighbours'
 * advertisements with their cohort proofs. No network, no timing: sizes only.
 *
 *   npx tsx bench/invitation-sizes.ts [n] [k]      (defaults 3000 112)
 */
import { randomBytes } from "node:crypto";
import { CohortTree, signRoundConfig, type RoundConfig } from "../shared/run/index.ts";
import { generateEd25519 } from "../shared/crypto/index.ts";
import { DeviceHub } from "../coordinator/rounds/device-hub.ts";
import { loadTacitProto } from "../shared/transport/proto.ts";

const n = Number(process.argv[2] ?? 3000);
const k = Number(process.argv[3] ?? 112);
if (!Number.isInteger(n) || !Number.isInteger(k) || n < 2 || k < 1 || k >= n) throw new Error("usage: invitation-sizes.ts [n ≥ 2] [1 ≤ k < n]");

const subscribe = loadTacitProto().tacit.v1.Rounds.service.Subscribe;
const keys = Array.from({ length: n }, () => new Uint8Array(randomBytes(32)));
const tree = new CohortTree(keys);
const b64 = (): string => randomBytes(32).toString("base64");
const config = {
  protocol: "tacit-round-v1", runId: "run-20261202-64f37744", round: 0, attempt: 0, modelHash: "a".repeat(64), parameterCount: 100,
  model: { version: 1, vocabBuckets: 16, window: 2, embedDim: 4, hidden: 8, sessionGapSeconds: 1800 },
  training: { localEpochs: 1, maxLocalSteps: 16, batchSize: 64, learningRate: 0.5, optimizer: "sgd", seed: 0 },
  dp: { mechanism: "ddgauss", clip: 1, noiseMultiplier: 0, minSurvivors: Math.floor(n / 2), expectedSurvivors: n, colluders: Math.ceil(n / 10), delta: 1e-6, rotationSeed: b64() },
  secagg: { bits: 32, threshold: Math.ceil(0.7 * k), degree: k, mode: "secagg+", roundSeed: b64(), guarantee: "SecAgg+ guarantee text, ≈ 250 characters in a real run ".repeat(4) },
  signals: ["commit"], cohort: tree.commitment, populationSize: n, deadlines: { advertise: 1, share: 2, maskedInput: 3, unmask: 4 }, issuedAt: Date.now(),
} as RoundConfig;
const signed = signRoundConfig(config, generateEd25519().privateKey);

const hub = new DeviceHub();
hub.encoder = (ev) => subscribe.responseSerialize(ev);
const ref = { runId: config.runId, round: 0 };
const invite = hub.encodeInvites({ ref, attempt: 0, configJson: signed.json, configSignature: Buffer.from(signed.signature), checkpoint: Buffer.alloc(4 * config.parameterCount) }, (i) => tree.proof(i));
const advert = (index: number) => ({ index, cPk: randomBytes(32), sPk: randomBytes(32), selfMaskCommitment: randomBytes(32), signature: randomBytes(64) });
const neighbourhood = Array.from({ length: k + 1 }, (_, i) => advert(Math.floor((i * n) / (k + 1))));
const roster = hub.encodeRosters(ref, Array.from({ length: n }, (_, i) => i), () => neighbourhood, (i) => ({ index: i, identityPublicKey: Buffer.from(keys[i]!), path: tree.proof(i) }));
const bytes = (ev: unknown): number => (ev as { encoded: Buffer }).encoded.length;

console.log(JSON.stringify({ n, k, configJsonBytes: signed.json.length, invitationBytes: bytes(invite(0)), proofHashes: tree.proof(0).length, rosterBytes: bytes(roster(0)), invitationsPerRoundBytes: n * bytes(invite(0)), rostersPerRoundBytes: n * bytes(roster(0)) }));
