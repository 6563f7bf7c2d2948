/**
 * Real capture under a real X server: our own Xvfb on a free display, two real windows
 * (xmessage) with their WM_CLASS set by xdotool, real uiohook-napi, xdotool typing a canary
 * sentence and pressing shortcuts. Asserts tokens arrive for the consented app, no canary text
 * (nor the window title) reaches any token or log line, pause stops capture and a
 * non-consented app yields nothing. Skips nothing: without Xvfb it fails saying what to install.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { Writable } from "node:stream";
import pino from "pino";
import { CaptureService, CaptureUnavailableError } from "../client/capture/capture-service.ts";
import { X11ActiveAppProbe } from "../client/capture/active-app.ts";
import { requireXTools, startXvfb, type XServer } from "./support/xvfb.ts";
import type { ActionRecord } from "../client/store/action-record.ts";
import { sleep, waitFor } from "./support/wait.ts";

const CANARY = "Purple elephants dance at 4815 Zanzibar road";
const TITLE = "bank-statement-9931-quarterly";
const VOCAB = "tacitedit tacitsecret shortcut ctrl+alt+shift+meta+ click app-switch typing:burst: :key: enter tab escape backspace";


describe("capture under Xvfb (real uiohook-napi, real X server)", () => {
  let x: XServer;
  const windows: ChildProcess[] = [];
  let editWin = "";
  let secretWin = "";
  const got: ActionRecord[] = [];
  const logLines: string[] = [];
  let svc: CaptureService;
  let savedDisplay: string | undefined;

  const xdo = (...args: string[]): string => {
    const r = spawnSync("xdotool", args, { env: { ...process.env, DISPLAY: x.display }, encoding: "utf8", timeout: 10_000 });
    if (r.status !== 0) throw new Error(`xdotool ${args.join(" ")} failed: ${r.stderr}`);
    return r.stdout.trim();
  };
  const openWindow = async (cls: string, y: number, title?: string): Promise<string> => {
    const env = { ...process.env, DISPLAY: x.display };
    const list = (): string[] => spawnSync("xdotool", ["search", "--onlyvisible", "--class", "xmessage"], { env, encoding: "utf8", timeout: 10_000 }).stdout.split("\n").filter(Boolean);
    const before = new Set(list());
    let stderr = "";
    const w = spawn("xmessage", [...(title ? ["-title", title] : []), "-geometry", `500x150+10+${y}`, `Tacit capture test: ${cls}`], { env, stdio: ["ignore", "ignore", "pipe"] });
    w.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    windows.push(w);
    let id = "";
    try {
      await waitFor(`window ${cls}`, () => (id = list().filter((l) => !before.has(l))[0] ?? "") !== "" || w.exitCode !== null, 20_000);
    } catch (err) {
      throw new Error(`${(err as Error).message} (xmessage: ${stderr.trim() || "no output"})`);
    }
    if (!id) throw new Error(`xmessage exited ${w.exitCode}: ${stderr.trim()}`);
    xdo("set_window", "--class", cls, id);
    return id;
  };
  const focus = async (id: string): Promise<void> => {
    xdo("windowfocus", "--sync", id);
    await sleep(600); // past the probe's cache (400 ms): the next key re-asks which app is in front
  };
  const tokens = (): string[] => got.map((r) => `${r.app} ${r.kind} ${r.token}`);
  let seen: string | undefined;

  beforeAll(async () => {
    requireXTools();
    x = await startXvfb();
    savedDisplay = process.env.DISPLAY;
    process.env.DISPLAY = x.display; // libuiohook opens $DISPLAY
    editWin = await openWindow("Tacitedit", 10, TITLE);
    secretWin = await openWindow("Tacitsecret", 300);
    const sink = new Writable({
      write(chunk, _enc, cb) {
        logLines.push(...String(chunk).split("\n").filter(Boolean));
        cb();
      },
    });
    svc = new CaptureService({
      consent: { apps: ["tacitedit"], kinds: ["shortcut", "click", "app-switch", "typing-burst", "key"] },
      onAction: (r) => got.push(r),
      logger: pino({ level: "trace" }, sink),
      idleFlushMs: 400,
    });
    await focus(editWin);
    await svc.start();
    await sleep(300);
  }, 60_000);

  afterAll(async () => {
    await svc?.stop();
    for (const w of windows) w.kill();
    x?.stopAfterExit();
    if (savedDisplay === undefined) delete process.env.DISPLAY;
    else process.env.DISPLAY = savedDisplay;
  });

  it("the X11 probe names the focused window's WM_CLASS class, never its title", async () => {
    const probe = new X11ActiveAppProbe({ display: x.display });
    await focus(editWin);
    expect(await probe.activeApp()).toBe("Tacitedit");
    await focus(secretWin);
    expect(await probe.activeApp()).toBe("Tacitsecret");
    await focus(editWin);
    expect(await probe.activeApp()).toBe("Tacitedit");
  });

  it("typing and shortcuts in the consented app arrive as abstract tokens, no canary text anywhere", async () => {
    await focus(editWin);
    const n0 = got.length;
    xdo("type", "--delay", "30", CANARY);
    xdo("key", "Return");
    xdo("key", "ctrl+s");
    xdo("key", "ctrl+shift+p");
    xdo("type", "--delay", "30", "ok");
    await sleep(700); // idle gap ends the last burst
    xdo("mousemove", "--sync", "100", "60");
    xdo("click", "1");
    await waitFor("the click token", () => got.some((r) => r.kind === "click"), 5000);
    const mine = got.slice(n0).map((r) => `${r.app} ${r.kind} ${r.token}`);
    expect(mine).toEqual([
      "tacitedit typing-burst typing:burst:l",
      "tacitedit key tacitedit:key:enter",
      "tacitedit shortcut tacitedit:shortcut:ctrl+s",
      "tacitedit shortcut tacitedit:shortcut:ctrl+shift+p",
      "tacitedit typing-burst typing:burst:s",
      "tacitedit click tacitedit:click",
    ]);
    for (const r of got) expect(r.at).toBeGreaterThan(Date.now() - 60_000);
    // log lines without pino's own time/pid/hostname (digits that could match the canary's by chance)
    const logText = logLines.map((l) => {
      const { time: _t, pid: _p, hostname: _h, ...rest } = JSON.parse(l) as Record<string, unknown>;
      return JSON.stringify(rest);
    });
    expect(logText.length).toBeGreaterThan(0);
    const everything = [...tokens(), ...logText].join("\n").toLowerCase();
    const canary = CANARY.toLowerCase();
    for (let i = 0; i + 3 <= canary.length; i++) {
      const sub = canary.slice(i, i + 3);
      if (!VOCAB.includes(sub)) expect(everything.includes(sub), `canary piece "${sub}"`).toBe(false);
    }
    expect(everything).not.toContain(TITLE);
    expect(everything).not.toContain("9931");
    expect(logLines.join("\n")).not.toMatch(/keycode|"key"\s*:/i);
  });

  it("pause stops capture (input still counts for idleness); resume brings it back", async () => {
    await focus(editWin);
    svc.pause();
    expect(svc.paused).toBe(true);
    const n0 = got.length;
    const t0 = Date.now();
    xdo("type", "--delay", "20", "while paused");
    xdo("key", "ctrl+s");
    xdo("click", "1");
    await sleep(800);
    expect(got.slice(n0)).toEqual([]);
    expect(svc.lastInputAt()).toBeGreaterThanOrEqual(t0);
    svc.resume();
    xdo("key", "ctrl+o");
    await waitFor("capture after resume", () => got.length > n0, 5000);
    expect(tokens().slice(n0)).toEqual(["tacitedit shortcut tacitedit:shortcut:ctrl+o"]);
  });

  it("an app outside the allowlist yields nothing — not even an app-switch naming it", async () => {
    await focus(secretWin);
    const n0 = got.length;
    const t0 = Date.now();
    xdo("type", "--delay", "20", "confidential");
    xdo("key", "Return");
    xdo("key", "ctrl+k");
    xdo("click", "3");
    await sleep(800);
    expect(got.slice(n0)).toEqual([]);
    expect(svc.lastInputAt()).toBeGreaterThanOrEqual(t0); // input of any app counts for idleness
    await focus(editWin);
    xdo("key", "ctrl+w");
    await waitFor("capture back in the consented app", () => got.length > n0, 5000);
    expect(tokens().slice(n0)).toEqual(["tacitedit shortcut tacitedit:shortcut:ctrl+w"]);
    expect([...tokens(), ...logLines].join("\n").toLowerCase()).not.toContain("tacitsecret");
  });

  it("with a window manager's _NET_ACTIVE_WINDOW it follows that live (xprop -spy), without polling", async () => {
    // Emulate an EWMH window manager: it is the one writing _NET_ACTIVE_WINDOW on the root window.
    const setActive = (id: string): void => {
      const r = spawnSync("xprop", ["-root", "-f", "_NET_ACTIVE_WINDOW", "32x", "-set", "_NET_ACTIVE_WINDOW", id], { env: { ...process.env, DISPLAY: x.display } });
      if (r.status !== 0) throw new Error("xprop -set failed");
    };
    await focus(secretWin); // the input focus says "secret"; the window manager's answer must win
    setActive(`0x${Number(editWin).toString(16)}`);
    const probe = new X11ActiveAppProbe({ display: x.display });
    try {
      expect(await probe.activeApp()).toBe("Tacitedit");
      await waitFor("the spy", () => probe.mode === "spy", 5000);
      setActive(`0x${Number(secretWin).toString(16)}`);
      await waitFor("the spy to see the switch", () => false || (void probe.activeApp().then((a) => (seen = a)), seen === "Tacitsecret"), 5000);
      setActive("0x0");
      await sleep(200);
      expect(await probe.activeApp()).toBeUndefined(); // no active window: no app
      expect(probe.mode).toBe("spy");
    } finally {
      probe.close();
      spawnSync("xprop", ["-root", "-remove", "_NET_ACTIVE_WINDOW"], { env: { ...process.env, DISPLAY: x.display } });
      await focus(editWin);
    }
  });

  it("refuses clearly, without crashing, when there is no X server or no RECORD extension", async () => {
    const opts = { consent: { apps: ["tacitedit"], kinds: ["click" as const] }, onAction: () => {} };
    const saved = process.env.DISPLAY;
    try {
      delete process.env.DISPLAY;
      await expect(new CaptureService(opts).start()).rejects.toThrow(/no X server: set DISPLAY/);
      process.env.DISPLAY = ":7999";
      const err = await new CaptureService(opts).start().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CaptureUnavailableError);
      expect((err as CaptureUnavailableError).reason).toBe("no-display");
      const bare = await startXvfb(["-extension", "RECORD"]);
      try {
        process.env.DISPLAY = bare.display;
        await expect(new CaptureService(opts).start()).rejects.toThrow(/no RECORD extension/);
      } finally {
        bare.stop();
      }
    } finally {
      process.env.DISPLAY = saved;
    }
  });
});
