/**
 * `npm run bench:soak`: the main job under load, many times. Runs the 20-round federated
 * simulation on every user of data/devactions N times while busy loops occupy every core at the
 * same priority as the simulation, and reports completions, hangs and wall times.
 *
 * A run that records no new round attempt in its metrics.json for --stall-minutes is a hang: it
 * is stopped with SIGTERM (which must leave its metrics.json, `complete: false`) and counted. A
 * run that is merely slow keeps going: a hang is the absence of progress, not a long wall time.
 * The default, 25 minutes, is the longest an attempt can legitimately take: every attempt ends,
 * completed or aborted (and both are recorded), within the simulation's phase deadlines, which
 * sum to 18.5 minutes (15 of them for local training before MaskedInput), plus its evaluation.
 * Results are appended as they come to --results (JSON lines) so a long soak that is interrupted
 * still leaves its figures. A run that does not complete keeps its output directory and a log
 * (stderr, coordinator warnings) under out/soak-evidence/ for diagnosis.
 *
 * --concurrency K runs K simulations at once (each with its own embedded Redis, state and output
 * directory): the same N runs, under more load than the busy loops alone give.
 *
 *   npm run bench:soak -- [--runs 10] [--rounds 20] [--concurrency 1] [--stall-minutes 25] [--nice 0] [--results FILE]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { availableParallelism } from "node:os";
import { appendFileSync, cpSync, existsSync, writeFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
};
const runs = Number(arg("runs", "10"));
const rounds = Number(arg("rounds", "20"));
const concurrency = Math.max(1, Number(arg("concurrency", "1")));
const stallMs = Number(arg("stall-minutes", "25")) * 60_000;
// Busy loops and simulation share this nice level: the load competes with the job as equals.
const nice = Number(arg("nice", "0"));
const resultsFile = arg("results", join(root, "out", "soak-results.jsonl"));

interface SoakRun {
  run: number;
  outcome: "completed" | "failed" | "hang";
  wallSeconds: number;
  exitCode: number | null;
  roundsRecorded: number;
  complete: boolean | undefined;
  finalTop3: number | undefined;
  loadAverage: number;
}

function niced(cmd: string, args: string[]): ChildProcess {
  return nice > 0 ? spawn("nice", ["-n", String(nice), cmd, ...args], { cwd: root, stdio: ["ignore", "ignore", "pipe"] }) : spawn(cmd, args, { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
}

function startBusyLoops(): ChildProcess[] {
  return Array.from({ length: availableParallelism() }, () => niced(process.execPath, ["-e", "for(;;){}"]));
}

/** Rounds recorded so far (0 before the first, or while the file is being replaced). */
function roundsIn(metricsFile: string): number {
  try {
    return (JSON.parse(readFileSync(metricsFile, "utf8")) as { rounds?: unknown[] }).rounds?.length ?? 0;
  } catch {
    return 0;
  }
}

/** Keeps a run that did not complete: its output directory and everything it printed. */
function keepEvidence(i: number, out: string, log: string): void {
  const dir = join(root, "out", "soak-evidence", `${new Date().toISOString().replace(/[:.]/g, "-")}-run${i}`);
  mkdirSync(dir, { recursive: true });
  cpSync(out, join(dir, "out"), { recursive: true });
  writeFileSync(join(dir, "stderr.log"), log);
  rmSync(out, { recursive: true, force: true });
  process.stderr.write(`run ${i}: evidence kept in ${dir}\n`);
}

async function oneRun(i: number): Promise<SoakRun> {
  const out = mkdtempSync(join(tmpdir(), "tacit-soak-"));
  const t0 = Date.now();
  // Coordinator warnings (aborted attempts, dropped jobs, watchdog) go to stderr, kept on failure.
  const child = niced(process.execPath, [join(root, "bin/tacit.js"), "simulate", "--dataset", "data/devactions", "--rounds", String(rounds), "--out", out]);
  running.add(child);
  child.once("exit", () => running.delete(child));
  let stderr = "";
  const log: string[] = [];
  child.stderr!.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
    log.push(d.toString());
  });
  let hung = false;
  const metricsFile = join(out, "metrics.json");
  let seen = 0;
  let progressAt = Date.now();
  const timer = setInterval(() => {
    const n = roundsIn(metricsFile);
    if (n > seen) [seen, progressAt] = [n, Date.now()];
    if (Date.now() - progressAt < stallMs || hung) return;
    hung = true;
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 15_000).unref();
  }, 5_000);
  const exitCode = await new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  clearInterval(timer);
  const m = existsSync(metricsFile) ? (JSON.parse(readFileSync(metricsFile, "utf8")) as { complete?: boolean; rounds?: unknown[]; final?: { eval?: { top3Micro?: number } } }) : undefined;
  if (!hung && exitCode === 0) rmSync(out, { recursive: true, force: true });
  else keepEvidence(i, out, log.join(""));
  if (!hung && exitCode !== 0) process.stderr.write(`run ${i} failed (exit ${exitCode}): ${stderr.split("\n").slice(-5).join(" | ")}\n`);
  return {
    run: i,
    outcome: hung ? "hang" : exitCode === 0 ? "completed" : "failed",
    wallSeconds: (Date.now() - t0) / 1000,
    exitCode,
    roundsRecorded: m?.rounds?.length ?? 0,
    complete: m?.complete,
    finalTop3: m?.final?.eval?.top3Micro,
    loadAverage: Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]),
  };
}

mkdirSync(dirname(resultsFile), { recursive: true });
const busy = startBusyLoops();
const stopBusy = (): void => busy.forEach((b) => b.kill("SIGKILL"));
process.on("exit", stopBusy);
// Stopping the soak stops its simulations the way a person would (SIGTERM: each stops its
// Redis and keeps its metrics), and waits for them, instead of orphaning them.
const running = new Set<ChildProcess>();
const stopRuns = async (): Promise<void> => {
  const exits = [...running].map((c) => new Promise((r) => c.once("exit", r)));
  for (const c of running) c.kill("SIGTERM");
  await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 15_000))]);
  process.exit(130);
};
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, () => void stopRuns());

process.stderr.write(`soak: ${runs} × ${rounds}-round simulation on data/devactions, ${concurrency} at a time, ${busy.length} busy loops, nice ${nice}, results → ${resultsFile}\n`);
const results: SoakRun[] = [];
let next = 0;
async function worker(): Promise<void> {
  for (let i = next++; i < runs; i = next++) {
    const r = await oneRun(i);
    results.push(r);
    appendFileSync(resultsFile, JSON.stringify({ at: new Date().toISOString(), concurrency, ...r }) + "\n");
    process.stderr.write(`run ${i}: ${r.outcome} in ${r.wallSeconds.toFixed(0)} s, ${r.roundsRecorded} rounds recorded, top-3 ${r.finalTop3?.toFixed(3) ?? "-"}, load ${r.loadAverage}\n`);
  }
}
await Promise.all(Array.from({ length: Math.min(concurrency, runs) }, () => worker()));
stopBusy();
const walls = results.map((r) => r.wallSeconds).sort((a, b) => a - b);
const summary = {
  runs,
  concurrency,
  completed: results.filter((r) => r.outcome === "completed").length,
  failed: results.filter((r) => r.outcome === "failed").length,
  hangs: results.filter((r) => r.outcome === "hang").length,
  wallSeconds: { min: walls[0], median: walls[Math.floor(walls.length / 2)], max: walls.at(-1) },
};
process.stdout.write(JSON.stringify(summary, null, 2) + "\n");
process.exitCode = summary.completed === runs ? 0 : 1;
