/**
 * Phase deadlines, with a laptop that stays connected but goes silent: it ignores the
 * coordinator's message of one phase and never answers it, so nothing closes its stream. Only
 * the phase's deadline can end the phase; the round then goes on with the devices that answered
 * (the silent one counted as that phase's dropout) and completes. Without deadlines the round
 * would wait forever.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { RoundConfig } from "../shared/run/index.ts";
import type { ServerEvent } from "../client/transport/coordinator-client.ts";
import { TestCluster, tinyRunSpec } from "./support/cluster.ts";

const constantDelta = (value: number) => async (cfg: RoundConfig) => ({ delta: new Float32Array(cfg.parameterCount).fill(value), loss: 1, examples: 1 });

const PHASES: { phase: "advertise" | "share" | "maskedInput" | "unmask"; message: (ev: ServerEvent) => boolean }[] = [
  { phase: "advertise", message: (ev) => Boolean(ev.invite) },
  { phase: "share", message: (ev) => Boolean(ev.roster) },
  { phase: "maskedInput", message: (ev) => Boolean(ev.inbox) },
  { phase: "unmask", message: (ev) => Boolean(ev.unmask) },
];

describe("phase deadlines", () => {
  let cluster: TestCluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  for (const { phase, message } of PHASES) {
    it(`a device silent at ${phase} is dropped at the deadline and the round completes without it`, async () => {
      cluster = await TestCluster.start();
      const c = cluster;
      for (let i = 0; i < 4; i++) await c.addDevice(`dev-${i}`, { train: constantDelta((i + 1) / 1000) });
      await c.addDevice("silent", { train: constantDelta(0.5) }, undefined, { silentAt: message });
      await c.waitConnected(5);
      const deadlines = { ...tinyRunSpec().deadlines, advertiseMs: 2500, shareMs: 2500, maskedInputMs: 5000, unmaskMs: 2500 };
      const runId = await c.launch(tinyRunSpec({ rounds: 1, cohortSize: 5, minSurvivors: 3, populationSize: 5, dropoutTolerance: 0.3, deadlines }));
      const st = await c.waitRun(runId, 30_000);
      expect(st.state, st.error).toBe("completed");
      const round = st.rounds.find((r) => r.status === "completed")!;
      const counts = JSON.parse(round.phaseCountsJson) as { dropouts: Record<string, number> };
      expect(counts.dropouts[phase]).toBe(1);
      expect(Object.values(counts.dropouts).reduce((a, b) => a + b, 0)).toBe(1);
      // The silent device never became a survivor once it stopped answering.
      expect(round.survivors).toBe(phase === "unmask" ? 5 : 4);
    });
  }
});
