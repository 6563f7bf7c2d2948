/**
 * A device host trains its devices one at a time on one model. When a round's attempt is
 * superseded (it aborted and the coordinator invited the next), the old attempt's devices still
 * waiting in line must not run: at 934 devices each thread had ~467 such jobs queued, and the
 * next attempt's devices waited behind them.
 */
import { describe, expect, it } from "vitest";
import { serialQueue } from "../simulation/serial-queue.ts";

describe("a device host's training queue", () => {
  it("runs jobs one at a time in order and skips a job whose attempt was abandoned while it waited", async () => {
    const run = serialQueue();
    const log: string[] = [];
    let release!: () => void;
    const first = run(async () => {
      log.push("first start");
      await new Promise<void>((r) => (release = r));
      log.push("first end");
      return 1;
    });
    const abandoned = new AbortController();
    const second = run(async () => {
      log.push("second ran");
      return 2;
    }, abandoned.signal);
    const third = run(async () => {
      log.push("third");
      return 3;
    }, new AbortController().signal);
    await new Promise((r) => setImmediate(r));
    expect(log).toEqual(["first start"]); // the others wait for the first
    abandoned.abort(new Error("attempt 0 superseded by attempt 1"));
    release();
    await expect(first).resolves.toBe(1);
    await expect(second).rejects.toThrow(/superseded/);
    await expect(third).resolves.toBe(3);
    expect(log).toEqual(["first start", "first end", "third"]);
  });

  it("keeps going after a job fails", async () => {
    const run = serialQueue();
    const failed = run(async () => {
      throw new Error("diverged");
    });
    await expect(failed).rejects.toThrow("diverged");
    await expect(run(async () => "next")).resolves.toBe("next");
  });
});
