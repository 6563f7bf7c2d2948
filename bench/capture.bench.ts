/**
 * `npx tsx bench/capture.bench.ts [seconds]`: the cost of capture on the laptop. Under its own
 * Xvfb, xdotool drives ~20 input actions per second (shortcuts, typed letters, Enter, clicks)
 * into a focused, consented window while CaptureService (real uiohook-napi, the X11 active-app
 * probe) appends into a real ActionStore (default flush policy) in a child process — once with
 * a window manager's `_NET_ACTIVE_WINDOW` on the root window (what every EWMH desktop has; the
 * bench writes it as a window manager would, and the probe follows it with one `xprop -spy`),
 * once without (plain Xvfb: the probe runs `xdotool getwindowfocus` every 400 ms of input).
 * Reports the child's CPU (% of one core; itself, and with the xprop/xdotool processes it runs)
 * and peak RSS, against an idle child (same process and modules, store open, no capture)
 * measured in the same run; and latency from xdotool's send to the record being appended, and
 * to it being sealed on disk. Default 60 s per capture run, 30 s idle.
 */
import { spawn, spawnSync, execFile, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { requireXTools, startXvfb } from "../test/support/xvfb.ts";

const self = fileURLToPath(import.meta.url);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Child: idle (baseline) or capture. Talks JSON lines on stdout, takes "stop" on stdin.

interface ChildReport {
  mode: string;
  cpuUserMs: number;
  cpuSystemMs: number;
  maxRssMb: number;
  shortcuts: { token: string; appendedAt: number }[];
  flushes: { at: number; ms: number }[];
  records: number;
  stored: number;
  probeMode: string;
}

async function child(mode: "idle" | "capture"): Promise<void> {
  const { ActionStore } = await import("../client/store/action-store.ts");
  const { CaptureService } = await import("../client/capture/capture-service.ts");
  const { X11ActiveAppProbe } = await import("../client/capture/active-app.ts");
  const dir = mkdtempSync(join(tmpdir(), "tacit-capbench-"));
  const store = ActionStore.open(join(dir, "store"));
  const flushes: ChildReport["flushes"] = [];
  const realFlush = store.flush.bind(store);
  store.flush = () => {
    const t = performance.now();
    realFlush();
    flushes.push({ at: Date.now(), ms: performance.now() - t });
  };
  const shortcuts: ChildReport["shortcuts"] = [];
  let records = 0;
  const probe = mode === "capture" ? new X11ActiveAppProbe() : undefined;
  const svc = new CaptureService({
    appProbe: probe,
    // TACIT_BENCH_APP_TTL_MS: probe staleness override, to separate probe cost from hook cost
    ...(process.env.TACIT_BENCH_APP_TTL_MS ? { appTtlMs: Number(process.env.TACIT_BENCH_APP_TTL_MS) } : {}),
    consent: { apps: ["benchedit"], kinds: ["shortcut", "click", "app-switch", "typing-burst", "key"] },
    onAction: (r) => {
      store.append(r);
      records++;
      if (r.kind === "shortcut") shortcuts.push({ token: r.token, appendedAt: Date.now() });
    },
  });
  if (mode === "capture") await svc.start();
  const cpu0 = process.cpuUsage();
  process.stdout.write(JSON.stringify({ ev: "ready" }) + "\n");
  await new Promise<void>((resolve) => createInterface({ input: process.stdin }).on("line", (l) => l === "stop" && resolve()));
  const cpu = process.cpuUsage(cpu0);
  const probeMode = probe?.mode ?? "none";
  if (mode === "capture") await svc.stop();
  probe?.close();
  store.close();
  const stored = store.read().records.length;
  rmSync(dir, { recursive: true, force: true });
  const report: ChildReport = { mode, cpuUserMs: cpu.user / 1000, cpuSystemMs: cpu.system / 1000, maxRssMb: process.resourceUsage().maxRSS / 1024, shortcuts, flushes, records, stored, probeMode };
  process.stdout.write(JSON.stringify({ ev: "done", report }) + "\n");
  // libuiohook keeps an X connection until exit; leave before the parent stops Xvfb.
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// Parent.

/** CPU ticks of a process: its own, and its children's (exited ones via cutime, live ones — the xprop spy — read directly). */
function procTicks(pid: number): { self: number; children: number } {
  const fields = (p: number): string[] => {
    const stat = readFileSync(`/proc/${p}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  };
  const f = fields(pid);
  let children = Number(f[13]) + Number(f[14]);
  for (const child of liveChildren(pid)) {
    try {
      const c = fields(child);
      children += Number(c[11]) + Number(c[12]) + Number(c[13]) + Number(c[14]);
    } catch {
      // exited between listing and reading: its ticks move to our cutime
    }
  }
  return { self: Number(f[11]) + Number(f[12]), children };
}

function liveChildren(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) => readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").split(" ").filter(Boolean).map(Number));
  } catch {
    return [];
  }
}

function hwmMb(pid: number): number {
  return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}


interface Running {
  proc: ChildProcess;
  done: Promise<ChildReport>;
}

async function startChild(mode: string, env: NodeJS.ProcessEnv): Promise<Running> {
  const proc = spawn(process.execPath, [...(process.env.TACIT_BENCH_CHILD_NODE_ARGS?.split(" ").filter(Boolean) ?? []), "--import", "tsx", self, "--child", mode], { env, stdio: ["pipe", "pipe", "inherit"] });
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  const done = new Promise<ChildReport>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on("line", (l) => {
      const m = JSON.parse(l) as { ev: string; report?: ChildReport };
      if (m.ev === "ready") ready();
      if (m.ev === "done") resolve(m.report!);
    });
    proc.on("exit", (c, sig) => {
      if (c !== 0) console.error(`(${mode} child exited with ${c ?? sig})`);
      reject(new Error(`${mode} child exited ${c ?? sig}`));
    });
  });
  await Promise.race([isReady, done]);
  return { proc, done };
}

/** Measures CPU ticks and peak RSS of a child over `seconds`, running `load` meanwhile. */
async function measure(mode: string, env: NodeJS.ProcessEnv, seconds: number, load?: (until: number) => Promise<void>) {
  const c = await startChild(mode, env);
  await sleep(2000); // settle: module loading and the first probe are not steady state
  const t0 = procTicks(c.proc.pid!);
  const wall0 = performance.now();
  const until = Date.now() + seconds * 1000;
  if (load) await load(until);
  else await sleep(seconds * 1000);
  const t1 = procTicks(c.proc.pid!);
  const wallS = (performance.now() - wall0) / 1000;
  await sleep(2500); // let the last typing burst end (idle gap) before stopping
  const hwm = hwmMb(c.proc.pid!);
  c.proc.stdin!.write("stop\n");
  const report = await c.done;
  // and wait until it is gone: it holds X connections, and Xlib ends a client whose server goes away
  await new Promise((r) => (c.proc.exitCode !== null || c.proc.signalCode !== null ? r(null) : c.proc.once("exit", r)));
  return { report, wallS, selfPct: ((t1.self - t0.self) / 100 / wallS) * 100, withChildrenPct: ((t1.self + t1.children - t0.self - t0.children) / 100 / wallS) * 100, hwm };
}

/** One measured capture run under xdotool load; latency from the shortcuts (matched in order, by letter). */
async function captureRun(env: NodeJS.ProcessEnv, seconds: number) {
  const sends: { letter: string; at: number }[] = [];
  const spawnMs: number[] = [];
  let actions = 0;
  const letters = "abcdefghijklmnopqrstuvwxyz";
  const load = async (until: number): Promise<void> => {
    let next = Date.now();
    for (let i = 0; Date.now() < until; i++) {
      // A cycle of 4: a shortcut (the latency probe), two typed letters, then Enter or a click.
      // One xdotool at a time: two at once would interleave (ctrl from one + a letter from the
      // other is a chord nobody typed).
      const phase = i % 4;
      let args: string[];
      if (phase === 0) {
        const letter = letters[(i / 4) % 26]!;
        args = ["key", `ctrl+${letter}`];
        sends.push({ letter, at: Date.now() });
      } else if (phase < 3) args = ["key", letters[(i * 7) % 26]!];
      else args = i % 8 === 3 ? ["key", "Return"] : ["click", "1"];
      const t = performance.now();
      await new Promise<void>((r) => execFile("xdotool", args, { env }, () => r()));
      spawnMs.push(performance.now() - t);
      actions++;
      next += 50;
      await sleep(Math.max(0, next - Date.now()));
    }
  };
  const m = await measure("capture", env, seconds, load);
  const toAppend: number[] = [];
  const toDisk: number[] = [];
  let mismatched = 0;
  let k = 0;
  for (const s of m.report.shortcuts) {
    while (k < sends.length && !s.token.endsWith(`ctrl+${sends[k]!.letter}`)) (k++, mismatched++);
    const sent = sends[k++];
    if (!sent) break;
    toAppend.push(s.appendedAt - sent.at);
    const sealed = m.report.flushes.find((f) => f.at >= s.appendedAt);
    if (sealed) toDisk.push(sealed.at - sent.at);
  }
  for (const a of [toAppend, toDisk, spawnMs]) a.sort((x, y) => x - y);
  return { m, actions, rate: actions / m.wallS, sent: sends.length, mismatched, toAppend, toDisk, spawnMs };
}

async function parent(seconds: number): Promise<void> {
  requireXTools();
  const x = await startXvfb();
  const env = { ...process.env, DISPLAY: x.display };
  const xdoSync = (...a: string[]): string => spawnSync("xdotool", a, { env, encoding: "utf8" }).stdout.trim();
  const win = spawn("xmessage", ["-geometry", "600x300+10+10", "Tacit capture benchmark"], { env, stdio: "ignore" });
  let id = "";
  for (let i = 0; i < 200 && !id; i++, await sleep(25)) id = xdoSync("search", "--onlyvisible", "--class", "xmessage").split("\n")[0] ?? "";
  xdoSync("set_window", "--class", "Benchedit", id);
  xdoSync("windowfocus", "--sync", id);
  xdoSync("mousemove", "--sync", "200", "150");

  try {
    console.log(`capture benchmark: Xvfb ${x.display}; idle baseline ${Math.round(seconds / 2)} s, then ${seconds} s of ~20 actions/s with a window manager's _NET_ACTIVE_WINDOW, then ${seconds} s without one`);
    const idle = await measure("idle", env, Math.round(seconds / 2));
    const row = (name: string, m: Awaited<ReturnType<typeof measure>>): string =>
      `| ${name} | ${m.wallS.toFixed(0)} | ${m.selfPct.toFixed(2)} | ${m.withChildrenPct.toFixed(2)} | ${Math.max(m.hwm, m.report.maxRssMb).toFixed(1)} |`;
    const rows = [row("idle (same process and modules, store open, no capture)", idle)];
    const notes: string[] = [];
    const setActive = (value: string | undefined): void => {
      // What an EWMH window manager does on every focus change; removed = no window manager.
      const args = value === undefined ? ["-root", "-remove", "_NET_ACTIVE_WINDOW"] : ["-root", "-f", "_NET_ACTIVE_WINDOW", "32x", "-set", "_NET_ACTIVE_WINDOW", value];
      spawnSync("xprop", args, { env });
    };
    for (const wm of [true, false]) {
      setActive(wm ? `0x${Number(id).toString(16)}` : undefined);
      const r = await captureRun(env, seconds);
      const label = wm ? "with a window manager (xprop -spy)" : "no window manager (xdotool getwindowfocus per 400 ms of input)";
      rows.push(row(`capture ${label}, ${r.rate.toFixed(1)} actions/s`, r.m));
      notes.push(
        `${label}: capture − idle ${(r.m.selfPct - idle.selfPct).toFixed(2)} % self, ${(r.m.withChildrenPct - idle.withChildrenPct).toFixed(2)} % with probes; probe mode seen by the child: ${r.m.report.probeMode}`,
        `  actions sent ${r.actions}, records appended ${r.m.report.records}, sealed on disk ${r.m.report.stored}, shortcuts matched ${r.toAppend.length}/${r.sent}${r.mismatched ? ` (${r.mismatched} sent but not seen)` : ""}`,
        `  event → appended: p50 ${pct(r.toAppend, 50).toFixed(1)} ms, p95 ${pct(r.toAppend, 95).toFixed(1)} ms, max ${pct(r.toAppend, 100).toFixed(1)} ms (from just before spawning xdotool; one whole "xdotool key" run takes p50 ${pct(r.spawnMs, 50).toFixed(1)} ms)`,
        `  event → sealed on disk: p50 ${(pct(r.toDisk, 50) / 1000).toFixed(1)} s, p95 ${(pct(r.toDisk, 95) / 1000).toFixed(1)} s (default flush policy: 256 records or 30 s; ${r.m.report.flushes.length} flushes, mean ${(r.m.report.flushes.reduce((a, f) => a + f.ms, 0) / Math.max(1, r.m.report.flushes.length)).toFixed(1)} ms each)`,
      );
    }
    console.log(
      [
        `| child | seconds | CPU % of one core (self) | CPU % (self + the xprop/xdotool it runs) | peak RSS MB |`,
        `|---|---|---|---|---|`,
        ...rows,
        "",
        ...notes,
        `targets: < 2 % of one core, < 120 MB RSS`,
      ].join("\n"),
    );
  } finally {
    win.kill();
    await new Promise((r) => (win.exitCode !== null ? r(null) : win.on("exit", r)));
    x.stop();
  }
}

const i = process.argv.indexOf("--child");
if (i >= 0) await child(process.argv[i + 1] as "idle" | "capture");
else await parent(Number(process.argv[2]) > 0 ? Number(process.argv[2]) : 60);
