/**
 * Real capture on the laptop: uiohook-napi input events + the active application → tokenizer →
 * consent filter → onAction (the daemon appends to the encrypted store).
 *
 * The consent filter works at two levels. Input that happens while a non-consented application
 * is in front never reaches the tokenizer at all (so no burst, key or app name of it exists even
 * in memory beyond the event itself); the tokenizer only ever sees consented apps, so leaving
 * A for a non-consented X and coming back to B reads as `app-switch:a>b`, never naming X. Then
 * every record is checked again (app, both sides of a switch, kind, paused) before it leaves.
 *
 * Attribution: the active app is probed asynchronously (execFile) when input arrives and the
 * last answer is older than `appTtlMs`; events arriving meanwhile wait in a small queue and are
 * attributed with the fresh answer, so the first keys after a switch count for the new app.
 *
 * Nothing here logs key codes, characters or non-consented application names.
 * uiohook-napi is a process-wide singleton: run one CaptureService per process. libuiohook
 * keeps an X connection from the moment it loads until the process exits, and Xlib ends a
 * process whose X server goes away: when the session ends, the daemon ends with it (unflushed
 * store records are lost then, at most one flush interval's worth).
 */
import type { Logger } from "pino";
import { execFile } from "node:child_process";
import type { ActionKind, ActionRecord } from "../store/action-record.ts";
import { ActiveAppError, X11ActiveAppProbe, type ActiveAppProbe } from "./active-app.ts";
import { normalizeAppName, Tokenizer, type InputEvent } from "./tokenizer.ts";

export interface CaptureConsent {
  apps: string[];
  kinds: ActionKind[];
}

export type CaptureUnavailableReason = "no-display" | "no-record-extension" | "missing-tool" | "module-load" | "start-failed" | "unsupported-platform";

/** Capture cannot run on this machine; `message` says what to do about it. */
export class CaptureUnavailableError extends Error {
  override name = "CaptureUnavailableError";
  constructor(
    readonly reason: CaptureUnavailableReason,
    message: string,
  ) {
    super(message);
  }
}

export interface CaptureServiceOptions {
  consent: CaptureConsent;
  onAction: (r: ActionRecord) => void;
  logger?: Logger;
  /** A typing burst ends after this long without a key (default 2000 ms). */
  idleFlushMs?: number;
  /** Defaults to the X11 probe (xprop) on Linux. */
  appProbe?: ActiveAppProbe;
  /** Re-probe the active app when the last answer is older than this (default 400 ms). */
  appTtlMs?: number;
}

/** The subset of uiohook-napi's event we read (no coordinates are kept). */
interface HookEvent {
  type: number;
  keycode?: number;
  button?: unknown;
  ctrlKey: boolean;
  altKey: boolean;
  shiftKey: boolean;
  metaKey: boolean;
}

interface Hook {
  on(event: "input", listener: (e: HookEvent) => void): unknown;
  off(event: "input", listener: (e: HookEvent) => void): unknown;
  start(): void;
  stop(): void;
}

const EV_KEY_PRESSED = 4;
const EV_KEY_RELEASED = 5;
const EV_MOUSE_PRESSED = 7;
const MAX_QUEUE = 2000;

export class CaptureService {
  private hook: Hook | undefined;
  private readonly listener = (e: HookEvent): void => this.onHook(e);
  private readonly tokenizer: Tokenizer;
  private probe: ActiveAppProbe | undefined;
  /** The probe this service made (and so closes); a probe passed in belongs to the caller. */
  private ownProbe: ActiveAppProbe | undefined;
  private readonly appTtlMs: number;
  private readonly log: Logger | undefined;
  private apps = new Set<string>();
  private kinds = new Set<ActionKind>();
  private pausedFlag = false;
  private lastInput = 0;
  private queue: InputEvent[] = [];
  private probing = false;
  private appCheckedAt = -Infinity;
  /** The current app when it is consented; undefined while a non-consented or unknown app is in front. */
  private consentedApp: string | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private lastProbeWarn = -Infinity;
  private stopped = false;

  constructor(private readonly opts: CaptureServiceOptions) {
    this.tokenizer = new Tokenizer({ idleGapMs: opts.idleFlushMs ?? 2000 });
    this.probe = opts.appProbe;
    this.appTtlMs = opts.appTtlMs ?? 400;
    this.log = opts.logger;
    this.setConsent(opts.consent);
  }

  get paused(): boolean {
    return this.pausedFlag;
  }

  get running(): boolean {
    return this.hook !== undefined;
  }

  /** ms epoch of the last input event of any application (0 if none yet), paused or not. */
  lastInputAt(): number {
    return this.lastInput;
  }

