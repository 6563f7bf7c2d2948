/**
 * `npm run bench:load`: N lightweight devices (real gRPC clients over TLS on loopback, each with
 * its own ed25519 identity, single-use enrollment, signed requests and real SecAgg+ crypto;
 * training replaced by a small fixed update) complete one secure-aggregation round against a
 * coordinator running as its own process with default deadlines. Reports round time and the
 * coordinator's CPU and peak RSS, for increasing N (default 100, 250, 500, 1000).
 * Usage: npm run bench:load [-- 100 1000]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
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

function procStats(pid: number): { cpuSeconds: number; rssMb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(f[11]) + Number(f[12]);
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { cpuSeconds: ticks / 100, rssMb: rss / 1024 };
}

async function startCoordinatorProcess(stateDir: string): Promise<{ child: ChildProcess; address: string }> {
  const init = spawn(process.execPath, [join(here, "bin/tacit.js"), "coordinator", "init", "--state-dir", stateDir], { stdio: "ignore" });
  await new Promise((r) => init.on("exit", r));
  const child = spawn(process.execPath, [join(here, "bin/tacit.js"), "coordinator", "start", "--state-dir", stateDir, "--port", "0"], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, TACIT_LOG_LEVEL: "warn" } });
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
  const subs: RoundSubscription[] = [];
  const clients: CoordinatorClient[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const { token } = await admin.unary<object, { token: string }>("Enrollment", "CreateToken", { ttlSeconds: 600 });
      const identity = generateEd25519();
      const client = new CoordinatorClient({ address, caFile });
      clients.push(client);
      const e = await client.unary<object, { deviceId: string; coordinatorPublicKey: Buffer }>("Enrollment", "Enroll", { token, identityPublicKey: Buffer.from(identity.publicRaw), deviceLabel: `load-${i}` });
      client.credentials = { keyId: e.deviceId, privateKey: identity.privateKey };
      const p = new RoundParticipant({
        deviceId: e.deviceId,
        identity,
        coordinatorPublicKey: new Uint8Array(e.coordinatorPublicKey),
        client,
        limits: { maxDeviceEpsilon: Infinity, delta: 1e-5, minNoiseMultiplier: 0, minSurvivors: 2 },
        budget: new BudgetRecord(),
        hooks: { train: async (cfg) => ({ delta: new Float32Array(cfg.parameterCount).fill(0.001), loss: 0, examples: 1 }) },
      });
      const s = new RoundSubscription({ client, backend: "none", eligible: () => true, onEvent: (ev) => p.handle(ev) });
      s.start();
      subs.push(s);
    }
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
    return `| ${n} | ${st.state} | ${r.survivors}/${r.cohort} | ${p.secagg.mode} k=${p.secagg.degree} t=${p.secagg.threshold} | ${seconds.toFixed(1)} | ${(after.cpuSeconds - before.cpuSeconds).toFixed(1)} | ${peak.toFixed(0)} |`;
  } finally {
    for (const s of subs) s.stop();
    for (const c of clients) c.close();
    admin.close();
    mlTeam.close();
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
  }
}

console.log("| devices | run | survivors | secure aggregation | round s (launch → done) | coordinator CPU s | coordinator peak RSS MB |");
console.log("|---|---|---|---|---|---|---|");
for (const n of NS) console.log(await one(n));
process.exit(0);
