/**
 * The round config's commitment to its cohort (shared/run/cohort-commitment.ts): every member's
 * proof verifies, and no proof vouches for another key, another index, another cohort or a
 * malformed input; the signed config carries the commitment (size and root) only, so an
 * invitation no longer grows with the cohort.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { randomBytes } from "node:crypto";
import { generateEd25519, leafHash } from "../shared/crypto/index.ts";
import { cohortLeaf, CohortTree, openRoundConfig, provesMembership, signRoundConfig, type RoundConfig } from "../shared/run/index.ts";

const keys = (n: number): Uint8Array[] => Array.from({ length: n }, () => new Uint8Array(randomBytes(32)));

describe("cohort commitment", () => {
  it("proves every member of cohorts of 1 to 40 at its own index, and nowhere else", () => {
    for (let n = 1; n <= 40; n++) {
      const ks = keys(n);
      const tree = new CohortTree(ks);
      expect(tree.commitment.size).toBe(n);
      for (let i = 0; i < n; i++) {
        const path = tree.proof(i);
        expect(path.length).toBeLessThanOrEqual(Math.ceil(Math.log2(n)));
        expect(provesMembership(tree.commitment, i, ks[i]!, path), `n=${n} i=${i}`).toBe(true);
        if (n > 1) {
          const j = (i + 1) % n;
          expect(provesMembership(tree.commitment, i, ks[j]!, path), `another member's key at ${i}`).toBe(false);
          expect(provesMembership(tree.commitment, j, ks[i]!, path), `member ${i}'s proof at index ${j}`).toBe(false);
        }
      }
    }
  });

  // A proof need not fail under another size (RFC 9162 paths of equal shape verify alike): the
  // size is bound by the coordinator's signature on the config, not by the proof.
  it("refuses a changed key, root, path element, a path of the wrong length, or malformed input", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 400 }), fc.nat(), fc.nat(), (n, mi, pi) => {
        const ks = keys(n);
        const tree = new CohortTree(ks);
        const c = tree.commitment;
        const i = mi % n;
        const path = tree.proof(i);
        expect(provesMembership(c, i, ks[i]!, path)).toBe(true);
        const flipped = new Uint8Array(ks[i]!);
        flipped[pi % 32]! ^= 1;
        expect(provesMembership(c, i, flipped, path)).toBe(false);
        expect(provesMembership({ ...c, root: `${c.root.slice(0, 63)}${c.root[63] === "0" ? "1" : "0"}` }, i, ks[i]!, path)).toBe(false);
        const bent = path.map((h) => Buffer.from(h));
        bent[pi % bent.length]![0]! ^= 1;
        expect(provesMembership(c, i, ks[i]!, bent)).toBe(false);
        expect(provesMembership(c, i, ks[i]!, path.slice(0, -1))).toBe(false);
        expect(provesMembership(c, i, ks[i]!, [...path, Buffer.alloc(32)])).toBe(false);
        expect(provesMembership(c, i, ks[i]!, path.map((h, l) => (l === pi % path.length ? h.subarray(0, 31) : h)))).toBe(false);
        expect(provesMembership(c, i, ks[i]!.subarray(0, 31), path)).toBe(false);
        for (const bad of [-1, n, 0.5, Number.NaN]) expect(provesMembership(c, bad, ks[i]!, path)).toBe(false);
      }),
      { numRuns: 150 },
    );
  });

  it("binds the index inside the leaf, under its own domain", () => {
    const k = keys(1)[0]!;
    expect(cohortLeaf(0, k).equals(cohortLeaf(1, k))).toBe(false);
    expect(cohortLeaf(0, k).equals(leafHash(k))).toBe(false);
    // The same key at two indices of one cohort: each proof holds for its own index only.
    const tree = new CohortTree([k, k, ...keys(3)]);
    expect(provesMembership(tree.commitment, 0, k, tree.proof(0))).toBe(true);
    expect(provesMembership(tree.commitment, 1, k, tree.proof(0))).toBe(false);
  });

  it("refuses to build a cohort with no member or a key that is not 32 bytes, and a proof of a non-member", () => {
    expect(() => new CohortTree([])).toThrow(/at least one member/);
    expect(() => new CohortTree([...keys(2), new Uint8Array(31)])).toThrow(/cohort member 2: identity key of 31 bytes/);
    const tree = new CohortTree(keys(5));
    for (const bad of [-1, 5, 1.5]) expect(() => tree.proof(bad)).toThrow(/no cohort member/);
  });
});

describe("the signed config's cohort", () => {
  const key = generateEd25519();
  const config = (cohort: unknown): RoundConfig =>
    ({
      protocol: "tacit-round-v1", runId: "r", round: 0, attempt: 0, modelHash: "a".repeat(64), parameterCount: 4,
      model: { version: 1, vocabBuckets: 16, window: 2, embedDim: 4, hidden: 8, sessionGapSeconds: 1800 },
      training: { localEpochs: 1, maxLocalSteps: 1, batchSize: 1, learningRate: 0.1, optimizer: "sgd", seed: 0 },
      dp: { mechanism: "ddgauss", clip: 1, noiseMultiplier: 1, minSurvivors: 2, expectedSurvivors: 50, colluders: 5, delta: 1e-6, rotationSeed: "AAAA" },
      secagg: { bits: 32, threshold: 26, degree: 49, mode: "full", roundSeed: "AAAA", guarantee: "g" },
      signals: ["commit"], cohort, populationSize: 50, deadlines: { advertise: 1, share: 2, maskedInput: 3, unmask: 4 }, issuedAt: 0,
    }) as RoundConfig;

  it("carries the commitment, the same few bytes for 30 members as for 3,000", () => {
    const small = signRoundConfig(config(new CohortTree(keys(30)).commitment), key.privateKey);
    const large = signRoundConfig(config(new CohortTree(keys(3000)).commitment), key.privateKey);
    expect(openRoundConfig(large.json, large.signature, key.publicKey).cohort.size).toBe(3000);
    expect(Math.abs(large.json.length - small.json.length)).toBeLessThanOrEqual(2);
  });

  it("refuses a config whose cohort is not a commitment, naming the field", () => {
    const root = "ab".repeat(32);
    for (const bad of [[{ index: 0, identityPublicKey: "AA==" }], { size: 0, root }, { size: 3, root: "AB".repeat(32) }, { size: 3, root: root.slice(2) }, { size: 2.5, root }, { size: 3, root, extra: 1 }]) {
      const s = signRoundConfig(config(bad), key.privateKey);
      expect(() => openRoundConfig(s.json, s.signature, key.publicKey), JSON.stringify(bad)).toThrow(/round config invalid: cohort/);
    }
  });
});
