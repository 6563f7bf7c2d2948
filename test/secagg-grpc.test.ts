/**
 * Secure aggregation over real gRPC: 10 devices, one vanishing at each phase (advertise,
 * share, masked input, unmask); the released model update must equal the plain mean of the
 * survivors' updates. And the canary test: no device's exact unmasked input (recorded where it
 * enters SecAgg masking) appears in what the coordinator receives, logs, stores (files, Redis)
 * or sends — only the sum does.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import type { RoundConfig } from "../shared/run/index.ts";
import type { RoundPhase } from "../client/participant/round-participant.ts";
import * as grpc from "@grpc/grpc-js";
import { SecAggDevice } from "../shared/secagg/index.ts";
import type { ModularVector } from "../shared/modular/index.ts";
import { loadCheckpoint } from "../shared/model/index.ts";
import { TestCluster, tinyRunSpec } from "./support/cluster.ts";

function constantDelta(value: number) {
  return async (cfg: RoundConfig) => ({ delta: new Float32Array(cfg.parameterCount).fill(value), loss: 1, examples: 1 });
}

const CANARY = 0.0123456;

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

describe("secure aggregation over real gRPC", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start();
  });
  afterAll(async () => cluster?.stop());

  it("recovers the survivors' exact mean with a device vanishing at each phase", async () => {
    // 12 devices: 4 dropouts stay within what t = ⌊(k + ⌈γn⌉)/2⌋ + 1 (malicious-coordinator floor) recovers from.
    const drops: (RoundPhase | undefined)[] = ["advertise", "share", "masked-input", "unmask", ...Array<undefined>(8).fill(undefined)];
    for (let i = 0; i < 12; i++) {
      const phase = drops[i];
      await cluster.addDevice(`dev-${i}`, { train: constantDelta((i + 1) / 1000), dropAt: (cfg) => (cfg.round === 0 ? phase : undefined) });
    }
    await cluster.waitConnected(12);
    const runId = await cluster.launch(tinyRunSpec({ rounds: 1, cohortSize: 12, minSurvivors: 5, populationSize: 12, clip: 100, serverOptimizer: "fedavg", serverLearningRate: 1 }));
    const before = (await cluster.coordinator.checkpoints.latest(runId))!.weights;
    const st = await cluster.waitRun(runId, 60_000);
    expect(st.state).toBe("completed");
    const r = st.rounds[0]!;
    const phases = JSON.parse(r.phaseCountsJson) as { dropouts: Record<string, number>; unmasked: number; maskedInput: number };
    expect(phases.dropouts).toEqual({ advertise: 1, share: 1, maskedInput: 1, unmask: 1 });
    // The device that vanished at unmasking had already sent its masked input: it is in the sum.
    expect(r.survivors).toBe(9);
    expect(phases.unmasked).toBe(8);
    const after = (await cluster.coordinator.checkpoints.latest(runId))!.weights;
    const survivors = [3, 4, 5, 6, 7, 8, 9, 10, 11];
    const expected = survivors.reduce((a, i) => a + (i + 1) / 1000, 0) / survivors.length;
    for (let j = 0; j < after.length; j += 97) expect(after[j]! - before[j]!).toBeCloseTo(expected, 6);
  });

  it("never shows one device's update to the coordinator: only the sum", async () => {
    const logLines: string[] = [];
    const logs = new Writable({ write: (chunk, _enc, cb) => (logLines.push(String(chunk)), cb()) });
    const c2 = await TestCluster.start({ logger: pino({ level: "trace" }, logs) });
    // The needles: the exact unmasked vector each device hands to SecAgg masking (its clipped,
    // noised, rounded update), recorded by a wrapper that forwards to the real maskInput.
    // Re-encoding the delta in the test would not do: randomized rounding makes every encoding differ.
    const inputs: ModularVector[] = [];
    const realMaskInput = SecAggDevice.prototype.maskInput;
    SecAggDevice.prototype.maskInput = function (this: SecAggDevice, input, received) {
      inputs.push({ bits: input.bits, length: input.length, data: new Uint32Array(input.data) });
      return realMaskInput.call(this, input, received);
    };
    // What the coordinator receives: every request body the devices put on the wire.
    const received: Buffer[] = [];
    let maskedInputsReceived = 0;
    const recorder: grpc.Interceptor = (options, next) =>
      new grpc.InterceptingCall(next(options), {
        sendMessage(message, nextSend) {
          received.push(Buffer.from(options.method_definition.requestSerialize(message)));
          if (options.method_definition.path.endsWith("/SubmitMaskedInput")) maskedInputsReceived++;
          nextSend(message);
        },
      });
    // What the coordinator sends to devices.
    const sent: Buffer[] = [];
    const origSend = c2.coordinator.hub.send.bind(c2.coordinator.hub);
    c2.coordinator.hub.send = (id, ev) => {
      sent.push("encoded" in ev ? Buffer.from(ev.encoded) : Buffer.from(JSON.stringify(ev, (_k, v: unknown) => (v && typeof v === "object" && (v as { type?: string }).type === "Buffer" ? Buffer.from((v as { data: number[] }).data).toString("base64") : v))));
      return origSend(id, ev);
    };
    try {
      // Every device's update is distinct and non-zero, so no individual input equals the sum.
      const deltas = [CANARY, 0.002, -0.003, 0.004];
      for (const [i, v] of deltas.entries()) await c2.addDevice(`dev-${i}`, { train: constantDelta(v) }, undefined, { interceptors: [recorder] });
      await c2.waitConnected(4);
      const runId = await c2.launch(tinyRunSpec({ rounds: 1, cohortSize: 4, minSurvivors: 3, populationSize: 4, clip: 100 }));
      // The needles are searched before the outcome is asserted: a device that leaks its input
      // (e.g. skips its masks) also breaks the sum, and the test should name the leak.
      const state = (await c2.waitRun(runId, 60_000)).state;
      expect(inputs.length).toBeGreaterThanOrEqual(4);
      expect(maskedInputsReceived).toBe(inputs.length);

      const haystacks: [string, Buffer][] = [];
      for (const f of filesUnder(c2.stateDir)) haystacks.push([f, readFileSync(f)]);
      for (const k of await c2.coordinator.redis.keys("*")) {
        const dump = await c2.coordinator.redis.dumpBuffer(k);
        haystacks.push([`redis ${await c2.coordinator.redis.type(k)} ${k}`, Buffer.concat([Buffer.from(k), dump ?? Buffer.alloc(0)])]);
      }
      haystacks.push(["logs", Buffer.from(logLines.join(""))]);
      received.forEach((b, i) => haystacks.push([`received request ${i}`, b]));
      sent.forEach((b, i) => haystacks.push([`sent event ${i}`, b]));
      for (const s of sent) haystacks.push(["sent (base64 runs decoded)", Buffer.concat(base64Runs(s.toString("latin1")))]);
      expect(haystacks.length).toBeGreaterThan(10);
      expect(logLines.length).toBeGreaterThan(0); // the coordinator did log (at trace level)

      for (const [k, input] of inputs.entries()) {
        const forms = needleForms(input);
        // The finder works: each form is found in a buffer that does hold the input.
        const holder = Buffer.concat([Buffer.from("prefix"), Buffer.from(input.data.buffer, input.data.byteOffset, input.data.byteLength)]);
        expect(holder.includes(forms[0]![1])).toBe(true);
        expect(Buffer.from(JSON.stringify({ v: Array.from(input.data) })).includes(forms[1]![1])).toBe(true);
        for (const [where, data] of haystacks) for (const [form, n] of forms) expect(data.includes(n), `device input ${k} (${form}) found in ${where}`).toBe(false);
      }
      expect(state).toBe("completed");
      expect(inputs).toHaveLength(4); // one attempt, four inputs
      // …while the released sum does carry every update: FedAvg (server lr 1) moved the model by their mean.
      const initial = await loadCheckpoint(c2.coordinator.checkpoints.dirFor(runId, -1));
      const after = (await c2.coordinator.checkpoints.latest(runId))!.weights;
      const mean = deltas.reduce((a, b) => a + b, 0) / deltas.length;
      for (let j = 0; j < after.length; j += 101) expect(after[j]! - initial.weights[j]!).toBeCloseTo(mean, 6);
    } finally {
      SecAggDevice.prototype.maskInput = realMaskInput;
      await c2.stop();
    }
  });
});

/** A window of the input in the forms a leak would take: raw words, decimal lists (unsigned, signed), base64. */
function needleForms(v: ModularVector): [string, Buffer][] {
  const words = Array.from(v.data.subarray(16, 32));
  const raw = Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength);
  return [
    ["raw words", raw.subarray(64, 128)],
    ["decimal", Buffer.from(words.join(","))],
    ["signed decimal", Buffer.from(words.map((w) => w | 0).join(","))],
    ["base64", Buffer.from(raw.toString("base64").slice(64, 128))], // bytes 48–96, on a 3-byte boundary
  ];
}

function base64Runs(text: string): Buffer[] {
  return [...text.matchAll(/[A-Za-z0-9+/]{16,}={0,2}/g)].map((m) => Buffer.from(m[0], "base64"));
}
