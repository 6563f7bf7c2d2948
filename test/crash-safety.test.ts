/**
 * Crash safety with real processes and real SIGKILL: the coordinator runs as its own process
 * (`bin/tacit.js coordinator start`) against a redis-server (AOF on) this test starts; five
 * devices run in this process and one in a process of its own. One eight-round run, and in it:
 *   round 0–3  the coordinator is SIGKILLed when the round reaches AdvertiseKeys, ShareKeys,
 *              MaskedInput, Unmasking (watched through Redis keyspace events) and restarted;
 *   round 4    it SIGKILLs itself right after the round's checkpoint is written (before ledger);
 *   round 5    … right after the round's ledger entries are written (before LATEST and Redis);
 *   round 6    Redis is SIGKILLed mid-round and restarted on the same port and AOF;
 *   round 7    the device in its own process is SIGKILLed mid-round (the last round: with five
 *              devices left a later round would have another cohort size, hence another DDG
 *              event, which `verifyLedger` currently flags as ATTESTATION_MECHANISM).
 * Then: the run completes; `tacit verify`'s library accepts the ledger (chain, signatures,
 * semantics); every round is completed exactly once in the ledger; every checkpoint parses and
 * LATEST names the last complete one; each device's budget record charges every round it was
 * attested for exactly once, and nothing else except attempts whose unmasking shares had
 * already left the device when the coordinator died (conservative by design, see
 * client/participant/budget-record.ts).
 */
