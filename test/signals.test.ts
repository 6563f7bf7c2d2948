/**
 * Signals to the long-running commands, as real processes: `coordinator start` (embedded Redis)
 * stops within 10 s of SIGTERM in the middle of a round, leaves no redis-server and a free
 * state-dir lock, and a restart resumes the run; a second signal exits at once; `simulate`
 * stopped mid-run stops its Redis and leaves metrics.json with the rounds so far
 * (`complete: false`); `client start` stops on SIGHUP.
 */
import { afterAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { privateKeyFromPem, signBytes } from "../shared/crypto/index.ts";
import { verifyLedger, type LedgerEntry } from "../shared/ledger/index.ts";
import { CoordinatorClient, type RunStatus } from "../client/transport/coordinator-client.ts";
import { freePort, processAlive } from "../coordinator/redis/embedded-redis.ts";
import { stateLockPath } from "../coordinator/state/state-lock.ts";
import { CoordinatorProcess, initCoordinatorStateDir } from "./support/coordinator-process.ts";
import { startFleetDevice, type FleetDevice } from "./support/fleet-device.ts";
import { runTacit, TACIT_BIN } from "./support/run-tacit.ts";
import { tinyRunSpec } from "./support/cluster.ts";
import { sleep, waitFor } from "./support/wait.ts";
import { ledgerText } from "./support/ledger-text.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** Child processes of `pid` whose command line contains `name`. */
function childrenNamed(pid: number, name: string): number[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((p) => {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        return ppid === pid && readFileSync(`/proc/${p}/cmdline`, "utf8").includes(name);
      } catch {
        return false;
      }
    });
}

function mlTeam(stateDir: string, address: string): { client: CoordinatorClient; launch(spec: object): Promise<string> } {
  const key = privateKeyFromPem(readFileSync(join(stateDir, "keys", "ml-team-1.key"), "utf8"));
  const client = new CoordinatorClient({ address, caFile: join(stateDir, "tls", "ca.pem"), credentials: { keyId: "ml-team-1", privateKey: key.privateKey } });
  return {
    client,
    launch: async (spec) => {
      const specJson = JSON.stringify(spec);
      return (await client.unary<object, RunStatus>("RunControl", "LaunchRun", { specJson, requestSignature: Buffer.from(signBytes(key.privateKey, specJson)) })).runId;
    },
  };
}

