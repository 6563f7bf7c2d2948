/**
 * A vitest reporter that names the test file holding up the suite.
 *
 * Vitest has no per-file time limit, and its default reporter prints a file only when it ends, so
 * a file that never ends (a child process that never exits, a worker whose event loop is blocked
 * and so never fires the test's own timeout) leaves CI silent until its own 90-minute limit kills
 * everything, with no word of which file it was. This reporter prints the files still running
 * (and the test each is in) once they pass `warnAfterMs`, and stops the run with exit status 1
 * once one passes `limitMs`, after printing the process tree, so the report says where it hung.
 *
 * It also covers the two ways a run stalls with no file running: no further file starts (the
 * pool failed to start a worker), and every file has ended but vitest itself does not finish
 * (its shutdown waits on a worker's IPC pipe: vitest-dev/vitest#10162). In the second case the
 * results are complete, so after `shutdownGraceMs` it prints them and exits with their status.
 */
import { execFile } from "node:child_process";
import type { Reporter, TestCase, TestModule } from "vitest/node";

interface Running {
  startedAt: number;
  currentTest?: string;
  lastWarnedAt?: number;
}

export interface StallReporterOptions {
  warnAfterMs: number;
  limitMs: number;
  checkEveryMs: number;
  now: () => number;
  print: (line: string) => void;
  /** How long vitest may take to finish once every file has ended. */
  shutdownGraceMs: number;
  /** How long the run may go with files still to run but none running (between files it is milliseconds). */
  idleLimitMs: number;
  /** Ends the run. The default prints the reason and the process tree, then exits with `status`. */
  stop: (reason: string, status: number) => void;
}

export interface Stall {
  moduleId: string;
  runningMs: number;
  currentTest?: string;
  overLimit: boolean;
}

/** The files running longer than `warnAfterMs` (or the limit, if lower) at `now`, longest first. Pure, for its own test. */
export function findStalls(running: ReadonlyMap<string, Running>, now: number, warnAfterMs: number, limitMs: number): Stall[] {
  const stalls: Stall[] = [];
  for (const [moduleId, r] of running) {
    const runningMs = now - r.startedAt;
    if (runningMs >= Math.min(warnAfterMs, limitMs)) stalls.push({ moduleId, runningMs, currentTest: r.currentTest, overLimit: runningMs >= limitMs });
  }
  return stalls.sort((a, b) => b.runningMs - a.runningMs);
}

const minutes = (ms: number): string => `${(ms / 60_000).toFixed(1)} min`;
const envMinutes = (name: string, fallback: number): number => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v * 60_000 : fallback * 60_000;
};

/** The pids below `rootPid` in `ps -eo pid,ppid,…` output. Pure, for its own test. */
export function descendants(psOutput: string, rootPid: number): Set<number> {
  const children = new Map<number, number[]>();
  for (const line of psOutput.split("\n")) {
    const [pid, ppid] = line.trim().split(/\s+/).map(Number);
    if (!Number.isInteger(pid) || !Number.isInteger(ppid)) continue;
    children.set(ppid!, [...(children.get(ppid!) ?? []), pid!]);
  }
  const found = new Set<number>();
  const stack = [rootPid];
  while (stack.length > 0) for (const c of children.get(stack.pop()!) ?? []) if (!found.has(c)) (found.add(c), stack.push(c));
  return found;
}

function printTreeAndExit(reason: string, status: number): void {
  // The tree shows what the stuck file was waiting on (a redis-server, a child that never
  // exited). Everything below vitest is then killed: a stuck worker would outlive vitest's exit.
  execFile("ps", ["-eo", "pid,ppid,etime,pcpu,args", "--forest"], { timeout: 10_000, maxBuffer: 1 << 22 }, (_err, stdout = "") => {
    const below = descendants(stdout, process.pid);
    const tree = stdout.split("\n").filter((l) => below.has(Number(l.trim().split(/\s+/)[0])));
    process.stderr.write(`${reason}\nprocesses under vitest (pid ${process.pid}) at the stop, all now killed:\n${tree.join("\n")}\n`);
    for (const pid of below) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    process.exit(status);
  });
}

