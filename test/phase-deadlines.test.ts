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

/** Each phase's message, and the dropout counter a device silent at it ends up in. */
const PHASES: { name: string; counted: "advertise" | "share" | "maskedInput" | "unmask"; message: (ev: ServerEvent) => boolean }[] = [
  { name: "advertise", counted: "advertise", message: (ev) => Boolean(ev.invite) },
  { name: "share", counted: "share", message: (ev) => Boolean(ev.roster) },
  { name: "maskedInput", counted: "maskedInput", message: (ev) => Boolean(ev.inbox) },
  // A survivor that never signs the survivor set is not asked to unmask: an unmask dropout.
  { name: "consistency", counted: "unmask", message: (ev) => Boolean(ev.consistency) },
  { name: "unmask", counted: "unmask", message: (ev) => Boolean(ev.unmask) },
];

describe("phase deadlines", () => {
  let cluster: TestCluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  for (const { name, counted, message } of PHASES) {
    it(`a device silent at ${name} is dropped at the deadline and the round completes without it`, async () => {
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
      expect(counts.dropouts[counted]).toBe(1);
      expect(Object.values(counts.dropouts).reduce((a, b) => a + b, 0)).toBe(1);
      // The silent device never became a survivor once it stopped answering.
      expect(round.survivors).toBe(counted === "unmask" ? 5 : 4);
    });
  }
});
