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

describe("a device sending malformed unmasking shares (M2)", () => {
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
});
