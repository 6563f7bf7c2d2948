import { describe, expect, it } from "vitest";
import type { TestCase, TestModule } from "vitest/node";
import { descendants, findStalls, StallReporter } from "./support/stall-reporter.ts";

const mod = (moduleId: string): TestModule => ({ moduleId }) as TestModule;
const testCase = (moduleId: string, fullName: string): TestCase => ({ module: mod(moduleId), fullName }) as TestCase;

function harness() {
  let now = 0;
  const printed: string[] = [];
  const stops: string[] = [];
  const reporter = new StallReporter({ warnAfterMs: 10 * 60_000, limitMs: 40 * 60_000, checkEveryMs: 1_000, now: () => now, print: (l) => printed.push(l), stop: (r) => stops.push(r) });
  return { reporter, printed, stops, at: (min: number) => (now = min * 60_000) };
}

describe("the test suite's stall watchdog", () => {
  it("finds the files running past the warning, longest first, and marks those past the limit", () => {
    const running = new Map([
      ["a", { startedAt: 0 }],
      ["b", { startedAt: 5 }],
      ["c", { startedAt: 9 }],
    ]);
    expect(findStalls(running, 15, 10, 12).map((s) => [s.moduleId, s.runningMs, s.overLimit])).toEqual([
      ["a", 15, true],
      ["b", 10, false],
    ]);
    // A limit below the warning still stops the file.
    expect(findStalls(running, 15, 20, 12).map((s) => s.moduleId)).toEqual(["a"]);
  });

  it("names a slow file and its current test, at most once per warning period, and forgets it when it ends", () => {
    const h = harness();
    h.reporter.onTestModuleStart(mod("/r/test/slow.test.ts"));
    h.reporter.onTestModuleStart(mod("/r/test/quick.test.ts"));
    h.reporter.onTestCaseReady(testCase("/r/test/slow.test.ts", "grid › reference vectors"));
    h.at(9);
    h.reporter.onTestModuleEnd(mod("/r/test/quick.test.ts"));
    h.reporter.check();
    expect(h.printed).toEqual([]);
    h.at(11);
    h.reporter.check();
    h.at(15);
    h.reporter.check();
    expect(h.printed).toEqual(["[stall] still running after 11.0 min: /r/test/slow.test.ts › grid › reference vectors"]);
    h.at(21);
    h.reporter.check();
    expect(h.printed).toHaveLength(2);
    h.reporter.onTestModuleEnd(mod("/r/test/slow.test.ts"));
    h.at(60);
    h.reporter.check();
    expect(h.printed).toHaveLength(2);
    expect(h.stops).toEqual([]);
  });

  it("stops the run once, naming the file, when one file passes the limit", () => {
    const h = harness();
    h.reporter.onTestModuleStart(mod("/r/test/hung.test.ts"));
    h.at(39);
    h.reporter.check();
    expect(h.stops).toEqual([]);
    h.at(41);
    h.reporter.check();
    h.at(42);
    h.reporter.check();
    expect(h.stops).toHaveLength(1);
    expect(h.stops[0]).toContain("/r/test/hung.test.ts has run for 41.0 min, over the 40.0 min limit");
  });

  it("finds every process below vitest, and none beside it, for the kill at the stop", () => {
    const ps = ["  PID  PPID ELAPSED %CPU COMMAND", "    1     0 10:00 0.0 init", "   10     1 9:00 0.0 node (vitest)", "   11    10 8:00 1.0 node (vitest 1)", "   12    11 8:00 0.5 redis-server", "   13     1 9:00 0.0 sshd", "   14    12 1:00 0.0 sh"].join("\n");
    expect([...descendants(ps, 10)].sort()).toEqual([11, 12, 14]);
    expect(descendants(ps, 13).size).toBe(0);
  });
});
