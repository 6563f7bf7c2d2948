/**
 * Secure aggregation over real gRPC: 10 devices, one vanishing at each phase (advertise,
 * share, masked input, unmask); the released model update must equal the plain mean of the
 * survivors' updates. And the canary test: one device's update never appears in what the
 * coordinator logs, stores (files, Redis) or sends — only the sum does.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import type { RoundConfig } from "../shared/run/index.ts";
import type { RoundPhase } from "../client/participant/round-participant.ts";
import { calibrateDistributedDp, encodeClientUpdate } from "../shared/dp/index.ts";
import { dpInputsFor } from "../shared/run/index.ts";
import { loadCheckpoint } from "../shared/model/index.ts";
import { TestCluster, tinyRunSpec } from "./support/cluster.ts";

function constantDelta(value: number) {
  return async (cfg: RoundConfig) => ({ delta: new Float32Array(cfg.parameterCount).fill(value), loss: 1, examples: 1 });
}

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
    // Capture every message the coordinator sends to devices.
    const sent: string[] = [];
    const origSend = c2.coordinator.hub.send.bind(c2.coordinator.hub);
    c2.coordinator.hub.send = (id, ev) => {
      sent.push(JSON.stringify(ev, (_k, v: unknown) => (v && typeof v === "object" && (v as { type?: string }).type === "Buffer" ? Buffer.from((v as { data: number[] }).data).toString("base64") : v)));
      return origSend(id, ev);
    };
    let canaryEncoded: Buffer | undefined;
    const CANARY = 0.0123456;
    await c2.addDevice("canary", {
      train: async (cfg) => {
        const delta = new Float32Array(cfg.parameterCount).fill(CANARY);
        // What this device's input is before masking (deterministic apart from rounding/noise;
        // noise is 0 here, so re-encoding gives the same integers).
        canaryEncoded = Buffer.from(encodeClientUpdate(delta, calibrateDistributedDp(dpInputsFor(cfg))).encoded.data.buffer);
        return { delta, loss: 1, examples: 1 };
      },
    });
    for (let i = 0; i < 3; i++) await c2.addDevice(`other-${i}`, { train: constantDelta(0) });
    await c2.waitConnected(4);
    const runId = await c2.launch(tinyRunSpec({ rounds: 1, cohortSize: 4, minSurvivors: 3, populationSize: 4, clip: 100 }));
    expect((await c2.waitRun(runId, 60_000)).state).toBe("completed");
    const needles = [
      Buffer.from(new Float32Array(16).fill(CANARY).buffer), // the raw update
      canaryEncoded!.subarray(64, 128), // its encoded, unmasked integers
    ];
    const haystacks: [string, Buffer][] = [];
    for (const f of filesUnder(c2.stateDir)) haystacks.push([f, readFileSync(f)]);
    const keys = await c2.coordinator.redis.keys("*");
    for (const k of keys) {
      const type = await c2.coordinator.redis.type(k);
      const dump = await c2.coordinator.redis.dumpBuffer(k);
      haystacks.push([`redis ${type} ${k}`, Buffer.concat([Buffer.from(k), dump ?? Buffer.alloc(0)])]);
    }
    haystacks.push(["logs", Buffer.from(logLines.join(""))]);
    haystacks.push(["outgoing messages", Buffer.from(sent.join("\n"))]);
    for (const s of sent) haystacks.push(["outgoing (base64 decoded)", Buffer.from(s.replace(/[^A-Za-z0-9+/=]/g, ""), "base64")]);
    expect(haystacks.length).toBeGreaterThan(10);
    for (const [where, data] of haystacks) for (const n of needles) expect(data.includes(n), `canary found in ${where}`).toBe(false);
    expect(logLines.length).toBeGreaterThan(0); // the coordinator did log (at trace level)
    // …while the released sum does carry it: with FedAvg (server lr 1) the model moved by CANARY/4.
    const initial = await loadCheckpoint(c2.coordinator.checkpoints.dirFor(runId, -1));
    const after = (await c2.coordinator.checkpoints.latest(runId))!.weights;
    for (let j = 0; j < after.length; j += 101) expect(after[j]! - initial.weights[j]!).toBeCloseTo(CANARY / 4, 6);
    await c2.stop();
  });
});