describe("signals", () => {
  const tmp = mkdtempSync(join(tmpdir(), "tacit-signals-"));
  const cleanup: (() => unknown)[] = [];
  afterAll(async () => {
    for (const f of cleanup.reverse()) await Promise.resolve(f()).catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  });

  it("SIGTERM mid-round stops the coordinator within 10 s, stops its Redis, frees the lock, and a restart resumes the run", async () => {
    const stateDir = join(tmp, "coord");
    initCoordinatorStateDir(stateDir);
    const coord = new CoordinatorProcess({ stateDir, port: await freePort(), logFile: join(tmp, "coord.log") });
    cleanup.push(() => coord.kill("SIGKILL"));
    await coord.start();
    const redisPid = Number(readFileSync(join(stateDir, "redis", "redis.pid"), "utf8"));
    expect(processAlive(redisPid)).toBe(true);
    expect(readFileSync(stateLockPath(stateDir), "utf8").trim()).toBe(String(coord.child!.pid));

    // A second coordinator on the same state dir is refused while the first lives.
    // Starting a `tacit` process costs ~2.5 CPU-s; at load 30 one took 27 s, so 30 s was too tight.
    const second = await runTacit(["coordinator", "start", "--state-dir", stateDir, "--port", "0"], { timeoutMs: 90_000 });
    expect(second.status).not.toBe(0);
    expect(second.stderr).toMatch(/in use by another coordinator \(pid \d+\)/);

    const team = mlTeam(stateDir, coord.address);
    cleanup.push(() => team.client.close());
    // No device yet: the round waits in selection, where a SIGTERM used to keep the process alive.
    const runId = await team.launch(tinyRunSpec({ rounds: 2, deadlines: { ...tinyRunSpec().deadlines, selectionMs: 120_000 } }));
    await waitFor("selection", async () => (await team.client.unary<object, RunStatus>("RunControl", "GetRun", { runId })).currentPhase.includes("selection") || undefined, 60_000);
    team.client.close();

    const t0 = Date.now();
    const status = await coord.kill("SIGTERM");
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(status).toBe("143"); // the handler ran and exited with 128 + SIGTERM
    await waitFor("redis-server to exit", () => !processAlive(redisPid) || undefined, 5000);
    expect(existsSync(stateLockPath(stateDir))).toBe(false);

    await coord.start();
    const caFile = join(stateDir, "tls", "ca.pem");
    const devices: FleetDevice[] = [];
    for (let i = 0; i < 3; i++) devices.push(await startFleetDevice({ address: coord.address, caFile, adminKeyFile: join(stateDir, "keys", "admin-1.key"), name: `sig-${i}`, budgetFile: join(tmp, `budget-${i}.json`), value: 0.001 }));
    cleanup.push(() => devices.forEach((d) => d.stop()));
    const again = mlTeam(stateDir, coord.address);
    cleanup.push(() => again.client.close());
    const done = await waitFor("the run to end", async () => {
      const st = await again.client.unary<object, RunStatus>("RunControl", "GetRun", { runId });
      return ["completed", "failed", "cancelled"].includes(st.state) ? st : undefined;
    }, 120_000);
    expect(done.state).toBe("completed");
    const text = ledgerText(stateDir);
    const rounds = text.trim().split("\n").map((l) => JSON.parse(l) as LedgerEntry).filter((e) => e.type === "round").map((e) => {
      const b = e.body as { round: number; attempt: number; status: string; detail: string };
      return `${b.round}.${b.attempt} ${b.status}${b.status === "aborted" ? `: ${b.detail}` : ""}`;
    });
    expect(rounds[0]).toMatch(/^0\.0 aborted: stopped during selection: the coordinator is shutting down/);
    expect(rounds.slice(1)).toEqual(["0.1 completed", "1.0 completed"]);
    expect(verifyLedger(text).violations).toEqual([]);
    await coord.kill("SIGTERM");
  }, 180_000);

  it("a second signal exits at once", async () => {
    const stateDir = join(tmp, "coord2");
    initCoordinatorStateDir(stateDir);
    const coord = new CoordinatorProcess({ stateDir, port: await freePort(), logFile: join(tmp, "coord2.log") });
    cleanup.push(() => coord.kill("SIGKILL"));
    await coord.start();
    const redisPid = Number(readFileSync(join(stateDir, "redis", "redis.pid"), "utf8"));
    const exited = coord.exited();
    coord.signal("SIGINT");
    coord.signal("SIGINT");
    expect(await exited).toBe("130");
    await waitFor("redis-server to exit", () => !processAlive(redisPid) || undefined, 5000);
    expect(existsSync(stateLockPath(stateDir))).toBe(false);
  }, 60_000);

  it("SIGTERM to simulate stops its Redis and leaves the metrics of the rounds so far", async () => {
    const out = join(tmp, "sim-out");
    const child = spawn(process.execPath, [TACIT_BIN, "simulate", "--dataset", join(ROOT, "data/devactions"), "--clients", "3", "--rounds", "50", "--out", out], { stdio: ["ignore", "ignore", "pipe"], cwd: ROOT });
    cleanup.push(() => child.kill("SIGKILL"));
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exit = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    const metricsFile = join(out, "metrics.json");
    await waitFor("metrics.json after the first round", () => existsSync(metricsFile) || undefined, 150_000);
    const partial = JSON.parse(readFileSync(metricsFile, "utf8")) as { complete: boolean; rounds: unknown[] };
    expect(partial.complete).toBe(false);
    expect(partial.rounds.length).toBeGreaterThanOrEqual(1);
    const redis = childrenNamed(child.pid!, "redis-server");
    expect(redis).toHaveLength(1);
    const t0 = Date.now();
    child.kill("SIGTERM");
    expect(await exit).toBe(143);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(processAlive(redis[0]!)).toBe(false);
    expect(stderr).toMatch(/metrics so far \(complete: false\)/);
    const after = JSON.parse(readFileSync(metricsFile, "utf8")) as { complete: boolean; rounds: unknown[] };
    expect(after.complete).toBe(false);
    expect(after.rounds.length).toBeGreaterThanOrEqual(partial.rounds.length);
  }, 240_000);

  it("SIGTERM to simulate whose stderr reader has gone still stops its Redis (a closed pipe does not kill it first)", async () => {
    const child = spawn(process.execPath, [TACIT_BIN, "simulate", "--dataset", join(ROOT, "data/devactions"), "--clients", "3", "--rounds", "50", "--out", join(tmp, "sim-epipe")], { stdio: ["ignore", "ignore", "pipe"], cwd: ROOT });
    cleanup.push(() => child.kill("SIGKILL"));
    const exit = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    const redis = await waitFor("the simulation's redis-server", () => (childrenNamed(child.pid!, "redis-server").length === 1 ? childrenNamed(child.pid!, "redis-server") : undefined), 120_000);
    // The supervisor reading stderr dies: the shutdown message written on SIGTERM meets EPIPE.
    child.stderr.destroy();
    await sleep(500);
    child.kill("SIGTERM");
    expect(await exit).toBe(143);
    await waitFor("redis-server to exit", () => !processAlive(redis[0]!) || undefined, 10_000);
  }, 180_000);

  it("SIGHUP stops `client start`", async () => {
    const stateDir = join(tmp, "coord3");
    initCoordinatorStateDir(stateDir);
    const coord = new CoordinatorProcess({ stateDir, port: await freePort(), logFile: join(tmp, "coord3.log") });
    cleanup.push(() => coord.kill("SIGKILL"));
    await coord.start();
    const xdg = join(tmp, "xdg");
    const env = { XDG_DATA_HOME: xdg, TACIT_LOG_LEVEL: "warn" };
    const token = (await runTacit(["coordinator", "token", "create", "--state-dir", stateDir], { env })).stdout.trim();
    const enrolled = await runTacit(["client", "enroll", "--coordinator", coord.address, "--token", token, "--ca", join(stateDir, "tls", "ca.pem")], { env });
    expect(enrolled.status, enrolled.stderr).toBe(0);
    const consent = await runTacit(["client", "consent", "--apps", "code", "--kinds", "shortcut,click", "--max-epsilon", "10", "--min-noise", "0.5", "--min-survivors", "2", "--yes"], { env });
    expect(consent.status, consent.stderr).toBe(0);
    const daemon = spawn(process.execPath, [TACIT_BIN, "client", "start", "--no-capture"], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...env } });
    cleanup.push(() => daemon.kill("SIGKILL"));
    const exit = new Promise<number | null>((r) => daemon.once("exit", (code) => r(code)));
    const pidFile = join(xdg, "tacit", "daemon.pid");
    await waitFor("the daemon's pid file", () => existsSync(pidFile) || undefined, 60_000);
    const t0 = Date.now();
    daemon.kill("SIGHUP");
    expect(await exit).toBe(129);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(existsSync(pidFile)).toBe(false);
    await coord.kill("SIGTERM");
  }, 120_000);
});
