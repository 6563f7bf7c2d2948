/**
 * A simulated device host's devices take turns on its event loop, and a stall of a thread's loop
 * is reported. At 934 devices, two threads each handled 467 rosters back to back in one poll
 * phase: 10–20 s without reading a socket, the coordinator's keepalive pings went unanswered and
 * it dropped 400–600 devices mid-round, three attempts in a row.
 */
import { describe, expect, it } from "vitest";
import { turnTaker } from "../simulation/turns.ts";
import { watchEventLoop } from "../shared/transport/loop-watch.ts";

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // synchronous work, as a device's roster handling is
  }
}

/** Runs `handlers` as if they all arrived at once; counts a 1 ms timer's ticks until they are done. */
async function ticksWhile(schedule: (handler: () => void) => Promise<void>, handlers: number): Promise<{ ticks: number; order: number[] }> {
  let ticks = 0;
  const order: number[] = [];
  const timer = setInterval(() => (ticks += 1), 1);
  await Promise.all(Array.from({ length: handlers }, (_, i) => schedule(() => (busy(5), order.push(i)))));
  clearInterval(timer);
  return { ticks, order };
}

describe("devices on one thread take turns", () => {
  it("timers (and so socket reads) run between two devices' handlers, which start in arrival order", async () => {
    const next = turnTaker();
    const turns = await ticksWhile((h) => next().then(h), 20);
    expect(turns.order).toEqual(Array.from({ length: 20 }, (_, i) => i));
    // One handler per loop turn: the 1 ms timer fires between nearly every two of them.
    expect(turns.ticks).toBeGreaterThanOrEqual(15);

    // What the host did before: all twenty in one go, the loop never turned.
    const backToBack = await ticksWhile((h) => Promise.resolve().then(h), 20);
    expect(backToBack.ticks).toBe(0);
  });
});

describe("event-loop stall reports", () => {
  it("report a stall at least the threshold long with its length, and nothing for ordinary turns", async () => {
    // The clock the probe reads: three ordinary 10 ms probes, one that comes exactly the threshold late, then ordinary again.
    const readings = [0, 10, 20, 30, 1_040, 1_050, 1_060];
    let i = 0;
    const now = (): number => readings[Math.min(i++, readings.length - 1)]!;
    const stalls: number[] = [];
    const stop = watchEventLoop({ warnAfterMs: 1_000, probeMs: 10, now, onStall: (ms) => stalls.push(ms) });
    await new Promise((r) => setTimeout(r, 150));
    stop();
    expect(stalls).toEqual([1_000]);
    const after = i;
    await new Promise((r) => setTimeout(r, 50));
    expect(i).toBe(after); // stopped: the probe no longer runs
  });

  it("stays quiet below the threshold", async () => {
    const readings = [0, 10, 20, 1_009, 1_019];
    let i = 0;
    const stalls: number[] = [];
    const stop = watchEventLoop({ warnAfterMs: 1_000, probeMs: 10, now: () => readings[Math.min(i++, readings.length - 1)]!, onStall: (ms) => stalls.push(ms) });
    await new Promise((r) => setTimeout(r, 100));
    stop();
    expect(stalls).toEqual([]); // 979 ms late: under the 1,000 ms threshold
  });
});
