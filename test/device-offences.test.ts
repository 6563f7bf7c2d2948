/**
 * M2, device side: one enrolled device that sends unmasking shares that are not field elements
 * used to abort every attempt, unnamed, until the run failed. Now its message is refused (the
 * round completes without it), it is named in the ledger each time, and after three offences it
 * is quarantined: its stream is ended and it is never sampled again.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import type { RoundConfig } from "../shared/run/index.ts";
import { verifyLedger } from "../shared/ledger/index.ts";
import { QUARANTINE_AFTER } from "../coordinator/state/offences.ts";
import { TestCluster, tinyRunSpec, OPEN_LIMITS } from "./support/cluster.ts";
import { FIELD_PRIME } from "../shared/secagg/index.ts";
import { ledgerText } from "./support/ledger-text.ts";

function constantDelta(value: number) {
  return async (cfg: RoundConfig) => ({ delta: new Float32Array(cfg.parameterCount).fill(value), loss: 1, examples: 1 });
}

/** Rewrites every outgoing SubmitUnmasking so that its shares are not field elements (0xff… > 2^521 − 1). */
const corruptUnmasking: grpc.Interceptor = (options, next) =>
  new grpc.InterceptingCall(next(options), {
    sendMessage: (message: { selfMaskShares?: { share: Buffer }[]; secretKeyShares?: { share: Buffer }[] }, nxt) => {
      if (options.method_definition.path === "/tacit.v1.Rounds/SubmitUnmasking") {
        for (const s of [...(message.selfMaskShares ?? []), ...(message.secretKeyShares ?? [])]) s.share = Buffer.alloc(s.share.length, 0xff);
      }
      nxt(message);
    },
  });

/**
 * Rewrites every outgoing SubmitUnmasking share to share + 1 mod p: a valid field element, so only
 * the redundant shares can show it is wrong.
 */
const shiftUnmasking: grpc.Interceptor = (options, next) =>
  new grpc.InterceptingCall(next(options), {
    sendMessage: (message: { selfMaskShares?: { share: Buffer }[]; secretKeyShares?: { share: Buffer }[] }, nxt) => {
      if (options.method_definition.path === "/tacit.v1.Rounds/SubmitUnmasking") {
        for (const s of [...(message.selfMaskShares ?? []), ...(message.secretKeyShares ?? [])]) {
          const v = (BigInt("0x" + s.share.toString("hex")) + 1n) % FIELD_PRIME;
          s.share = Buffer.from(v.toString(16).padStart(s.share.length * 2, "0"), "hex");
        }
      }
      nxt(message);
    },
  });

/** Flips a bit of every outgoing ConsistencyCheck signature. */
const lyingConsistency: grpc.Interceptor = (options, next) =>
  new grpc.InterceptingCall(next(options), {
    sendMessage: (message: { signature?: Buffer }, nxt) => {
      if (options.method_definition.path === "/tacit.v1.Rounds/SignSurvivors" && message.signature) {
        message.signature = Buffer.from(message.signature);
        message.signature[0]! ^= 1;
      }
      nxt(message);
    },
  });

interface Entry {
  type: string;
  body: Record<string, unknown>;
}

function ledgerEntries(cluster: TestCluster): Entry[] {
  return ledgerText(cluster.coordinator.paths.root).trim().split("\n").map((l) => JSON.parse(l) as Entry);
}

