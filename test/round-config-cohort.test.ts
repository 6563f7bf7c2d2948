/**
 * The signed config's cohort is checked member by member without zod's per-object parsing (a
 * device checks thousands of members per invitation): the fast check accepts exactly what the
 * member schema accepts, and a config with a bad member is still refused, naming the member.
 */
import { describe, expect, it } from "vitest";
import { randomBytes, randomInt } from "node:crypto";
import { cohortMemberChecks, openRoundConfig, signRoundConfig, type RoundConfig } from "../shared/run/round-config.ts";
import { generateEd25519 } from "../shared/crypto/index.ts";

const ALPHABET = "ABCxyz019+/=-_ .\\n\u00e9";
function randomString(): string {
  let s = "";
  for (let i = randomInt(0, 8); i > 0; i--) s += ALPHABET[randomInt(ALPHABET.length)];
  return s;
}

describe("cohort members checked without per-object zod", () => {
  it("the fast check agrees with the member schema on valid, malformed and odd values", () => {
    const values: unknown[] = [
      { index: 0, identityPublicKey: randomBytes(32).toString("base64") },
      { index: 7, identityPublicKey: "" },
      { index: 1.5, identityPublicKey: "AA==" },
      { index: -1, identityPublicKey: "AA==" },
      { index: Infinity, identityPublicKey: "AA==" },
      { index: 1, identityPublicKey: "AA===" },
      { index: 1, identityPublicKey: "A=A=" },
      { index: 1, identityPublicKey: "AA==", extra: 1 },
      { index: 1 },
      { identityPublicKey: "AA==" },
      { index: "1", identityPublicKey: "AA==" },
      { index: 1, identityPublicKey: 5 },
      null, 3, "x", [1, "AA=="], [],
    ];
    for (let i = 0; i < 3000; i++) values.push({ index: randomInt(0, 5) - 1, identityPublicKey: randomString() });
    for (const v of values) expect([v, cohortMemberChecks.fast(v)]).toEqual([v, cohortMemberChecks.schema(v)]);
  });

  it("a signed config with a malformed member is refused, naming it", () => {
    const key = generateEd25519();
    const cohort = Array.from({ length: 50 }, (_, index) => ({ index, identityPublicKey: randomBytes(32).toString("base64") }));
    const cfg = {
      protocol: "tacit-round-v1", runId: "r", round: 0, attempt: 0, modelHash: "a".repeat(64), parameterCount: 4,
      model: { version: 1, vocabBuckets: 16, window: 2, embedDim: 4, hidden: 8, sessionGapSeconds: 1800 },
      training: { localEpochs: 1, maxLocalSteps: 1, batchSize: 1, learningRate: 0.1, optimizer: "sgd", seed: 0 },
      dp: { mechanism: "ddgauss", clip: 1, noiseMultiplier: 1, minSurvivors: 2, expectedSurvivors: 50, colluders: 5, delta: 1e-6, rotationSeed: "AAAA" },
      secagg: { bits: 32, threshold: 26, degree: 49, mode: "full", roundSeed: "AAAA", guarantee: "g" },
      signals: ["commit"], cohort, populationSize: 50, deadlines: { advertise: 1, share: 2, maskedInput: 3, unmask: 4 }, issuedAt: 0,
    } as RoundConfig;
    const good = signRoundConfig(cfg, key.privateKey);
    expect(openRoundConfig(good.json, good.signature, key.publicKey).cohort).toEqual(cohort);
    const bad = signRoundConfig({ ...cfg, cohort: cohort.map((m, i) => (i === 17 ? { ...m, identityPublicKey: "not base64!" } : m)) }, key.privateKey);
    expect(() => openRoundConfig(bad.json, bad.signature, key.publicKey)).toThrow(/cohort\.17\.identityPublicKey/);
    const empty = signRoundConfig({ ...cfg, cohort: [] }, key.privateKey);
    expect(() => openRoundConfig(empty.json, empty.signature, key.publicKey)).toThrow(/cohort/);
  });
});