import { afterAll, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { privateKeyFromPem, signBytes } from "../shared/crypto/index.ts";
import { verifyLedger, type LedgerEntry } from "../shared/ledger/index.ts";
import { loadCheckpoint } from "../shared/model/index.ts";
import { CoordinatorClient, type RunStatus } from "../client/transport/coordinator-client.ts";
import type { BudgetEntry } from "../client/participant/budget-record.ts";
import { tinyRunSpec } from "./support/cluster.ts";
import { RedisProcess } from "./support/redis-process.ts";
import { freePort } from "../coordinator/redis/embedded-redis.ts";
import { CoordinatorProcess, initCoordinatorStateDir } from "./support/coordinator-process.ts";
import { startFleetDevice, type FleetDevice } from "./support/fleet-device.ts";
import { ledgerText } from "./support/ledger-text.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const PHASES = ["selection", "advertise", "share", "masked-input", "unmask"];

describe("crash safety: coordinator, Redis and device killed mid-round", () => {
  const tmp = mkdtempSync(join(tmpdir(), "tacit-crash-"));
  const cleanup: (() => Promise<unknown> | unknown)[] = [];
  afterAll(async () => {
    for (const f of cleanup.reverse()) await Promise.resolve(f()).catch(() => undefined);
    if (!process.env.TACIT_KEEP_CRASH_DIR) rmSync(tmp, { recursive: true, force: true });
  });

  it("resumes or re-runs, never corrupts checkpoints or ledger, never double-charges or loses a charge", async () => {
    const t0 = Date.now();
    const stateDir = join(tmp, "state");
    const logFile = join(tmp, "coordinator.log");
    const redis = await RedisProcess.start(join(tmp, "redis"));
    cleanup.push(() => redis.stop());
    initCoordinatorStateDir(stateDir);
    // A restarted coordinator waits for the killed one's active lease to expire: 3 s here, not 10.
    const coord = new CoordinatorProcess({ stateDir, port: await freePort(), redisUrl: redis.url, logFile, env: { TACIT_LEASE_TTL_MS: "3000" } });
    cleanup.push(() => coord.kill("SIGTERM"));
    await coord.start();

    const caFile = join(stateDir, "tls", "ca.pem");
    const adminKeyFile = join(stateDir, "keys", "admin-1.key");
    const devices: FleetDevice[] = [];
    for (let i = 0; i < 5; i++) {
      devices.push(await startFleetDevice({ address: coord.address, caFile, adminKeyFile, name: `crash-${i}`, budgetFile: join(tmp, `budget-${i}.json`), trainDelayMs: 300, rpcDelayMs: 150, value: (i + 1) / 1000 }));
    }
    cleanup.push(() => devices.forEach((d) => d.stop()));
    // The device that will be killed mid-round runs in its own process.
    const loneBudget = join(tmp, "budget-lone.json");
    const lone: ChildProcess = spawn(process.execPath, ["--import", "tsx", join(ROOT, "test/support/device-process.ts"), JSON.stringify({ address: coord.address, caFile, adminKeyFile, name: "crash-lone", budgetFile: loneBudget, trainDelayMs: 300, rpcDelayMs: 150, value: 0.006 })], { stdio: ["ignore", "pipe", "inherit"], cwd: ROOT });
    cleanup.push(() => lone.kill("SIGKILL"));
    const loneId = await new Promise<string>((resolve, reject) => {
      lone.stdout!.once("data", (d: Buffer) => resolve((JSON.parse(d.toString().split("\n")[0]!) as { deviceId: string }).deviceId));
      lone.once("exit", (c) => reject(new Error(`device process exited ${c}`)));
    });

    // Watch the coordinator's own round state in Redis (keyspace events on the run's hash).
    const reader = new Redis(redis.url, { maxRetriesPerRequest: null });
    const sub = new Redis(redis.url, { maxRetriesPerRequest: null });
    reader.on("error", () => undefined);
    sub.on("error", () => undefined);
    cleanup.push(() => (reader.disconnect(), sub.disconnect()));
    await reader.config("SET", "notify-keyspace-events", "Kh");

    const mlKey = privateKeyFromPem(readFileSync(join(stateDir, "keys", "ml-team-1.key"), "utf8"));
    const ml = new CoordinatorClient({ address: coord.address, caFile, credentials: { keyId: "ml-team-1", privateKey: mlKey.privateKey } });
    cleanup.push(() => ml.close());
    const spec = tinyRunSpec({
      name: "crash-safety",
      rounds: 8,
      cohortSize: 6,
      minSurvivors: 4,
      populationSize: 6,
      clip: 1,
      noiseMultiplier: 0.5,
      // Selection waits until all six devices are back after a restart.
      deadlines: { ...tinyRunSpec().deadlines, selectionMs: 30_000, advertiseMs: 10_000, shareMs: 10_000, maskedInputMs: 20_000, unmaskMs: 10_000 },
    });
    const specJson = JSON.stringify(spec);
    const launched = await ml.unary<object, RunStatus>("RunControl", "LaunchRun", { specJson, requestSignature: Buffer.from(signBytes(mlKey.privateKey, specJson)) });
    const runId = launched.runId;
    const runKey = `tacit:run:${runId}`;
    await sub.subscribe(`__keyspace@0__:${runKey}`);

    /** Resolves when the run's current phase is `round R: phase` or a later phase of round R. */
    const reach = (round: number, phase: string, timeoutMs = 60_000): Promise<string> =>
      new Promise((resolve, reject) => {
        const want = PHASES.indexOf(phase);
        const check = async (): Promise<void> => {
          const cur = (await reader.hget(runKey, "currentPhase")) ?? "";
          const m = /^round (\d+): (.+)$/.exec(cur);
          if (m && Number(m[1]) === round && PHASES.indexOf(m[2]!) >= want) finish(cur);
          else if (m && Number(m[1]) > round) finish(cur);
        };
        const onMsg = (): void => void check().catch(() => undefined);
        const timer = setInterval(onMsg, 25);
        const deadline = setTimeout(() => {
          clearInterval(timer);
          sub.off("message", onMsg);
          reject(new Error(`round ${round} did not reach ${phase} within ${timeoutMs} ms`));
        }, timeoutMs);
        const finish = (cur: string): void => {
          clearInterval(timer);
          clearTimeout(deadline);
          sub.off("message", onMsg);
          resolve(cur);
        };
        sub.on("message", onMsg);
        onMsg();
      });

    const events: string[] = [];
    // Rounds 0–3: SIGKILL the coordinator at each SecAgg phase, restart it.
    for (const [round, phase] of [[0, "advertise"], [1, "share"], [2, "masked-input"], [3, "unmask"]] as const) {
      const at = await reach(round, phase);
      // In Unmasking, let the request reach the devices first (they answer 150 ms later): those
      // that received it keep their charge for the lost attempt, which the budget check allows.
      if (phase === "unmask") await new Promise((r) => setTimeout(r, 60));
      const sig = await coord.kill("SIGKILL");
      events.push(`round ${round}: coordinator ${sig} at "${at}"`);
      expect(at).toBe(`round ${round}: ${phase}`);
      // The last restart arms the crash right after round 4's checkpoint is written.
      await coord.start(round === 3 ? "after-checkpoint:4" : undefined);
    }
    // Round 4: the coordinator kills itself between checkpoint and ledger; round 5: between
    // ledger and LATEST/Redis.
    events.push(`round 4: coordinator ${await coord.exited()} after writing the checkpoint`);
    await coord.start("after-ledger:5");
    events.push(`round 5: coordinator ${await coord.exited()} after writing the ledger entries`);
    await coord.start();
    // Round 6: Redis SIGKILLed mid-round, restarted on the same port and AOF.
    const at6 = await reach(6, "share");
    await redis.kill();
    await new Promise((r) => setTimeout(r, 300));
    await redis.restart();
    await reader.config("SET", "notify-keyspace-events", "Kh");
    events.push(`round 6: redis SIGKILL at "${at6}", restarted`);
    // Round 7: the device in its own process is SIGKILLed mid-round.
    const at7 = await reach(7, "masked-input");
    lone.kill("SIGKILL");
    events.push(`round 7: device ${loneId} SIGKILL at "${at7}"`);

    let st: RunStatus;
    for (;;) {
      st = await ml.unary<object, RunStatus>("RunControl", "GetRun", { runId });
      if (["completed", "failed", "cancelled"].includes(st.state)) break;
      if (Date.now() - t0 > 520_000) throw new Error(`run still ${st.state} (${st.currentPhase})`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(st.state, st.error).toBe("completed");
    expect(st.roundsDone).toBe(8);
    await coord.kill("SIGTERM");

    // The ledger: accepted by the verifier, each round completed exactly once, lost attempts
    // recorded as aborted.
    const text = ledgerText(stateDir);
    const findings = verifyLedger(text);
    expect(findings.violations).toEqual([]);
    expect(findings.ok).toBe(true);
    const entries = text.trimEnd().split("\n").map((l) => JSON.parse(l) as LedgerEntry);
    type RoundBody = { runId: string; round: number; attempt: number; status: string; survivors: string[]; modelHashBefore: string; modelHashAfter: string; detail: string };
    const rounds = entries.filter((e) => e.type === "round").map((e) => e.body as unknown as RoundBody).filter((b) => b.runId === runId);
    const completed = rounds.filter((b) => b.status === "completed");
    expect(completed.map((b) => b.round)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const lost = rounds.filter((b) => b.status === "aborted");
    expect(lost.map((b) => b.round)).toEqual([0, 1, 2, 3]); // rounds 4 and 5 were committed: published, not re-run
    for (const b of lost) expect(b.detail).toMatch(/the attempt was lost with its coordinator .* in phase (selection|advertise|share|masked-input|unmask)/);
    for (let i = 1; i < completed.length; i++) expect(completed[i]!.modelHashBefore).toBe(completed[i - 1]!.modelHashAfter);
    expect(entries.filter((e) => e.type === "run-end" && (e.body as { runId: string }).runId === runId)).toHaveLength(1);
    // Round 7 completed without the killed device (it vanished before its masked input).
    expect(completed[7]!.survivors).not.toContain(loneId);
    expect(completed[7]!.survivors).toHaveLength(5);

    // Checkpoints: every one parses and matches its own hash; LATEST names the last complete one.
    const runDir = join(stateDir, "store", "checkpoints", runId);
    const dirs = readdirSync(runDir).filter((n) => n.startsWith("round-"));
    expect(dirs).toHaveLength(9); // initial + 8 rounds
    for (const d of dirs) await loadCheckpoint(join(runDir, d));
    const latest = JSON.parse(readFileSync(join(runDir, "LATEST"), "utf8")) as { round: number; dir: string; hash: string };
    expect(latest.round).toBe(7);
    expect(existsSync(join(runDir, latest.dir, "model.json"))).toBe(true);
    const finalCp = await loadCheckpoint(join(runDir, latest.dir));
    expect((finalCp.meta as { weightsSha256: string }).weightsSha256).toBe(latest.hash);
    expect(latest.hash).toBe(completed[7]!.modelHashAfter);
    expect(readdirSync(runDir).filter((n) => n.includes(".tmp-"))).toEqual([]);

    // Budgets against the ledger's attestations.
    const attested = new Set(entries.filter((e) => e.type === "attestation").map((e) => {
      const b = e.body as { runId: string; round: number; deviceId: string };
      return `${b.deviceId}/${b.round}`;
    }));
    const completedAttempt = new Map(completed.map((b) => [b.round, b.attempt]));
    const lostInUnmask = new Set(lost.filter((b) => /phase unmask/.test(b.detail)).map((b) => `${b.round}/${b.attempt}`));
    let overCounted = 0;
    const budgets: [string, string][] = devices.map((d, i) => [d.deviceId, join(tmp, `budget-${i}.json`)]);
    budgets.push([loneId, loneBudget]);
    for (const [deviceId, file] of budgets) {
      const all = (JSON.parse(readFileSync(file, "utf8")) as { entries: BudgetEntry[] }).entries.filter((e) => e.runId === runId);
      const counted = all.filter((e) => e.outcome !== "superseded");
      const key = (e: BudgetEntry): string => `${e.round}/${e.attempt}`;
      expect(new Set(counted.map(key)).size, `${deviceId}: one charge per attempt`).toBe(counted.length);
      // No lost charge: every round the ledger attests for this device is charged, for that attempt.
      for (const b of completed) {
        if (!attested.has(`${deviceId}/${b.round}`)) continue;
        expect(counted.some((e) => e.round === b.round && e.attempt === b.attempt), `${deviceId} not charged for attested round ${b.round}`).toBe(true);
      }
      // No double charge: anything else counted is an attempt lost while the device had already
      // revealed its unmasking shares (or the killed device's own last round).
      for (const e of counted) {
        if (attested.has(`${deviceId}/${e.round}`) && completedAttempt.get(e.round) === e.attempt) continue;
        if (deviceId === loneId && e.round === 7) continue;
        expect(e.revealed && lostInUnmask.has(key(e)), `${deviceId} charged for round ${e.round} attempt ${e.attempt}, which the ledger does not attest`).toBe(true);
        overCounted++;
      }
      if (deviceId !== loneId) expect(counted.filter((e) => completedAttempt.get(e.round) === e.attempt)).toHaveLength(8);
    }
    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    console.log(`crash-safety (${secs} s, ${coord.starts} coordinator starts):\n  ${events.join("\n  ")}\n  ledger: ${entries.length} entries verified, ${completed.length} rounds completed once each, ${lost.length} lost attempts recorded as aborted: ${lost.map((b) => `r${b.round}a${b.attempt} (${/phase ([\w-]+)/.exec(b.detail)?.[1]})`).join(", ")}\n  budgets: ${budgets.length} devices, ${overCounted} conservative charges for attempts lost after the device revealed its unmasking shares`);
  }, 560_000);
});