  setConsent(c: CaptureConsent): void {
    this.apps = new Set(c.apps.flatMap((a) => normalizeAppName(a) ?? []));
    this.kinds = new Set(c.kinds);
    // A burst typed under the old consent is dropped, not emitted under the new one, and the
    // next input re-asks which app is in front.
    this.tokenizer.reset();
    this.consentedApp = undefined;
    this.appCheckedAt = -Infinity;
  }

  /** Starts listening; throws CaptureUnavailableError (with what to do) if capture cannot run here. */
  async start(): Promise<void> {
    if (this.hook) return;
    this.stopped = false;
    this.tokenizer.reset(); // nothing typed before a stop continues into this run
    this.consentedApp = undefined;
    this.appCheckedAt = -Infinity;
    const probe = this.probe ?? (this.ownProbe = await defaultProbe());
    this.probe = probe;
    try {
      await probe.activeApp();
    } catch (err) {
      this.releaseProbe();
      if (err instanceof ActiveAppError) throw new CaptureUnavailableError(/DISPLAY/.test(err.message) ? "no-display" : "missing-tool", err.message);
      throw err;
    }
    try {
      if (process.platform === "linux") await checkXRecord(); // libuiohook aborts the process when X or RECORD is missing
    } catch (err) {
      this.releaseProbe();
      throw err;
    }
    let hook: Hook;
    try {
      const mod = (await import("uiohook-napi")) as unknown as { uIOhook?: Hook; default?: { uIOhook?: Hook } };
      const h = mod.uIOhook ?? mod.default?.uIOhook;
      if (!h) throw new Error("uIOhook export missing");
      hook = h;
    } catch (err) {
      this.releaseProbe();
      throw new CaptureUnavailableError("module-load", `uiohook-napi failed to load (${(err as Error).message}): reinstall with \`npm ci\` on this platform (needs libxtst6 on Linux)`);
    }
    hook.on("input", this.listener);
    try {
      hook.start();
    } catch (err) {
      hook.off("input", this.listener);
      this.releaseProbe();
      throw new CaptureUnavailableError("start-failed", `input capture could not start (${(err as Error).message}): the session does not permit input monitoring`);
    }
    this.hook = hook;
    this.log?.info({ apps: this.apps.size, kinds: [...this.kinds] }, "capture started");
    if (process.env.XDG_SESSION_TYPE === "wayland") this.log?.warn("Wayland session: only applications running under XWayland are seen");
  }

  /** Stops listening; a pending typing burst is emitted first. */
  async stop(): Promise<void> {
    if (!this.hook) return;
    this.emit(this.tokenizer.flush());
    this.stopped = true;
    this.hook.off("input", this.listener);
    this.hook.stop();
    this.hook = undefined;
    this.clearIdle();
    this.queue = [];
    this.releaseProbe();
    this.log?.info("capture stopped");
  }

  /** Stops producing actions (input still counts for lastInputAt). A pending burst is emitted first. */
  pause(): void {
    if (this.pausedFlag) return;
    this.drain();
    this.emit(this.tokenizer.flush());
    this.pausedFlag = true;
    this.tokenizer.reset();
    this.consentedApp = undefined;
    this.queue = [];
    this.clearIdle();
    this.log?.info("capture paused");
  }

  resume(): void {
    if (!this.pausedFlag) return;
    this.pausedFlag = false;
    this.appCheckedAt = -Infinity;
    this.log?.info("capture resumed");
  }

  private releaseProbe(): void {
    if (!this.ownProbe) return;
    this.ownProbe.close?.();
    if (this.probe === this.ownProbe) this.probe = undefined;
    this.ownProbe = undefined;
  }

  /** Test and benchmark entry: feeds one event as if it came from the hook. */
  injectForTest(ev: InputEvent): void {
    this.onInput(ev);
  }

  private onHook(e: HookEvent): void {
    const at = Date.now();
    const modifiers = { ctrl: e.ctrlKey, alt: e.altKey, shift: e.shiftKey, meta: e.metaKey };
    if (e.type === EV_KEY_PRESSED) this.onInput({ type: "keydown", at, keycode: e.keycode, modifiers });
    else if (e.type === EV_KEY_RELEASED) this.onInput({ type: "keyup", at, keycode: e.keycode, modifiers });
    else if (e.type === EV_MOUSE_PRESSED) this.onInput({ type: "click", at, button: typeof e.button === "number" ? e.button : undefined, modifiers });
    else this.lastInput = at; // moves, wheel, releases: activity for idle detection only
  }

  private onInput(ev: InputEvent): void {
    this.lastInput = ev.at;
    if (this.pausedFlag || this.stopped) return;
    if (this.queue.length >= MAX_QUEUE) return; // the probe is stuck: drop rather than grow
    this.queue.push(ev);
    this.pump();
  }

