/**
 * The self-mask seed commitment, live (real gRPC over loopback, real Redis, real devices): one
 * device masks its input with the seed b it committed to in its signed advertisement, but deals
 * its neighbours shares of another seed b'. The shares agree with one another, so no holder is
 * wrong; the coordinator reconstructs b', sees that it does not open the commitment, names the
 * dealer in a `device-offence` entry and aborts the attempt (it never unmasks with b', which
 * would leave PRG(b) in the sum). Without the commitment the dealer went unnamed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes, type KeyObject } from "node:crypto";
import type { RoundConfig } from "../shared/run/index.ts";
import type { RunStatus } from "../client/transport/coordinator-client.ts";
import { SecAggDevice, type RosterEntry } from "../shared/secagg/index.ts";
import { MAX_ROUND_ATTEMPTS } from "../coordinator/runs/run-scheduler.ts";
import { TestCluster, tinyRunSpec } from "./support/cluster.ts";
import { ledgerText } from "./support/ledger-text.ts";

function constantDelta(value: number) {
  return async (cfg: RoundConfig) => ({ delta: new Float32Array(cfg.parameterCount).fill(value), loss: 1, examples: 1 });
}

interface Entry {
  type: string;
  body: Record<string, unknown>;
}

describe("a dealer whose self-mask shares do not open its commitment (live)", () => {
  let cluster: TestCluster;
  const original = SecAggDevice.prototype.shareKeys;
  let dealerKey: KeyObject | undefined;

  beforeAll(async () => {
    // The dealer's SecAggDevice (recognised by its identity key) shares a fresh b' and then
    // masks with its committed b, as a device running modified code would.
    SecAggDevice.prototype.shareKeys = function (this: SecAggDevice, roster: RosterEntry[]) {
      const inner = this as unknown as { identity: { privateKey: KeyObject }; seed: Uint8Array };
      if (inner.identity.privateKey !== dealerKey) return original.call(this, roster);
      const committed = inner.seed;
      inner.seed = new Uint8Array(randomBytes(32));
      try {
        return original.call(this, roster);
      } finally {
        inner.seed = committed;
      }
    };
    cluster = await TestCluster.start();
  }, 60_000);

  afterAll(async () => {
    SecAggDevice.prototype.shareKeys = original;
    await cluster?.stop();
  });

  it("is named as the dealer in the ledger at every attempt, and no attempt is applied to the model", async () => {
    for (let i = 0; i < 6; i++) await cluster.addDevice(`honest-${i}`, { train: constantDelta(0.01) });
    const dealer = await cluster.addDevice("dealer", { train: constantDelta(0.01) });
    dealerKey = dealer.identity.privateKey;
    await cluster.waitConnected(7);
    // Cohort 7, no colluders tolerated: full graph k = 6, t = 4, so each owner's seed has 6
    // revealed shares and a dealer's consistent lie can be told from a holder's.
    const spec = tinyRunSpec({ rounds: 1, cohortSize: 7, minSurvivors: 3, populationSize: 7, clip: 100, dropoutTolerance: 0.3, corruptTolerance: 0, deadlines: { ...tinyRunSpec().deadlines, selectionMs: 1500, unmaskMs: 3000 } });
    const runId = await cluster.launch(spec);
    const initial = (await cluster.mlTeam.unary<object, RunStatus>("RunControl", "GetRun", { runId })).modelHash;
    const st = await cluster.waitRun(runId, 150_000);
    expect(st.state).toBe("failed");
    expect(st.modelHash).toBe(initial);
    const entries = ledgerText(cluster.stateDir).trim().split("\n").map((l) => JSON.parse(l) as Entry);
    const offences = entries.filter((e) => e.type === "device-offence" && e.body.runId === runId);
    expect(offences).toHaveLength(MAX_ROUND_ATTEMPTS);
    for (const o of offences) {
      expect(o.body.deviceId).toBe(dealer.deviceId);
      expect(String(o.body.reason)).toMatch(/dealt shares of its self-mask seed that do not match what it advertised/);
    }
    const rounds = entries.filter((e) => e.type === "round" && e.body.runId === runId);
    expect(rounds.map((r) => r.body.status)).toEqual(Array.from({ length: MAX_ROUND_ATTEMPTS }, () => "aborted"));
  }, 200_000);
});
