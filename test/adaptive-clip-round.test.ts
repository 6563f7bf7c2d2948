/**
 * Adaptive clipping through real rounds (coordinator, devices, SecAgg, distributed DP): devices
 * with known update norms, the clip count summed with the update, C moved by the geometric rule
 * round after round, the ledger recording (C, b̄, next C), the devices attesting the round's C,
 * and `verify` recomputing the chain — and catching a chain that was rewritten.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { generateEd25519 } from "../shared/crypto/index.ts";
import { verifyLedger, LedgerWriter } from "../shared/ledger/index.ts";
import { nextClip } from "../shared/dp/index.ts";
import { TestCluster, tinyRunSpec } from "./support/cluster.ts";
import { ledgerText } from "./support/ledger-text.ts";
import type { RoundConfig } from "../shared/run/index.ts";

const NORMS = [0.5, 2, 3];
const ADAPTIVE = { targetQuantile: 0.5, learningRate: 0.2, countStddev: 1 };

interface Entry { type: string; body: Record<string, unknown> }

describe("adaptive clipping in real rounds", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start();
    for (const [i, n] of NORMS.entries()) {
      await cluster.addDevice(`d${i}`, {
        train: async (cfg: RoundConfig, weights: Float32Array) => {
          const delta = new Float32Array(weights.length);
          delta[0] = n;
          return { delta, loss: 0, examples: 1 };
        },
      });
    }
    await cluster.waitConnected(3);
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it("moves C by the geometric rule, records it, and verify recomputes the chain", async () => {
    const runId = await cluster.launch(tinyRunSpec({ rounds: 2, clip: 1, noiseMultiplier: 0, adaptiveClip: ADAPTIVE }));
    const st = await cluster.waitRun(runId, 90_000);
    expect(st.state, JSON.stringify(st.rounds.map((r) => r.detail))).toBe("completed");
    const text = ledgerText(cluster.coordinator.paths.root);
    const entries = text.trim().split("\n").map((l) => JSON.parse(l) as Entry);
    const rounds = entries.filter((e) => e.type === "round" && e.body.runId === runId && e.body.status === "completed");
    const recs = rounds.map((e) => (e.body.privacy as { adaptiveClip: { clip: number; unclippedFraction: number; nextClip: number } }).adaptiveClip);
    // No noise: b̄ is exact. Round 0 at C = 1: only the 0.5 update is unclipped (b̄ = 1/3).
    const c1 = nextClip(1, 1 / 3, ADAPTIVE);
    expect(recs[0]).toMatchObject({ clip: 1 });
    expect(recs[0]!.unclippedFraction).toBeCloseTo(1 / 3, 12);
    expect(recs[0]!.nextClip).toBeCloseTo(c1, 12);
    expect(recs[1]!.clip).toBe(recs[0]!.nextClip);
    expect(rounds.map((e) => (e.body.dp as { clip: number }).clip)).toEqual(recs.map((r) => r.clip));
    expect(recs[1]!.unclippedFraction).toBeCloseTo(1 / 3, 12);
    // Every survivor attested the round's own C.
    for (const [r, rec] of recs.entries()) {
      const att = entries.filter((e) => e.type === "attestation" && e.body.runId === runId && e.body.round === r).map((e) => JSON.parse(String(e.body.bodyJson)) as { clip: number });
      expect(att.length).toBe(3);
      expect(att.every((a) => a.clip === rec.clip)).toBe(true);
    }
    const f = verifyLedger(text);
    expect(f.violations).toEqual([]);

    // The same ledger with round 1's next C rewritten (and re-signed by a forger's key, so that
    // only the semantic check can object): verify recomputes the chain and flags it.
    const forger = generateEd25519();
    const dir = (await import("node:fs")).mkdtempSync((await import("node:path")).join((await import("node:os")).tmpdir(), "tacit-forged-"));
    const w = LedgerWriter.open(`${dir}/l.jsonl`, forger.privateKey);
    for (const e of entries) {
      const body = e.type === "genesis" ? { ...e.body, coordinatorPublicKey: Buffer.from(forger.publicRaw).toString("base64") } : e.body;
      if (e === rounds[1]) (body.privacy as { adaptiveClip: { nextClip: number } }).adaptiveClip.nextClip *= 1.5;
      w.append(e.type as Parameters<typeof w.append>[0], body);
    }
    const forged = verifyLedger(readFileSync(`${dir}/l.jsonl`, "utf8"));
    expect(forged.violations.filter((v) => v.code === "ADAPTIVE_CLIP").map((v) => v.message)).toEqual([expect.stringMatching(/round 1: nextClip .* ≠ /)]);
  }, 120_000);
});
