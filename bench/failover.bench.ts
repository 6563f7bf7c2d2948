/**
 * `npm run bench:failover [-- --kills 3 --ttl 10000]`: time from SIGKILLing the active
 * coordinator to the next round committed by the standby (issue #18 §6). Real processes: one
 * redis-server, two `tacit coordinator start` on a shared directory store, the TCP proxy of the
 * tests as load balancer, five devices in this process. Each kill hits the active coordinator
 * in ShareKeys of the next round; the killed one is restarted as standby (its supervisor's job).
 * The figure is lease TTL + lease poll + recovery + device reconnect + one whole re-run round.
 *
 * Then the reconnect figure (`--devices 200`): that many lightweight devices (bench/reconnect-fleet.ts,
 * in two device processes) subscribe through the proxy, and the time from losing them to 95 %
 * (and 100 %) of them subscribed again is measured for three ways of losing them: the proxy drops
 * every connection (the coordinator stays), SIGTERM of the active coordinator (it hands over and
 * sends the retry window), SIGKILL of it (no window: full-jitter backoff, standby after the TTL).
 */
import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir, cpus } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Redis } from "ioredis";
import { privateKeyFromPem, signBytes } from "../shared/crypto/index.ts";
import { CoordinatorClient, type RunStatus } from "../client/transport/coordinator-client.ts";
import { tinyRunSpec } from "../test/support/cluster.ts";
import { RedisProcess } from "../test/support/redis-process.ts";
import { freePort } from "../coordinator/redis/embedded-redis.ts";
import { CoordinatorProcess, initCoordinatorStateDir } from "../test/support/coordinator-process.ts";
import { startFleetDevice, type FleetDevice } from "../test/support/fleet-device.ts";
import { TcpProxy } from "../test/support/tcp-proxy.ts";
import { DirectoryStore } from "../coordinator/store/directory-store.ts";
import { ACTIVE_KEY, LEASE_TTL_MS } from "../coordinator/runs/active-lease.ts";
import { ReconnectFleet } from "./reconnect-fleet.ts";

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const kills = arg("kills", 3);
const ttl = arg("ttl", LEASE_TTL_MS);
const fleetSize = arg("devices", 200);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const tmp = mkdtempSync(join(tmpdir(), "tacit-bench-failover-"));
const cleanup: (() => unknown)[] = [];
try {
  const load0 = loadavg()[0]!;
  const redis = await RedisProcess.start(join(tmp, "redis"));
  cleanup.push(() => redis.stop());
  const storeDir = join(tmp, "store");
  const env = { TACIT_STORE_URL: pathToFileURL(storeDir).href, TACIT_LEASE_TTL_MS: String(ttl), TACIT_LOG_LEVEL: "warn" };
  const stateA = join(tmp, "a");
  initCoordinatorStateDir(stateA);
  const stateB = join(tmp, "b");
  cpSync(stateA, stateB, { recursive: true });
  const coords = [
    new CoordinatorProcess({ stateDir: stateA, port: await freePort(), redisUrl: redis.url, logFile: join(tmp, "a.log"), env }),
    new CoordinatorProcess({ stateDir: stateB, port: await freePort(), redisUrl: redis.url, logFile: join(tmp, "b.log"), env }),
  ];
  cleanup.push(() => coords.forEach((c) => c.signal("SIGKILL")));
  const reader = new Redis(redis.url, { maxRetriesPerRequest: null });
  reader.on("error", () => undefined);
  cleanup.push(() => reader.disconnect());
  const holder = async (): Promise<CoordinatorProcess | undefined> => {
    const pid = Number((await reader.get(ACTIVE_KEY))?.split(":")[1]);
    return coords.find((c) => c.child?.pid === pid && c.child.exitCode === null && c.child.signalCode === null);
  };
  // Each device's connection from its own loopback address, as through a balancer that keeps client addresses.
  const proxy = await TcpProxy.start(async () => (await holder())?.o.port, { spreadSources: true });
  cleanup.push(() => proxy.close());
  const address = `localhost:${proxy.port}`;
  await coords[0]!.start();
  await coords[1]!.start(undefined, "standby");
  const caFile = join(stateA, "tls", "ca.pem");
  const devices: FleetDevice[] = [];
  for (let i = 0; i < 5; i++) devices.push(await startFleetDevice({ address, caFile, adminKeyFile: join(stateA, "keys", "admin-1.key"), name: `b-${i}`, budgetFile: join(tmp, `budget-${i}.json`), trainDelayMs: 300, rpcDelayMs: 150 }));
  cleanup.push(() => devices.forEach((d) => d.stop()));
  const mlKey = privateKeyFromPem(readFileSync(join(stateA, "keys", "ml-team-1.key"), "utf8"));
  const ml = new CoordinatorClient({ address, caFile, credentials: { keyId: "ml-team-1", privateKey: mlKey.privateKey } });
  cleanup.push(() => ml.close());
  // Rounds enough for every kill however slowly the killed process restarts (each restart can
  // span several rounds on a loaded machine); the run is cancelled once the kills are done.
  const spec = tinyRunSpec({ name: "bench-failover", rounds: kills * 30 + 10, cohortSize: 5, minSurvivors: 3, populationSize: 5, clip: 1, noiseMultiplier: 0.5, deadlines: { ...tinyRunSpec().deadlines, selectionMs: 60_000, advertiseMs: 10_000, shareMs: 10_000, maskedInputMs: 20_000, unmaskMs: 10_000 } });
  const specJson = JSON.stringify(spec);
  const { runId } = await ml.unary<object, RunStatus>("RunControl", "LaunchRun", { specJson, requestSignature: Buffer.from(signBytes(mlKey.privateKey, specJson)) });
  const store = new DirectoryStore(storeDir);
  const results: { round: number; takeoverMs: number; commitMs: number }[] = [];
  let next = 0;
  for (let k = 0; k < kills; k++) {
    // The next round to reach ShareKeys (restarting the killed process under load can take
    // longer than a round, so rounds are taken as they come).
    let round = -1;
    for (let polls = 1; round < 0; polls++) {
      const m = /^round (\d+): share$/.exec((await reader.hget(`tacit:run:${runId}`, "currentPhase")) ?? "");
      if (m && Number(m[1]) >= next) round = Number(m[1]);
      else await sleep(20);
      if (polls % 250 === 0 && ["completed", "failed", "cancelled"].includes((await ml.unary<object, RunStatus>("RunControl", "GetRun", { runId })).state)) break;
    }
    if (round < 0) {
      console.error(`the run ended before kill ${k + 1}: ${k} kills measured`);
      break;
    }
    next = round + 1;
    const victim = (await holder())!;
    const t = Date.now();
    await victim.kill("SIGKILL");
    let takeoverMs = 0;
    while (!(await store.get(`commits/${runId}/${String(round).padStart(5, "0")}.json`))) {
      if (!takeoverMs && (await holder())) takeoverMs = Date.now() - t;
      await sleep(20);
    }
    results.push({ round, takeoverMs, commitMs: Date.now() - t });
    await victim.start(undefined, "standby");
  }
  const load1 = loadavg()[0]!;
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`failover: ${results.length} SIGKILLs of the active coordinator in ShareKeys, lease TTL ${ttl} ms, ${cpus().length} cores, load average ${load0.toFixed(1)} → ${load1.toFixed(1)}`);
  console.log("| round | kill → standby holds the lease (ms) | kill → round committed (ms) |");
  console.log("|---|---|---|");
  for (const r of results) console.log(`| ${r.round} | ${r.takeoverMs} | ${r.commitMs} |`);
  if (results.length) console.log(`median: takeover ${med(results.map((r) => r.takeoverMs))} ms, kill → next commit ${med(results.map((r) => r.commitMs))} ms`);
  // The reconnect figure, with no round in flight.
  await ml.unary("RunControl", "CancelRun", { runId }).catch(() => undefined); // already ended
  for (let st = await ml.unary<object, RunStatus>("RunControl", "GetRun", { runId }); !["completed", "failed", "cancelled"].includes(st.state); await sleep(500)) {
    st = await ml.unary<object, RunStatus>("RunControl", "GetRun", { runId });
  }
  const tFleet = Date.now();
  const fleet = await ReconnectFleet.start({ address, caFile, adminKeyFile: join(stateA, "keys", "admin-1.key"), n: fleetSize, procs: 2 });
  cleanup.push(() => fleet.stop());
  console.error(`${fleetSize} reconnect devices enrolled and subscribed in ${((Date.now() - tFleet) / 1000).toFixed(1)} s`);
  const reconnects: { how: string; p95?: number; all?: number; load: number }[] = [];
  const lose = async (how: string, act: () => Promise<(() => Promise<void>) | void>): Promise<void> => {
    if ((await fleet.waitUp(fleetSize, 0, 300_000)) === undefined) throw new Error("the fleet did not come back whole before the next cut");
    const load = loadavg()[0]!;
    const t = Date.now();
    const after = await act();
    const p95 = await fleet.waitUp(Math.ceil(0.95 * fleetSize), t, 300_000);
    const all = await fleet.waitUp(fleetSize, t, 120_000);
    reconnects.push({ how, ...(p95 !== undefined ? { p95 } : {}), ...(all !== undefined ? { all } : {}), load });
    await after?.();
  };
  await lose("the proxy drops every device connection; the coordinator stays active (no window: full jitter)", async () => void proxy.cutAll());
  const restart = (victim: CoordinatorProcess) => async () => victim.start(undefined, "standby");
  await lose("SIGTERM of the active coordinator: it hands over and ends the streams with a retry window", async () => {
    const victim = (await holder())!;
    victim.signal("SIGTERM");
    return async () => void (await victim.exited(), await restart(victim)());
  });
  await lose(`SIGKILL of the active coordinator: no window; the standby takes over after the lease TTL (${ttl} ms)`, async () => {
    const victim = (await holder())!;
    await victim.kill("SIGKILL");
    return restart(victim);
  });
  console.log("");
  console.log(`reconnect: ${fleetSize} lightweight devices behind the proxy, lost at once; time until 95 % and 100 % of them are subscribed again`);
  console.log("| how the devices were lost | → 95 % back (ms) | → 100 % back (ms) | load average |");
  console.log("|---|---|---|---|");
  for (const r of reconnects) console.log(`| ${r.how} | ${r.p95 ?? "not within 300 s"} | ${r.all ?? "not within 120 s"} | ${r.load.toFixed(1)} |`);
} finally {
  for (const f of cleanup.reverse()) await Promise.resolve(f()).catch(() => undefined);
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(0);
