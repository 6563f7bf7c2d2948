/**
 * `npm run bench:load`: N lightweight devices (real gRPC clients over TLS on loopback, each with
 * its own ed25519 identity, single-use enrollment, signed requests and real SecAgg+ crypto;
 * training replaced by a small fixed update) complete one secure-aggregation round against a
 * coordinator running as its own process with default deadlines. Reports round time and the
 * coordinator's CPU and peak RSS, for increasing N (default 100, 250, 500, 1000).
 * The devices are spread over several device processes (LOAD_DEVICE_PROCS, default 2; this
 * file re-run with `--devices`), each enrolling its share with its own admin-signed tokens.
 * Usage: npm run bench:load [-- 100 1000]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateEd25519, privateKeyFromPem, signBytes } from "../shared/crypto/index.ts";
import { CoordinatorClient, type RunStatus } from "../client/transport/coordinator-client.ts";
import { RoundParticipant } from "../client/participant/round-participant.ts";
import { BudgetRecord } from "../client/participant/budget-record.ts";
import { RoundSubscription } from "../client/transport/round-subscription.ts";
import { DEFAULT_DEADLINES } from "../shared/run/index.ts";
import { defaultTrainingFields } from "../shared/run/index.ts";

const here = new URL("..", import.meta.url).pathname;
const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const NS = sizes.length ? sizes : [100, 250, 500, 1000];
const MODEL = { version: 1 as const, vocabBuckets: 16, window: 2, embedDim: 4, hidden: 8, sessionGapSeconds: 1800 };
const DEVICE_PROCS = Number(process.env.LOAD_DEVICE_PROCS ?? 2);
/** LOAD_CPU_PROF_DIR=DIR writes a V8 CPU profile of the coordinator and every device process. */
const PROF_ARGS = [
  ...(process.env.LOAD_CPU_PROF_DIR ? ["--cpu-prof", `--cpu-prof-dir=${process.env.LOAD_CPU_PROF_DIR}`] : []),
  // e.g. LOAD_NODE_ARGS="--report-on-signal --report-directory=/tmp/r": `kill -USR2` a stuck process for its stacks.
  ...(process.env.LOAD_NODE_ARGS ? process.env.LOAD_NODE_ARGS.split(" ").filter(Boolean) : []),
];

interface DeviceProcInit {
  address: string;
  caFile: string;
  adminKeyFile: string;
  count: number;
  offset: number;
}

/** A device process: enrolls and subscribes `count` devices, prints "ready", runs until killed. */
async function deviceProcess(init: DeviceProcInit): Promise<void> {
  const admin = new CoordinatorClient({ address: init.address, caFile: init.caFile, credentials: { keyId: "admin-1", privateKey: privateKeyFromPem(readFileSync(init.adminKeyFile, "utf8")).privateKey } });
  const subs: RoundSubscription[] = [];
  // Hundreds of devices share this process's event loop, which no real device does: each round
  // message is handled in a loop iteration of its own, so one device's crypto never holds up the
  // others' network I/O (gRPC keepalive acks, RPC replies) for seconds.
  const turns: (() => void)[] = [];
  let scheduled = false;
  const drain = (): void => {
    const job = turns.shift();
    scheduled = turns.length > 0;
    if (scheduled) setImmediate(drain);
    job?.();
  };
  const inTurn = <T>(fn: () => Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      turns.push(() => void fn().then(resolve, reject));
      if (!scheduled) {
        scheduled = true;
        setImmediate(drain);
      }
    });
  // What went wrong on the device side (errors and stream losses), printed when stopped.
  const problems = new Map<string, number>();
  const report = (): void => {
    if (problems.size) process.stderr.write(`device process ${init.offset}: ${JSON.stringify(Object.fromEntries(problems))}\n`);
  };
  process.on("uncaughtException", (err) => {
    process.stderr.write(`device process ${init.offset} crashed: ${err.stack ?? err.message}\n`);
    report();
    process.exit(1);
  });
  for (let i = 0; i < init.count; i++) {
    const { token } = await admin.unary<object, { token: string }>("Enrollment", "CreateToken", { ttlSeconds: 600 });
    const identity = generateEd25519();
    const client = new CoordinatorClient({ address: init.address, caFile: init.caFile });
    const e = await client.unary<object, { deviceId: string; coordinatorPublicKey: Buffer }>("Enrollment", "Enroll", { token, identityPublicKey: Buffer.from(identity.publicRaw), deviceLabel: `load-${init.offset + i}` });
    client.credentials = { keyId: e.deviceId, privateKey: identity.privateKey };
    const p = new RoundParticipant({
      deviceId: e.deviceId,
      identity,
      coordinatorPublicKey: new Uint8Array(e.coordinatorPublicKey),
      client,
      limits: { maxDeviceEpsilon: Infinity, delta: 1e-5, minNoiseMultiplier: 0, minSurvivors: 2 },
      budget: new BudgetRecord(),
      hooks: {
        train: async (cfg) => ({ delta: new Float32Array(cfg.parameterCount).fill(0.001), loss: 0, examples: 1 }),
        onEvent: (ev) => {
          if (ev.type === "error") problems.set(ev.message.slice(0, 120), (problems.get(ev.message.slice(0, 120)) ?? 0) + 1);
        },
      },
    });
    const s = new RoundSubscription({
      client, backend: "none", eligible: () => true, onEvent: (ev) => (ev.heartbeat ? Promise.resolve() : inTurn(() => p.handle(ev))),
      // A newer attempt's invitation stops the older attempt's queued work at once (skipped unopened).
      onArrival: (ev) => p.arrived(ev),
      onStatus: (st) => {
        if (!st.connected) problems.set(`disconnected: ${st.detail ?? ""}`.slice(0, 120), (problems.get(`disconnected: ${st.detail ?? ""}`.slice(0, 120)) ?? 0) + 1);
      },
    });
    s.start();
    subs.push(s);
  }
  admin.close();
  process.stdout.write("ready\n");
  process.on("SIGTERM", () => {
    report();
    for (const s of subs) s.stop();
    process.exit(0);
  });
}