describe("devices that break the unmasking protocol are named and quarantined (M2)", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start();
  });
  afterAll(async () => cluster?.stop());

  it("is refused without aborting the round, named in the ledger, and quarantined after repeated offences", async () => {
    for (let i = 0; i < 4; i++) await cluster.addDevice(`honest-${i}`, { train: constantDelta(0.01) });
    const bad = await cluster.addDevice("bad", { train: constantDelta(0.01) }, OPEN_LIMITS, { interceptors: [corruptUnmasking] });
    await cluster.waitConnected(5);
    const runId = await cluster.launch(tinyRunSpec({ rounds: QUARANTINE_AFTER + 1, cohortSize: 5, minSurvivors: 3, populationSize: 5, clip: 100, dropoutTolerance: 0.3, deadlines: { ...tinyRunSpec().deadlines, selectionMs: 1500, unmaskMs: 1500 } }));
    const st = await cluster.waitRun(runId, 120_000);
    expect(st.state).toBe("completed");
    const text = ledgerText(cluster.stateDir);
    const entries = text.trim().split("\n").map((l) => JSON.parse(l) as { type: string; body: Record<string, unknown> });
    const offences = entries.filter((e) => e.type === "device-offence");
    expect(offences.length).toBe(QUARANTINE_AFTER);
    expect(offences.every((o) => o.body.deviceId === bad.deviceId && /not a field element/.test(String(o.body.reason)))).toBe(true);
    // Every round completed; the last one was run without the quarantined device.
    const rounds = entries.filter((e) => e.type === "round" && e.body.runId === runId);
    expect(rounds.every((r) => r.body.status === "completed")).toBe(true);
    expect(rounds.at(-1)!.body.cohort).not.toContain(bad.deviceId);
    expect(cluster.coordinator.hub.isConnected(bad.deviceId)).toBe(false);
    expect(verifyLedger(text).offences).toEqual([{ deviceId: bad.deviceId, count: QUARANTINE_AFTER }]);
  }, 150_000);

  /**
   * With 7 devices connected, runs QUARANTINE_AFTER + 1 rounds of a cohort of 7 with no colluders
   * tolerated (full graph k = 6, t = 4: each member's secret has 6 revealed shares, so one wrong
   * one is correctable); checks that the run completed with QUARANTINE_AFTER offences named, and
   * returns the ledger entries the run added (each test checks who was named and why).
   */
  async function runSevenDeviceRounds(): Promise<{ runId: string; entries: Entry[]; offences: Entry[] }> {
    await cluster.waitConnected(7);
    const before = ledgerEntries(cluster).length;
    const runId = await cluster.launch(tinyRunSpec({ rounds: QUARANTINE_AFTER + 1, cohortSize: 7, minSurvivors: 3, populationSize: 7, clip: 100, dropoutTolerance: 0.3, corruptTolerance: 0, deadlines: { ...tinyRunSpec().deadlines, selectionMs: 1500, unmaskMs: 3000 } }));
    const st = await cluster.waitRun(runId, 150_000);
    expect(st.state).toBe("completed");
    const entries = ledgerEntries(cluster).slice(before);
    const offences = entries.filter((e) => e.type === "device-offence");
    expect(offences.length).toBe(QUARANTINE_AFTER);
    return { runId, entries, offences };
  }

  // Runs after the test above: its offender is quarantined, the 4 honest devices stay connected.
  it("a device sending valid-looking but wrong shares is located from the redundant shares, named, and quarantined; every round completes", async () => {
    for (let i = 4; i < 6; i++) await cluster.addDevice(`honest-${i}`, { train: constantDelta(0.01) });
    const wrong = await cluster.addDevice("wrong", { train: constantDelta(0.01) }, OPEN_LIMITS, { interceptors: [shiftUnmasking] });
    const { runId, entries, offences } = await runSevenDeviceRounds();
    expect(offences.every((o) => o.body.deviceId === wrong.deviceId && /wrong share of device \d+'s self-mask seed/.test(String(o.body.reason)))).toBe(true);
    const rounds = entries.filter((e) => e.type === "round" && e.body.runId === runId);
    // No attempt was lost to the wrong shares: each round completed at its first attempt.
    expect(rounds.map((r) => [r.body.status, r.body.attempt])).toEqual(Array.from({ length: QUARANTINE_AFTER + 1 }, () => ["completed", 0]));
    expect(rounds.slice(0, QUARANTINE_AFTER).every((r) => (r.body.survivors as string[]).includes(wrong.deviceId))).toBe(true);
    expect(rounds.at(-1)!.body.cohort).not.toContain(wrong.deviceId);
    expect(cluster.coordinator.hub.isConnected(wrong.deviceId)).toBe(false);
  }, 200_000);

  it("a device whose ConsistencyCheck signature lies is named and quarantined; the rounds complete without its signature", async () => {
    const liar = await cluster.addDevice("liar", { train: constantDelta(0.01) }, OPEN_LIMITS, { interceptors: [lyingConsistency] });
    const { runId, entries, offences } = await runSevenDeviceRounds();
    expect(offences.every((o) => o.body.deviceId === liar.deviceId && /ConsistencyCheck signature/.test(String(o.body.reason)))).toBe(true);
    const rounds = entries.filter((e) => e.type === "round" && e.body.runId === runId);
    expect(rounds.every((r) => r.body.status === "completed")).toBe(true);
    expect(rounds.at(-1)!.body.cohort).not.toContain(liar.deviceId);
    expect(cluster.coordinator.hub.isConnected(liar.deviceId)).toBe(false);
    // verify counts the offences it names.
    expect(verifyLedger(ledgerText(cluster.coordinator.paths.root)).offences.find((o) => o.deviceId === liar.deviceId)?.count).toBe(QUARANTINE_AFTER);
  }, 200_000);
});
