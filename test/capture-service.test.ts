/**
 * CaptureService's consent filter and attribution, driven without X: events are injected as the
 * hook would deliver them and a scripted probe answers "which app is in front" asynchronously.
 * (test/capture-xvfb.test.ts runs the same service with real uiohook-napi under real Xvfb.)
 */
import { describe, expect, it } from "vitest";
import { UiohookKey as K } from "uiohook-napi";
import { CaptureService, type CaptureConsent } from "../client/capture/capture-service.ts";
import { ActiveAppError, parseActiveWindow, X11ActiveAppProbe, type ActiveAppProbe } from "../client/capture/active-app.ts";
import type { InputEvent } from "../client/capture/tokenizer.ts";
import type { ActionRecord } from "../client/store/action-record.ts";

class ScriptedProbe implements ActiveAppProbe {
  app: string | undefined = "Code";
  calls = 0;
  async activeApp(): Promise<string | undefined> {
    this.calls++;
    await new Promise((r) => setTimeout(r, 2));
    return this.app;
  }
}

const ALL: CaptureConsent = { apps: ["code", "xterm"], kinds: ["shortcut", "click", "app-switch", "typing-burst", "key"] };
const settle = (ms = 30): Promise<void> => new Promise((r) => setTimeout(r, ms));

function rig(consent: CaptureConsent = ALL, idleFlushMs = 10_000) {
  const probe = new ScriptedProbe();
  const got: ActionRecord[] = [];
  const svc = new CaptureService({ consent, onAction: (r) => got.push(r), appProbe: probe, appTtlMs: 0, idleFlushMs });
  const send = async (...evs: Omit<InputEvent, "at">[]): Promise<void> => {
    for (const e of evs) svc.injectForTest({ ...e, at: Date.now() } as InputEvent);
    await settle();
  };
  const typeKeys = (n: number): Omit<InputEvent, "at">[] => Array.from({ length: n }, () => ({ type: "keydown", keycode: K.A }));
  return { probe, got, svc, send, typeKeys, tokens: () => got.map((r) => `${r.app} ${r.token}`) };
}

