/**
 * The `tacit` binary as its users run it: a coordinator started as its own process, an ML team
 * launching, watching and cancelling a run through the CLI, and the simulation's error paths
 * (missing or malformed dataset, unknown flags, unreachable Redis, a port in use): one clear
 * line, non-zero exit, nothing half-written.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { runTacit, TACIT_BIN, type TacitResult } from "./support/run-tacit.ts";
import { existsSync, mkdtempSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const TACIT = TACIT_BIN;

function tacit(args: string[], env: NodeJS.ProcessEnv = {}): Promise<TacitResult> {
  return runTacit(args, { env });
}

describe("tacit CLI", () => {
  let state: string;
  let coordinator: ChildProcess;

  beforeAll(async () => {
    state = mkdtempSync(join(tmpdir(), "tacit-cli-"));
    expect((await tacit(["coordinator", "init", "--state-dir", state])).status).toBe(0);
    coordinator = spawn(process.execPath, [TACIT, "coordinator", "start", "--state-dir", state, "--port", "0"], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, TACIT_LOG_LEVEL: "warn" } });
    await new Promise<void>((resolve, reject) => {
      let err = "";
      coordinator.stderr!.on("data", (d: Buffer) => {
        err += d.toString();
        if (err.includes("listening on")) resolve();
      });
      coordinator.on("exit", (c) => reject(new Error(`coordinator exited ${c}: ${err}`)));
    });
  });
  afterAll(async () => {
    coordinator?.kill("SIGTERM");
    await new Promise((r) => coordinator?.once("exit", r));
  });

  it("creates enrollment tokens and launches, shows and cancels a run", async () => {
    const tok = await tacit(["coordinator", "token", "create", "--state-dir", state, "--json"]);
    expect(tok.status).toBe(0);
    expect(JSON.parse(tok.stdout).token).toMatch(/^tt_/);
    const specFile = join(state, "spec.json");
    writeFileSync(specFile, JSON.stringify({ name: "cli-run", rounds: 2, cohortSize: 2, minSurvivors: 2, populationSize: 10, noiseMultiplier: 0, deadlines: { selectionMs: 60_000, advertiseMs: 1000, shareMs: 1000, maskedInputMs: 1000, unmaskMs: 1000 } }));
    const launched = await tacit(["run", "launch", "--spec", specFile, "--state-dir", state, "--json"]);
    expect(launched.status, launched.stderr).toBe(0);
    const run = JSON.parse(launched.stdout) as { runId: string; state: string };
    expect(run.runId).toMatch(/^run-/);
    const status = await tacit(["run", "status", run.runId, "--state-dir", state]);
    expect(status.stdout).toContain(run.runId);
    const cancelled = await tacit(["run", "cancel", run.runId, "--state-dir", state, "--json"]);
    expect(JSON.parse(cancelled.stdout).state).toBe("cancelled");
    const watch = await tacit(["run", "watch", run.runId, "--state-dir", state]);
    expect(watch.status).toBe(0);
    expect(watch.stdout).toContain("cancelled");
    const again = await tacit(["run", "cancel", run.runId, "--state-dir", state]);
    expect(again.status).not.toBe(0);
    expect(again.stderr).toMatch(/already cancelled/);
    const bad = await tacit(["run", "launch", "--spec", specFile.replace("spec", "nope"), "--state-dir", state]);
    expect(bad.stderr).toMatch(/cannot read run spec/);
  });

  it("refuses a port that is in use with one clear line", async () => {
    const endpoint = JSON.parse(readFileSync(join(state, "endpoint.json"), "utf8")) as { address: string };
    const port = endpoint.address.split(":").pop()!;
    const other = mkdtempSync(join(tmpdir(), "tacit-cli-2-"));
    expect((await tacit(["coordinator", "init", "--state-dir", other])).status).toBe(0);
    const r = await tacit(["coordinator", "start", "--state-dir", other, "--port", port]);
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}`));
    // A second coordinator on the same state dir is refused without touching the first one's Redis.
    const same = await tacit(["coordinator", "start", "--state-dir", state, "--port", "0"]);
    expect(same.status).not.toBe(0);
    expect(same.stderr).toMatch(/in use by another coordinator/);
    expect((await tacit(["run", "status", "--state-dir", state])).status).toBe(0);
  });

  it("simulation errors: one line naming the problem, non-zero exit, no metrics written", async () => {
    const out = mkdtempSync(join(tmpdir(), "tacit-sim-out-"));
    const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
      [["simulate", "--dataset", "/nonexistent", "--out", out], {}, /--dataset \/nonexistent: no such directory/],
      [["simulate", "--dataset", "data/devactions", "--frobnicate", "--out", out], {}, /unknown option '--frobnicate'/],
      [["simulate", "--dataset", "data/devactions", "--rounds", "zero", "--out", out], {}, /--rounds must be a number/],
      [["simulate", "--dataset", "data/devactions", "--clients", "500", "--out", out], {}, /exceeds the 51 user files/],
      [["simulate", "--dataset", "data/devactions", "--clients", "3", "--rounds", "1", "--out", out], { REDIS_URL: "redis://:pw@127.0.0.1:1" }, /cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1/],
    ];
    const bad = join(mkdtempSync(join(tmpdir(), "tacit-bad-data-")), "d");
    mkdirSync(bad);
    writeFileSync(join(bad, "user-1.tsv"), "1700000000\tcommit:fix\nnot a line\n");
    cases.push([["simulate", "--dataset", bad, "--out", out], {}, /user-1\.tsv line 2/]);
    for (const [args, env, re] of cases) {
      const r = await tacit(args, env);
      expect(r.status, args.join(" ")).not.toBe(0);
      expect(r.stderr, args.join(" ")).toMatch(re);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
    expect(existsSync(join(out, "metrics.json"))).toBe(false);
  });

  it("evaluates on --eval-dir files, including a user with no training data, and compares with --centralized in the same units", async () => {
    const evalDir = mkdtempSync(join(tmpdir(), "tacit-eval-"));
    writeFileSync(join(evalDir, "user-06.tsv"), readFileSync("data/devactions/user-06.tsv"));
    writeFileSync(join(evalDir, "user-unseen.tsv"), readFileSync("data/devactions/user-40.tsv"));
    const out = mkdtempSync(join(tmpdir(), "tacit-sim-eval-"));
    const fed = await tacit(["simulate", "--dataset", "data/devactions", "--clients", "3", "--rounds", "1", "--eval-dir", evalDir, "--out", out, "--json"]);
    expect(fed.status, fed.stderr).toBe(0);
    const m = JSON.parse(fed.stdout) as { evalSource: string; final: { eval: { users: number; events: number; top3Micro: number; top3Macro: number } } };
    expect(m.evalSource).toBe(evalDir);
    expect(m.final.eval.users).toBe(2);
    const cen = await tacit(["simulate", "--dataset", "data/devactions", "--clients", "3", "--rounds", "1", "--eval-dir", evalDir, "--centralized", "--out", out, "--json"]);
    expect(cen.status, cen.stderr).toBe(0);
    const c = JSON.parse(cen.stdout) as { mode: string; final: { eval: { users: number; events: number } } };
    expect(c.mode).toBe("centralized");
    expect(c.final.eval.events).toBe(m.final.eval.events); // same held-out events, same units
  });

  it("runs a small simulation with dropouts and records survivors and dropouts per phase", async () => {
    const out = mkdtempSync(join(tmpdir(), "tacit-sim-"));
    const r = await tacit(["simulate", "--dataset", "data/devactions", "--clients", "8", "--rounds", "2", "--dropout", "0.3", "--corrupt-tolerance", "0", "--min-survivors", "3", "--local-epochs", "1", "--out", out, "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const m = JSON.parse(r.stdout) as { complete: boolean; rounds: { status: string; phases: { dropouts: Record<string, number>; advertised: number; unmasked: number } }[]; backend: string; final: unknown };
    expect(JSON.parse(readFileSync(join(out, "metrics.json"), "utf8"))).toEqual(JSON.parse(r.stdout));
    expect(m.complete).toBe(true); // the last rewrite of metrics.json; every earlier one says false
    expect(["tensorflow", "wasm", "cpu"]).toContain(m.backend);
    expect(m.rounds.length).toBeGreaterThanOrEqual(2);
    for (const round of m.rounds) expect(Object.keys(round.phases.dropouts).sort()).toEqual(["advertise", "maskedInput", "share", "unmask"]);
    expect(r.stderr).toMatch(/round 1\/2/);
    const v = await tacit(["verify", "--ledger", join(out, "ledger.jsonl")]);
    expect(v.status, v.stdout).toBe(0);
  });
});
