/**
 * Finding L1, round messages: a cohort member learns the other members only as per-round
 * indices (with the identity keys their round keys are signed with), never as device ids. Every
 * message a device receives during a real round — invitation and signed RoundConfig, roster,
 * inbox, consistency, unmask, outcome — is searched for the other members' device ids.
 */
import { describe, expect, it } from "vitest";
import type { RoundConfig } from "../shared/run/index.ts";
import type { ServerEvent } from "../shared/proto-gen/tacit/v1/ServerEvent.ts";
import { waitFor } from "./support/wait.ts";
import { tinyRunSpec, OPEN_LIMITS } from "./support/cluster.ts";
import { useSuiteCluster } from "./support/suite-cluster.ts";

function constantDelta(value: number) {
  return async (cfg: RoundConfig) => ({ delta: new Float32Array(cfg.parameterCount).fill(value), loss: 1, examples: 1 });
}

/** Every event as text, bytes included (hex and base64), so an id hidden in any field is found. */
function asText(ev: ServerEvent): string {
  return JSON.stringify(ev, (_k, v: unknown) => {
    if (v && typeof v === "object" && (v as { type?: string }).type === "Buffer") {
      const b = Buffer.from((v as { data: number[] }).data);
      return `${b.toString("hex")} ${b.toString("base64")} ${b.toString("latin1")}`;
    }
    return v;
  });
}

describe("peers see per-round indices, not device ids (L1)", () => {
  const cluster = useSuiteCluster();

  it("no round message a device receives names another member's device id", async () => {
    const seen = new Map<string, { kind: string; text: string; configJson?: string }[]>();
    const devices = [];
    for (let i = 0; i < 4; i++) {
      const log: { kind: string; text: string; configJson?: string }[] = [];
      const d = await cluster().addDevice(`peer-${i}`, { train: constantDelta(0.01) }, OPEN_LIMITS, {
        silentAt: (ev) => {
          log.push({ kind: Object.keys(ev).find((k) => (ev as Record<string, unknown>)[k] != null) ?? "?", text: asText(ev), ...(ev.invite ? { configJson: ev.invite.configJson } : {}) });
          return false;
        },
      });
      seen.set(d.deviceId, log);
      devices.push(d);
    }
    await cluster().waitConnected(4);
    const runId = await cluster().launch(tinyRunSpec({ rounds: 1, cohortSize: 4, minSurvivors: 3, populationSize: 4, clip: 100, deadlines: { ...tinyRunSpec().deadlines, selectionMs: 1500 } }));
    expect((await cluster().waitRun(runId, 120_000)).state).toBe("completed");
    // The run is published before every device's outcome message has arrived: wait for them.
    await waitFor("every device's outcome", () => [...seen.values()].every((log) => log.some((m) => m.kind === "outcome")) || undefined, 20_000);

    for (const [self, log] of seen) {
      const kinds = new Set(log.map((m) => m.kind));
      // The whole protocol reached this device, so every kind of round message was searched.
      for (const k of ["invite", "roster", "inbox", "consistency", "unmask", "outcome"]) expect(kinds).toContain(k);
      for (const other of seen.keys()) {
        if (other === self) continue;
        for (const m of log) expect(m.text.includes(other), `${m.kind} to ${self} names ${other}`).toBe(false);
      }
      // The signed config commits to the cohort (its size and Merkle root), naming no member.
      const cfg = JSON.parse(log.find((m) => m.configJson)!.configJson!) as { cohort: Record<string, unknown> };
      expect(Object.keys(cfg.cohort).sort()).toEqual(["root", "size"]);
      expect(cfg.cohort.size).toBe(4);
    }
  }, 150_000);
});
