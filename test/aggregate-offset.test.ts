/**
 * M2b at the coordinator, live (real gRPC over loopback, real Redis, real devices): one enrolled
 * device adds 2^30 to every 32-bit word of its masked input (the red team's attack, clip 1,
 * z = 1). The masks still cancel, so the unmasked
 * sum carries the offset; it is larger than any sum the round's clipped, noised inputs can make,
 * and the coordinator refuses it: the attempt aborts ("aggregate refused"), the model is never
 * updated, and after MAX_ROUND_ATTEMPTS such attempts the run fails. Nobody is named: a masked
 * input carries no proof of who offset it. An offset within the bound is not detected at all
 * (norm proofs are out of scope, README): at 32 bits the encoding scales one device's clip norm
 * to about 2^31, so +2^30 in a single coordinate stays inside m·Δ₂ and is applied. A control
 * run without the offset completes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import type { RoundConfig } from "../shared/run/index.ts";
import type { RunStatus } from "../client/transport/coordinator-client.ts";
import { MAX_ROUND_ATTEMPTS } from "../coordinator/runs/run-scheduler.ts";
import { TestCluster, tinyRunSpec, OPEN_LIMITS } from "./support/cluster.ts";
import { ledgerText } from "./support/ledger-text.ts";

const OFFSET = 2 ** 30;

function constantDelta(value: number) {
  return async (cfg: RoundConfig) => ({ delta: new Float32Array(cfg.parameterCount).fill(value), loss: 1, examples: 1 });
}

/** While `on.value`, adds 2^30 (mod 2^32) to every coordinate of the outgoing masked input, as the red team did. */
function offsetMaskedInput(on: { value: boolean }, sent: { count: number }): grpc.Interceptor {
  return (options, next) =>
    new grpc.InterceptingCall(next(options), {
      sendMessage: (message: { bits?: number; data?: Buffer }, nxt) => {
        if (on.value && options.method_definition.path === "/tacit.v1.Rounds/SubmitMaskedInput" && message.data && message.bits === 32) {
          const data = Buffer.from(message.data);
          for (let o = 0; o + 4 <= data.length; o += 4) data.writeUInt32LE((data.readUInt32LE(o) + OFFSET) % 2 ** 32, o);
          message.data = data;
          sent.count++;
        }
        nxt(message);
      },
    });
}

interface Entry {
  type: string;
  body: Record<string, unknown>;
}

describe("a +2^30 offset in one device's masked input (M2b, live)", () => {
  let cluster: TestCluster;
  const on = { value: true };
  const sent = { count: 0 };

  beforeAll(async () => {
    cluster = await TestCluster.start();
    for (let i = 0; i < 3; i++) await cluster.addDevice(`honest-${i}`, { train: constantDelta(0.01) });
    await cluster.addDevice("offsetter", { train: constantDelta(0.01) }, OPEN_LIMITS, { interceptors: [offsetMaskedInput(on, sent)] });
    await cluster.waitConnected(4);
  }, 60_000);

  afterAll(async () => cluster?.stop());

  // Every device is in every cohort (population = cohort = 4), so every attempt carries the offset.
  const spec = () => tinyRunSpec({ rounds: 1, cohortSize: 4, minSurvivors: 3, populationSize: 4, clip: 1, noiseMultiplier: 1, deadlines: { ...tinyRunSpec().deadlines, selectionMs: 3000 } });
  const status = (runId: string) => cluster.mlTeam.unary<object, RunStatus>("RunControl", "GetRun", { runId });

  it("is refused at every attempt: never applied to the model, and the run fails after the attempt limit", async () => {
    const runId = await cluster.launch(spec());
    const initial = (await status(runId)).modelHash;
    const st = await cluster.waitRun(runId, 150_000);
    expect(sent.count).toBe(MAX_ROUND_ATTEMPTS); // the offset really went out at each attempt
    expect(st.state).toBe("failed");
    expect(st.roundsDone).toBe(0);
    expect(st.modelHash).toBe(initial); // the model never moved
    const entries = ledgerText(cluster.stateDir).trim().split("\n").map((l) => JSON.parse(l) as Entry);
    const rounds = entries.filter((e) => e.type === "round" && e.body.runId === runId);
    expect(rounds).toHaveLength(MAX_ROUND_ATTEMPTS);
    for (const r of rounds) {
      expect(r.body.status).toBe("aborted");
      expect(String(r.body.detail)).toMatch(/aggregate refused: the aggregate's norm .* exceeds what 4 clipped, noised inputs can reach/);
      expect(r.body.modelHashAfter).toBe(r.body.modelHashBefore);
    }
    // No checkpoint beyond the initial model was written for the run.
    expect(entries.some((e) => e.type === "round" && e.body.runId === runId && e.body.status === "completed")).toBe(false);
  }, 180_000);

  it("control: the same devices and spec without the offset complete the round and move the model", async () => {
    on.value = false;
    const runId = await cluster.launch(spec());
    const initial = (await status(runId)).modelHash;
    const st = await cluster.waitRun(runId, 120_000);
    expect(st.state).toBe("completed");
    expect(st.modelHash).not.toBe(initial);
  }, 150_000);
});
