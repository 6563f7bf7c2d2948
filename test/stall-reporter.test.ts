import { describe, expect, it } from "vitest";
import type { TestCase, TestModule } from "vitest/node";
import { descendants, findStalls, StallReporter } from "./support/stall-reporter.ts";

const mod = (moduleId: string): TestModule => ({ moduleId }) as TestModule;
const testCase = (moduleId: string, fullName: string): TestCase => ({ module: mod(moduleId), fullName }) as TestCase;
const ended = (moduleId: string, ok: boolean, tests: number): TestModule => ({ moduleId, ok: () => ok, children: { allTests: () => Array.from({ length: tests }) } }) as unknown as TestModule;

function harness() {
  let now = 0;
  const printed: string[] = [];
  const stops: string[] = [];
  const statuses: number[] = [];
  const reporter = new StallReporter({
    warnAfterMs: 10 * 60_000,
    limitMs: 40 * 60_000,
    shutdownGraceMs: 3 * 60_000,
    idleLimitMs: 10 * 60_000,
    checkEveryMs: 3_600_000, // the tests call check() themselves
    now: () => now,
    print: (l) => printed.push(l),
    stop: (r, status) => (stops.push(r), statuses.push(status)),
  });
  return { reporter, printed, stops, statuses, at: (min: number) => (now = min * 60_000) };
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

  it("finishes a run whose every file ended but vitest does not: status 0 when all passed, 1 when one failed", () => {
    for (const [ok, status, verdict] of [[true, 0, "all 2 files passed (5 tests)"], [false, 1, "1 of 2 files failed: /r/test/b.test.ts"]] as const) {
      const h = harness();
      h.reporter.onTestRunStart([{}, {}]);
      h.reporter.onTestModuleStart(mod("/r/test/a.test.ts"));
      h.reporter.onTestModuleStart(mod("/r/test/b.test.ts"));
      h.at(1);
      h.reporter.onTestModuleEnd(ended("/r/test/a.test.ts", true, 3));
      h.reporter.onTestModuleEnd(ended("/r/test/b.test.ts", ok, 2));
      h.at(3.5);
      h.reporter.check();
      expect(h.stops).toEqual([]);
      h.at(4.5);
      h.reporter.check();
      expect(h.stops).toHaveLength(1);
      expect(h.stops[0]).toContain(verdict);
      expect(h.statuses).toEqual([status]);
    }
  });

  it("stops a run in which no file runs and none starts, and says how many were left", () => {
    const h = harness();
    h.reporter.onTestRunStart([{}, {}, {}]);
    h.reporter.onTestModuleStart(mod("/r/test/a.test.ts"));
    h.at(1);
    h.reporter.onTestModuleEnd(ended("/r/test/a.test.ts", true, 1));
    h.at(10.5);
    h.reporter.check();
    expect(h.stops).toEqual([]);
    h.at(11.5);
    h.reporter.check();
    expect(h.stops[0]).toContain("none has started for 10.5 min, with 2 of 3 still to run");
    expect(h.statuses).toEqual([1]);
  });

  it("does nothing once vitest reports the run's end", () => {
    const h = harness();
    h.reporter.onTestRunStart([{}]);
    h.reporter.onTestModuleStart(mod("/r/test/a.test.ts"));
    h.reporter.onTestModuleEnd(ended("/r/test/a.test.ts", true, 1));
    h.reporter.onTestRunEnd();
    h.at(60);
    h.reporter.check();
    expect(h.stops).toEqual([]);
    // A rerun (watch mode) is watched again, from its own start.
    h.reporter.onTestRunStart([{}]);
    h.reporter.onTestModuleStart(mod("/r/test/a.test.ts"));
    h.at(60 + 41);
    h.reporter.check();
    expect(h.stops).toHaveLength(1);
    h.reporter.onTestRunEnd();
  });
});