describe("CaptureService consent filter (scripted probe)", () => {
  it("tokens of consented apps pass; a non-consented app yields nothing and is never named", async () => {
    const { probe, send, typeKeys, tokens, svc } = rig();
    await send({ type: "keydown", keycode: K.S, modifiers: { ctrl: true } }, ...typeKeys(6), { type: "keydown", keycode: K.Enter });
    probe.app = "Slack"; // not consented
    await send({ type: "keydown", keycode: K.K, modifiers: { ctrl: true } }, ...typeKeys(30), { type: "click", button: 1 }, { type: "keydown", keycode: K.Enter });
    probe.app = "XTerm";
    await send({ type: "click", button: 1 });
    expect(tokens()).toEqual(["code code:shortcut:ctrl+s", "code typing:burst:m", "code code:key:enter", "xterm app-switch:code>xterm", "xterm xterm:click"]);
    expect(tokens().join(" ")).not.toMatch(/slack/);
    expect(svc.lastInputAt()).toBeGreaterThan(Date.now() - 1000);
  });

  it("the first keys after a switch count for the new app (events wait for the probe)", async () => {
    const { probe, send, typeKeys, tokens } = rig();
    await send(...typeKeys(2));
    probe.app = "xterm";
    await send(...typeKeys(3), { type: "keydown", keycode: K.Enter });
    expect(tokens()).toEqual(["code typing:burst:s", "xterm app-switch:code>xterm", "xterm typing:burst:s", "xterm xterm:key:enter"]);
  });

  it("leaving for a non-consented app ends the burst in the consented one", async () => {
    const { probe, send, typeKeys, tokens } = rig();
    await send(...typeKeys(7));
    probe.app = "KeePassXC";
    await send(...typeKeys(12));
    expect(tokens()).toEqual(["code typing:burst:m"]);
  });

  it("kinds not consented produce nothing", async () => {
    const { probe, send, typeKeys, tokens } = rig({ apps: ["code", "xterm"], kinds: ["shortcut", "click"] });
    await send({ type: "keydown", keycode: K.S, modifiers: { ctrl: true } }, ...typeKeys(6), { type: "keydown", keycode: K.Enter });
    probe.app = "xterm";
    await send({ type: "click", button: 1 });
    expect(tokens()).toEqual(["code code:shortcut:ctrl+s", "xterm xterm:click"]);
  });

  it("paused produces nothing but input still counts for idleness; resume starts fresh", async () => {
    const { send, typeKeys, tokens, svc, probe } = rig();
    await send(...typeKeys(3));
    svc.pause();
    expect(svc.paused).toBe(true);
    expect(tokens()).toEqual(["code typing:burst:s"]); // the burst typed before the pause
    const before = svc.lastInputAt();
    await settle(5);
    await send({ type: "keydown", keycode: K.S, modifiers: { ctrl: true } }, ...typeKeys(10), { type: "click" });
    expect(svc.lastInputAt()).toBeGreaterThan(before);
    expect(tokens()).toHaveLength(1);
    probe.app = "xterm";
    svc.resume();
    await send({ type: "click" });
    expect(tokens()).toEqual(["code typing:burst:s", "xterm xterm:click"]); // no switch spanning the pause
  });

  it("setConsent takes effect at once and drops a burst typed under the old consent", async () => {
    const { send, typeKeys, tokens, svc } = rig();
    await send(...typeKeys(4));
    svc.setConsent({ apps: ["xterm"], kinds: ALL.kinds });
    await send({ type: "keydown", keycode: K.Enter }, { type: "click" });
    expect(tokens()).toEqual([]);
    svc.setConsent(ALL);
    await send({ type: "click" });
    expect(tokens()).toEqual(["code code:click"]);
  });

  it("an idle gap ends a burst on its own", async () => {
    const { send, typeKeys, tokens } = rig(ALL, 100);
    await send(...typeKeys(5));
    expect(tokens()).toEqual([]);
    await settle(250);
    expect(tokens()).toEqual(["code typing:burst:m"]);
  });

  it("an unknown active app (nothing focused, probe failing) yields nothing", async () => {
    const { probe, send, typeKeys, tokens } = rig();
    probe.app = undefined;
    await send(...typeKeys(4), { type: "click" });
    probe.activeApp = async () => {
      throw new Error("xprop died");
    };
    await send({ type: "keydown", keycode: K.Enter });
    expect(tokens()).toEqual([]);
  });
});

describe("X11 active-app probe: errors and parsing (no X needed)", () => {
  it("says to set DISPLAY when there is none", () => {
    expect(() => new X11ActiveAppProbe({ env: { PATH: process.env.PATH } })).toThrow(/no X server: set DISPLAY/);
  });

  it("says to install x11-utils when xprop is missing", async () => {
    const probe = new X11ActiveAppProbe({ display: ":9", env: { PATH: "/nonexistent" } });
    const err = await probe.activeApp().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ActiveAppError);
    expect((err as Error).message).toMatch(/xprop is not installed: install x11-utils/);
  });

  it.each<[string, string | undefined]>([
    ["_NET_ACTIVE_WINDOW: window id # 0x1e00007", "0x1e00007"],
    ["_NET_ACTIVE_WINDOW(WINDOW): window id # 0x3a0000b, 0x0", "0x3a0000b"],
    ["_NET_ACTIVE_WINDOW: window id # 0x0", ""],
    ["_NET_ACTIVE_WINDOW = 33554476", "0x200002c"],
    ["_NET_ACTIVE_WINDOW(CARDINAL) = 0", ""],
    ["_NET_ACTIVE_WINDOW:  no such atom on any window.", undefined],
    ["_NET_ACTIVE_WINDOW:  not found.", undefined],
    ["WM_NAME = \"_NET_ACTIVE_WINDOW = 5\"", undefined],
  ])("parses %j", (line, want) => {
    expect(parseActiveWindow(line)).toBe(want);
  });
});