  /** Handles queued events, first refreshing the active app if the last answer is stale. */
  private pump(): void {
    if (this.probing) return;
    if (Date.now() - this.appCheckedAt >= this.appTtlMs && this.probe) {
      this.probing = true;
      this.probe.activeApp().then(
        (raw) => {
          this.afterProbe(raw === undefined ? undefined : normalizeAppName(raw));
        },
        (err: Error) => {
          if (Date.now() - this.lastProbeWarn > 60_000) {
            this.lastProbeWarn = Date.now();
            this.log?.warn({ err: err.message }, "cannot tell the active application; input is ignored until it can");
          }
          this.afterProbe(undefined);
        },
      );
      return;
    }
    this.drain();
  }

  private afterProbe(app: string | undefined): void {
    this.probing = false;
    if (this.stopped) return;
    this.appCheckedAt = Date.now();
    if (!this.pausedFlag) this.setActiveApp(app, this.queue[0]?.at ?? Date.now());
    this.drain();
    if (this.queue.length > 0) this.pump();
  }

  private setActiveApp(app: string | undefined, at: number): void {
    if (app !== undefined && this.apps.has(app)) {
      this.consentedApp = app;
      this.emit(this.tokenizer.push({ type: "app", at, app }));
    } else if (this.consentedApp !== undefined) {
      // Leaving for a non-consented (or unknown) app: end the burst typed in the consented one.
      this.consentedApp = undefined;
      this.emit(this.tokenizer.flush());
    }
  }

  private drain(): void {
    const events = this.queue;
    this.queue = [];
    for (const ev of events) {
      if (this.consentedApp === undefined || this.pausedFlag) continue; // non-consented app in front: nothing
      this.emit(this.tokenizer.push(ev));
    }
    this.armIdle();
  }

  private armIdle(): void {
    const due = this.tokenizer.burstIdleAt();
    if (due === undefined || this.idleTimer) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      this.emit(this.tokenizer.tick(Date.now()));
      this.armIdle();
    }, Math.max(0, due - Date.now()) + 5);
    this.idleTimer.unref();
  }

  private clearIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private emit(records: readonly ActionRecord[]): void {
    for (const r of records) {
      if (!this.consented(r)) continue;
      try {
        this.opts.onAction(r);
      } catch (err) {
        this.log?.error({ err: (err as Error).message, kind: r.kind }, "could not store an action");
      }
    }
  }

  private consented(r: ActionRecord): boolean {
    if (this.pausedFlag || !this.kinds.has(r.kind) || !this.apps.has(r.app)) return false;
    if (r.kind === "app-switch") {
      const m = /^app-switch:([^>]*)>(.*)$/.exec(r.token);
      return !!m && this.apps.has(m[1]!) && this.apps.has(m[2]!);
    }
    return true;
  }
}

async function defaultProbe(): Promise<ActiveAppProbe> {
  if (process.platform !== "linux") {
    throw new CaptureUnavailableError("unsupported-platform", `capture is implemented for Linux/X11 only (this is ${process.platform})`);
  }
  if (!process.env.DISPLAY) {
    throw new CaptureUnavailableError("no-display", "no X server: set DISPLAY (capture needs an X11 session; under Wayland run it inside XWayland)");
  }
  return new X11ActiveAppProbe();
}

/**
 * libuiohook calls abort() when it cannot open the display or the RECORD extension is missing,
 * which would kill the daemon without a word; ask the server first (xdpyinfo, x11-utils).
 */
function checkXRecord(attempt = 1): Promise<void> {
  const display = process.env.DISPLAY;
  if (!display) return Promise.reject(new CaptureUnavailableError("no-display", "no X server: set DISPLAY (capture needs an X11 session)"));
  return new Promise((resolve, reject) => {
    execFile("xdpyinfo", ["-queryExtensions"], { timeout: 10_000, maxBuffer: 1 << 20, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === "ENOENT") return reject(new CaptureUnavailableError("missing-tool", "xdpyinfo is not installed: install x11-utils (apt-get install -y x11-utils)"));
      // A busy machine can make xdpyinfo slow or kill it on the timeout: that is not "no X
      // server" (only "unable to open display" is), so ask once more before saying so.
      if (err && !/unable to open display/i.test(String(stderr)) && attempt < 3) return resolve(checkXRecord(attempt + 1));
      if (err) return reject(new CaptureUnavailableError("no-display", `no X server at DISPLAY=${display}: set DISPLAY to a running X11 session`));
      if (!/^\s*RECORD\b/m.test(stdout)) return reject(new CaptureUnavailableError("no-record-extension", `the X server at DISPLAY=${display} has no RECORD extension, which input capture needs (enable it in the X server configuration)`));
      resolve();
    });
  });
}