function procStats(pid: number): { cpuSeconds: number; rssMb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(f[11]) + Number(f[12]);
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { cpuSeconds: ticks / 100, rssMb: rss / 1024 };
}

/**
 * The coordinator process: `startCoordinator`, as `tacit coordinator start` runs it, except for
 * the per-address bounds (64 connections and 10 enrollments/s per source address, for laptops
 * behind shared NAT). Here the whole fleet connects from 127.0.0.1, one connection per device,
 * so those bounds are raised to the fleet's size; every other limit is the default.
 */
async function coordinatorProcess(stateDir: string): Promise<void> {
  const { startCoordinator } = await import("../coordinator/coordinator.ts");
  const fleet = 100_000;
  const c = await startCoordinator({
    stateDir, host: "127.0.0.1", port: 0,
    limits: { maxConnectionsPerPeer: fleet },
    addressLimits: { enroll: { burst: fleet, perSecond: fleet }, failures: { burst: 100, perSecond: 10 } },
  });
  writeFileSync(join(stateDir, "endpoint.json"), JSON.stringify({ address: `localhost:${c.port}`, pid: process.pid }) + "\n");
  process.stderr.write(`load coordinator listening on 127.0.0.1:${c.port}\n`);
  process.on("SIGTERM", () => void c.stop().then(() => process.exit(0)));
}

async function startCoordinatorProcess(stateDir: string): Promise<{ child: ChildProcess; address: string }> {
  const init = spawn(process.execPath, [join(here, "bin/tacit.js"), "coordinator", "init", "--state-dir", stateDir], { stdio: "ignore" });
  await new Promise((r) => init.on("exit", r));
  const child = spawn(process.execPath, [...PROF_ARGS, "--import", "tsx", join(here, "bench/load.bench.ts"), "--coordinator", stateDir], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, TACIT_LOG_LEVEL: "warn" } });
  await new Promise<void>((resolve, reject) => {
    let err = "";
    child.stderr!.on("data", (d: Buffer) => ((err += d.toString()), err.includes("listening on") && resolve()));
    child.on("exit", (c) => reject(new Error(`coordinator exited ${c}: ${err}`)));
  });
  const address = (JSON.parse(readFileSync(join(stateDir, "endpoint.json"), "utf8")) as { address: string }).address;
  return { child, address };
}