export class StallReporter implements Reporter {
  private readonly running = new Map<string, Running>();
  private readonly ended: TestModule[] = [];
  private expected: number | undefined;
  private lastEventAt: number;
  private readonly opts: StallReporterOptions;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(opts: Partial<StallReporterOptions> = {}) {
    this.opts = {
      warnAfterMs: envMinutes("TACIT_TEST_FILE_WARN_MINUTES", 10),
      limitMs: envMinutes("TACIT_TEST_FILE_LIMIT_MINUTES", 45),
      checkEveryMs: 30_000,
      shutdownGraceMs: 3 * 60_000,
      idleLimitMs: 10 * 60_000,
      now: Date.now,
      print: (line) => process.stderr.write(`${line}\n`),
      stop: printTreeAndExit,
      ...opts,
    };
    this.lastEventAt = this.opts.now();
  }

  /** Each run (watch mode reruns too) is watched from its own start. */
  onTestRunStart(specifications: ReadonlyArray<unknown>): void {
    this.expected = specifications.length;
    this.lastEventAt = this.opts.now();
    this.running.clear();
    this.ended.length = 0;
    this.stopped = false;
    clearInterval(this.timer);
    this.timer = setInterval(() => this.check(), this.opts.checkEveryMs);
    this.timer.unref();
  }

  onTestModuleStart(m: TestModule): void {
    this.lastEventAt = this.opts.now();
    this.running.set(m.moduleId, { startedAt: this.lastEventAt });
  }

  onTestCaseReady(c: TestCase): void {
    const r = this.running.get(c.module.moduleId);
    if (r) r.currentTest = c.fullName;
  }

  onTestModuleEnd(m: TestModule): void {
    this.lastEventAt = this.opts.now();
    this.running.delete(m.moduleId);
    this.ended.push(m);
  }

  onTestRunEnd(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One look at the running files: warn about slow ones (every `warnAfterMs` at most), stop at the limit. */
  check(): void {
    if (this.stopped) return;
    const now = this.opts.now();
    if (this.running.size === 0 && this.expected !== undefined) this.checkIdle(now);
    for (const s of findStalls(this.running, now, this.opts.warnAfterMs, this.opts.limitMs)) {
      const where = `${s.moduleId}${s.currentTest ? ` › ${s.currentTest}` : ""}`;
      if (s.overLimit) {
        this.stopped = true;
        this.opts.stop(`[stall] ${where} has run for ${minutes(s.runningMs)}, over the ${minutes(this.opts.limitMs)} limit for one test file (TACIT_TEST_FILE_LIMIT_MINUTES): the run is stopped`, 1);
        return;
      }
      const r = this.running.get(s.moduleId)!;
      if (r.lastWarnedAt === undefined || now - r.lastWarnedAt >= this.opts.warnAfterMs) {
        r.lastWarnedAt = now;
        this.opts.print(`[stall] still running after ${minutes(s.runningMs)}: ${where}`);
      }
    }
  }

  /** No file is running: either the next one never started, or vitest is not finishing. */
  private checkIdle(now: number): void {
    const idleMs = now - this.lastEventAt;
    if (this.ended.length >= this.expected! && idleMs >= this.opts.shutdownGraceMs) {
      this.stopped = true;
      const failed = this.ended.filter((m) => !m.ok()).map((m) => m.moduleId);
      const tests = this.ended.reduce((n, m) => n + [...m.children.allTests()].length, 0);
      const verdict = failed.length === 0 ? `all ${this.ended.length} files passed (${tests} tests)` : `${failed.length} of ${this.ended.length} files failed: ${failed.join(", ")}`;
      this.opts.stop(`[stall] every test file has ended, but vitest has not finished ${minutes(idleMs)} later (its shutdown is stuck); the results are complete: ${verdict}`, failed.length === 0 ? 0 : 1);
    } else if (this.ended.length < this.expected! && idleMs >= this.opts.idleLimitMs) {
      this.stopped = true;
      this.opts.stop(`[stall] no test file is running and none has started for ${minutes(idleMs)}, with ${this.expected! - this.ended.length} of ${this.expected} still to run: the run is stopped`, 1);
    }
  }
}

export default StallReporter;
