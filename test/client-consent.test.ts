/**
 * Consent comes first: on a terminal `tacit client consent` asks for every choice (answered here
 * through a real pseudo-terminal made by util-linux `script`), scripts pass flags, and a refusal
 * or a bad value changes nothing. Also the systemd unit and training windows from stored actions.
 */
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { systemdUserUnit } from "../client/daemon/systemd-unit.ts";
import { examplesFromActions } from "../client/daemon/local-trainer.ts";
import { tinyRunSpec } from "./support/cluster.ts";
import type { RoundConfig } from "../shared/run/index.ts";

const BIN = join(process.cwd(), "bin", "tacit.js");

function onTerminal(xdg: string, args: string, answers: string[]): { code: number | null; out: string } {
  // `script` gives the command a real pty; the answers arrive on it one line at a time.
  const r = spawnSync("script", ["-q", "-e", "-c", `${process.execPath} ${BIN} ${args}`, "/dev/null"], {
    input: answers.map((a) => a + "\n").join(""),
    env: { ...process.env, XDG_DATA_HOME: xdg },
    encoding: "utf8",
    timeout: 30_000,
  });
  return { code: r.status, out: r.stdout };
}

describe("tacit client consent", () => {
  it("asks every question on a terminal and saves the answers only after an explicit yes", () => {
    const xdg = mkdtempSync(join(tmpdir(), "tacit-consent-"));
    try {
      const consentFile = join(xdg, "tacit", "consent.json");
      const refused = onTerminal(xdg, "client consent", ["code,Firefox", "shortcut,click", "4", "1.2", "20", "no"]);
      expect(refused.out).toMatch(/never the characters you type/i);
      expect(refused.out).toMatch(/Applications that may be observed/);
      expect(refused.out).toMatch(/consent not given; nothing changed/);
      expect(refused.code).toBe(1);
      expect(existsSync(consentFile)).toBe(false);

      const given = onTerminal(xdg, "client consent", ["code,Firefox", "shortcut,click", "4", "1.2", "20", "yes"]);
      expect(given.code).toBe(0);
      const saved = JSON.parse(readFileSync(consentFile, "utf8"));
      expect(saved).toMatchObject({ apps: ["code", "firefox"], kinds: ["shortcut", "click"], limits: { maxDeviceEpsilon: 4, minNoiseMultiplier: 1.2, minSurvivors: 20 }, paused: false });

      const bad = spawnSync(process.execPath, [BIN, "client", "consent", "--apps", "code", "--kinds", "keystrokes", "--max-epsilon", "4", "--min-noise", "1", "--min-survivors", "5"], { env: { ...process.env, XDG_DATA_HOME: xdg }, encoding: "utf8" });
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/--kinds: unknown signal kind 'keystrokes'/);
      expect(JSON.parse(readFileSync(consentFile, "utf8")).kinds).toEqual(["shortcut", "click"]);

      const pause = spawnSync(process.execPath, [BIN, "client", "pause"], { env: { ...process.env, XDG_DATA_HOME: xdg }, encoding: "utf8" });
      expect(pause.status).toBe(0);
      expect(JSON.parse(readFileSync(consentFile, "utf8")).paused).toBe(true);
    } finally {
      rmSync(xdg, { recursive: true, force: true });
    }
  }, 60_000);

  it("refuses to pause before any consent exists", () => {
    const xdg = mkdtempSync(join(tmpdir(), "tacit-consent-"));
    try {
      const r = spawnSync(process.execPath, [BIN, "client", "pause"], { env: { ...process.env, XDG_DATA_HOME: xdg }, encoding: "utf8" });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/no consent given yet/);
    } finally {
      rmSync(xdg, { recursive: true, force: true });
    }
  });
});

describe("daemon pieces", () => {
  it("writes a systemd --user unit that runs the daemon with the session's display", () => {
    const unit = systemdUserUnit({ node: "/usr/bin/node", bin: "/opt/tacit/bin/tacit.js", stateDir: "/home/a b/.local/share/tacit", idleSeconds: 120 });
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/node \/opt\/tacit\/bin\/tacit.js client start --state-dir "\/home\/a b\/.local\/share\/tacit" --idle-seconds 120$/m);
    expect(unit).toMatch(/^PassEnvironment=DISPLAY XAUTHORITY$/m);
    expect(unit).toMatch(/^WantedBy=graphical-session.target$/m);
  });

  it("`tacit client install-service` writes the unit where systemd --user looks for it", () => {
    const dir = mkdtempSync(join(tmpdir(), "tacit-unit-"));
    try {
      const r = spawnSync(process.execPath, [BIN, "client", "install-service", "--unit-dir", dir, "--idle-seconds", "90", "--state-dir", join(dir, "state")], { encoding: "utf8" });
      expect(r.stderr).toBe("");
      expect(r.stdout).toMatch(/systemctl --user daemon-reload && systemctl --user enable --now tacit-client.service/);
      const unit = readFileSync(join(dir, "tacit-client.service"), "utf8");
      expect(unit).toContain(`ExecStart=${process.execPath} ${BIN} client start --state-dir ${join(dir, "state")} --idle-seconds 90`);
      const bad = spawnSync(process.execPath, [BIN, "client", "install-service", "--unit-dir", dir, "--idle-seconds", "soon"], { encoding: "utf8" });
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/--idle-seconds must be a number/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("cuts stored actions into sessions at idle gaps, in time order", () => {
    const spec = tinyRunSpec();
    const cfg = { model: { ...spec.model, window: 2, sessionGapSeconds: 60 }, training: {} } as unknown as RoundConfig;
    const t0 = 1_700_000_000_000;
    const rec = (s: number, token: string) => ({ at: t0 + s * 1000, app: "code", kind: "shortcut" as const, token });
    // Out of order on purpose; a 10-minute gap starts a new session before "d".
    const ex = examplesFromActions([rec(2, "c"), rec(0, "a"), rec(1, "b"), rec(600, "d")], cfg);
    expect(ex.count).toBe(4);
    // The first action of each session has only the session-start marker as context.
    const rowOf = (i: number) => Array.from(ex.x.slice(i * 2, i * 2 + 2));
    expect(rowOf(3)).toEqual(rowOf(0));
    expect(rowOf(2)[1]).toBe(ex.y[1]);
  });
});
