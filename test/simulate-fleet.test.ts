/**
 * `tacit simulate` with more devices than the coordinator's per-address bounds admit by default
 * (64 connections, an enrollment burst of 100): every simulated device is its own client on
 * loopback, so to the coordinator the fleet is one address. The evaluation's command runs all
 * 934 devices of devactions-large; before the simulation sized its coordinator's bounds, the
 * 65th device's connection was reset during enrollment and the run failed at once.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runSimulation, simulationCoordinatorBounds } from "../simulation/simulate.ts";
import { DEFAULT_SERVER_LIMITS } from "../coordinator/server/server-limits.ts";
import { DEFAULT_ADDRESS_LIMITS } from "../coordinator/server/authenticator.ts";

const TOKENS = ["commit:other", "M:src:other", "test:unit", "build:npm", "push:origin", "M:docs:other"];

/** `users` small per-user files in the dataset format: a repeating but user-shifted pattern. */
function fleetDataset(dir: string, users: number): void {
  mkdirSync(dir, { recursive: true });
  for (let u = 0; u < users; u++) {
    const lines: string[] = [];
    for (let i = 0; i < 24; i++) lines.push(`${1_700_000_000 + u * 1000 + i * 60}\t${TOKENS[(i + u) % TOKENS.length]}`);
    writeFileSync(join(dir, `user-${String(u).padStart(3, "0")}.tsv`), lines.join("\n") + "\n");
  }
}

describe("simulate: a fleet larger than the coordinator's per-address defaults", () => {
  const root = mkdtempSync(join(tmpdir(), "tacit-sim-fleet-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("enrolls, connects and aggregates every device", async () => {
    // Past both defaults: the 65th connection and the 101st enrollment from one address.
    const users = Math.max(DEFAULT_SERVER_LIMITS.maxConnectionsPerPeer, DEFAULT_ADDRESS_LIMITS.enroll.burst) + 10;
    const dataset = join(root, "data");
    fleetDataset(dataset, users);
    const m = await runSimulation({ dataset, rounds: 1, out: join(root, "out"), centralized: false, dropout: 0, delta: 1e-6, seed: 1, quiet: true, workers: 1 });
    expect(m.users).toBe(users);
    expect(m.rounds.filter((r) => r.status === "completed")).toHaveLength(1);
    expect(m.final?.survivors).toBe(users);
  }, 240_000);

  it("sizes the bounds to the evaluation's fleet and loosens nothing else", () => {
    // Enrolling is sequential per host thread, so the small fleet above never drains the bucket
    // (10 tokens/s refill); 934 devices on two threads did, 16 s into the run.
    const b = simulationCoordinatorBounds(934);
    expect(b.addressLimits!.enroll.burst).toBeGreaterThanOrEqual(934);
    expect(b.addressLimits!.enroll.perSecond).toBe(DEFAULT_ADDRESS_LIMITS.enroll.perSecond);
    expect(b.addressLimits!.failures).toEqual(DEFAULT_ADDRESS_LIMITS.failures);
    expect(b.limits!.maxConnectionsPerPeer).toBeGreaterThanOrEqual(2 * 934);
    expect(Object.keys(b.limits!)).toEqual(["maxConnectionsPerPeer"]);
    // A small simulation keeps the defaults.
    expect(simulationCoordinatorBounds(3).limits!.maxConnectionsPerPeer).toBe(DEFAULT_SERVER_LIMITS.maxConnectionsPerPeer);
    expect(simulationCoordinatorBounds(3).addressLimits!.enroll).toEqual(DEFAULT_ADDRESS_LIMITS.enroll);
  });
});
