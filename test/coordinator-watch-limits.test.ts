/**
 * I2: WatchRun streams are bounded per principal and overall. The N+1th stream of a principal
 * is refused with RESOURCE_EXHAUSTED, and so is any stream once the coordinator-wide bound is
 * reached; a stream that ends gives its slot back.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { TestCluster, tinyRunSpec } from "./support/cluster.ts";
import { waitFor } from "./support/wait.ts";
import { DEFAULT_DEADLINES } from "../shared/run/index.ts";
import type { CoordinatorClient } from "../client/transport/coordinator-client.ts";

type Outcome = { ok: true; stream: grpc.ClientReadableStream<unknown> } | { ok: false; code: number; details: string };

/** Opens a WatchRun stream and waits for its first status (admitted) or its error (refused). */
function openWatch(client: CoordinatorClient, runId: string): Promise<Outcome> {
  const stream = client.watchRun(runId);
  return new Promise((resolve) => {
    stream.once("data", () => resolve({ ok: true, stream }));
    stream.once("error", (e: grpc.ServiceError) => resolve({ ok: false, code: e.code, details: e.details }));
  });
}

describe("WatchRun stream bounds (I2)", () => {
  let cluster: TestCluster;
  let reviewer: CoordinatorClient;
  let runId: string;

  beforeAll(async () => {
    cluster = await TestCluster.start({ limits: { maxWatchStreamsPerPrincipal: 2, maxWatchStreams: 3 } });
    reviewer = cluster.principal("reviewer-1");
    // No device connects, so the run stays in selection for the whole test.
    runId = await cluster.launch(tinyRunSpec({ rounds: 1, deadlines: { ...DEFAULT_DEADLINES, selectionMs: 600_000 } }));
  }, 60_000);

  afterAll(async () => {
    await cluster?.mlTeam.unary("RunControl", "CancelRun", { runId }).catch(() => undefined);
    reviewer?.close();
    await cluster?.stop();
  });

  it("refuses a principal's N+1th stream and any stream over the overall bound with RESOURCE_EXHAUSTED; closing one frees its slot", async () => {
    const slots = cluster.coordinator.watchSlots;
    const a = await openWatch(cluster.mlTeam, runId);
    const b = await openWatch(cluster.mlTeam, runId);
    expect([a.ok, b.ok]).toEqual([true, true]);
    const third = await openWatch(cluster.mlTeam, runId); // over ml-team-1's 2
    expect(third.ok).toBe(false);
    if (!third.ok) {
      expect(third.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(third.details).toMatch(/at most 2/);
    }
    const r1 = await openWatch(reviewer, runId); // another principal: its own slots, total now 3
    expect(r1.ok).toBe(true);
    const r2 = await openWatch(reviewer, runId); // reviewer has 1 of 2, but the coordinator is at 3 of 3
    expect(r2.ok).toBe(false);
    if (!r2.ok) expect(r2.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect([slots.open("ml-team-1"), slots.open("reviewer-1"), slots.open()]).toEqual([2, 1, 3]);

    // The client closes one of its streams: the coordinator frees the slot, and a new one is admitted.
    if (a.ok) a.stream.cancel();
    await waitFor("the cancelled stream's slot to be freed", () => slots.open("ml-team-1") === 1);
    const again = await openWatch(cluster.mlTeam, runId);
    expect(again.ok).toBe(true);
    expect(slots.open()).toBe(3);
    for (const o of [b, r1, again]) if (o.ok) o.stream.cancel();
    await waitFor("every slot to be freed", () => slots.open() === 0);
  }, 60_000);
});