async function one(n: number): Promise<string> {
  const stateDir = mkdtempSync(join(tmpdir(), "tacit-load-"));
  const { child, address } = await startCoordinatorProcess(stateDir);
  const caFile = join(stateDir, "tls", "ca.pem");
  const key = (id: string) => privateKeyFromPem(readFileSync(join(stateDir, "keys", `${id}.key`), "utf8"));
  const admin = new CoordinatorClient({ address, caFile, credentials: { keyId: "admin-1", privateKey: key("admin-1").privateKey } });
  const ml = key("ml-team-1");
  const mlTeam = new CoordinatorClient({ address, caFile, credentials: { keyId: "ml-team-1", privateKey: ml.privateKey } });
  const procs: ChildProcess[] = [];
  try {
    const per = Math.ceil(n / DEVICE_PROCS);
    const tEnroll = performance.now();
    await Promise.all(
      Array.from({ length: DEVICE_PROCS }, (_, w) => {
        const count = Math.min(per, n - w * per);
        if (count <= 0) return Promise.resolve();
        const init: DeviceProcInit = { address, caFile, adminKeyFile: join(stateDir, "keys", "admin-1.key"), count, offset: w * per };
        const dp = spawn(process.execPath, [...PROF_ARGS, "--import", "tsx", join(here, "bench/load.bench.ts"), "--devices", JSON.stringify(init)], { stdio: ["ignore", "pipe", "inherit"] });
        procs.push(dp);
        return new Promise<void>((resolve, reject) => {
          dp.stdout!.on("data", (d: Buffer) => d.toString().includes("ready") && resolve());
          dp.once("exit", (c, sig) => {
            process.stderr.write(`device process ${w} exited (${c ?? sig})\n`);
            reject(new Error(`device process exited ${c ?? sig}`));
          });
        });
      }),
    );
    process.stderr.write(`${n} devices enrolled and subscribed in ${((performance.now() - tEnroll) / 1000).toFixed(1)} s (${procs.length} device processes)\n`);
    await new Promise((r) => setTimeout(r, 2000));
    const spec = {
      name: "load", model: MODEL, rounds: 1, cohortSize: n, minSurvivors: Math.floor(n / 2), populationSize: n,
      ...defaultTrainingFields(), clip: 1, noiseMultiplier: 0, delta: 1e-6, mechanism: "ddgauss", bits: 32,
      dropoutTolerance: 0.1, corruptTolerance: 0.1, signals: ["commit"], deadlines: DEFAULT_DEADLINES, seed: 1,
    };
    const specJson = JSON.stringify(spec);
    const before = procStats(child.pid!);
    let peak = before.rssMb;
    const t0 = performance.now();
    const st0 = await mlTeam.unary<object, RunStatus>("RunControl", "LaunchRun", { specJson, requestSignature: Buffer.from(signBytes(ml.privateKey, specJson)) });
    let st: RunStatus = st0;
    while (!["completed", "failed", "cancelled"].includes(st.state)) {
      await new Promise((r) => setTimeout(r, 250));
      peak = Math.max(peak, procStats(child.pid!).rssMb);
      st = await mlTeam.unary<object, RunStatus>("RunControl", "GetRun", { runId: st0.runId });
    }
    const seconds = (performance.now() - t0) / 1000;
    const after = procStats(child.pid!);
    const r = st.rounds.at(-1)!;
    const p = JSON.parse(r.phaseCountsJson) as { secagg: { mode: string; degree: number; threshold: number } };
    process.stderr.write(`${n}: ${st.state} ${r.detail} ${st.error} | ${st.rounds.map((x) => x.phaseCountsJson).join(" | ")}\n`);
    return `| ${n} | ${st.state} | ${r.survivors}/${r.cohort} | ${p.secagg.mode} k=${p.secagg.degree} t=${p.secagg.threshold} | ${seconds.toFixed(1)} | ${(after.cpuSeconds - before.cpuSeconds).toFixed(1)} | ${peak.toFixed(0)} |`;
  } finally {
    await Promise.all(procs.map((dp) => (dp.exitCode !== null || dp.signalCode !== null ? undefined : new Promise((r) => {
      const t = setTimeout(() => dp.kill("SIGKILL"), 10_000);
      dp.once("exit", () => (clearTimeout(t), r(undefined)));
      dp.kill("SIGTERM");
    }))));
    admin.close();
    mlTeam.close();
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    rmSync(stateDir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--devices") {
  await deviceProcess(JSON.parse(process.argv[3]!) as DeviceProcInit);
} else if (process.argv[2] === "--coordinator") {
  await coordinatorProcess(process.argv[3]!);
} else {
console.log("| devices | run | survivors | secure aggregation | round s (launch → done) | coordinator CPU s | coordinator peak RSS MB |");
console.log("|---|---|---|---|---|---|---|");
for (const n of NS) console.log(await one(n));
process.exit(0);
}
