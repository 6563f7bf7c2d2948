/**
 * Which application has the keyboard, on Linux/X11, by asking the X server through `xprop`
 * (x11-utils) — asynchronously (execFile), so the capture thread never waits on it.
 *
 *  1. `xprop -root _NET_ACTIVE_WINDOW`: the window manager's idea of the active window (every
 *     EWMH desktop: GNOME, KDE, Xfce, i3…), followed live by one `xprop -spy` process.
 *  2. Without a window manager (plain Xvfb, kiosk sessions) that atom does not exist: fall back
 *     to the input-focus window, `xdotool getwindowfocus`, which walks up from the focused
 *     child to the first window carrying WM_CLASS.
 *  3. `xprop -id <window> WM_CLASS`, of which only the class name (the second string, e.g.
 *     "Code", "Google-chrome") is used.
 *
 * Only the WM_CLASS and _NET_ACTIVE_WINDOW properties are ever requested by name: window titles
 * (WM_NAME, _NET_WM_NAME — file names, URLs, message subjects) are never read, so they cannot
 * leak into a token or a log line by mistake.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

/** Answers "which application is in front?" with its raw class name, or undefined if none. */
export interface ActiveAppProbe {
  activeApp(): Promise<string | undefined>;
  /** Releases helpers (the spy process); the probe may not be used afterwards. */
  close?(): void;
}

/** The probe cannot work at all on this machine (not: "no window is focused right now"). */
export class ActiveAppError extends Error {
  override name = "ActiveAppError";
}

export interface X11ProbeOptions {
  /** Defaults to $DISPLAY. */
  display?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

const WM_RECHECK_MS = 10_000;
const CLASS_TTL_MS = 30_000;
const CLASS_CACHE_MAX = 256;

/**
 * With a window manager, one long-lived `xprop -root -spy _NET_ACTIVE_WINDOW` reports every
 * change of the active window as it happens: no polling, no process per query. Without one
 * (the atom does not exist), each query runs `xdotool getwindowfocus` (the caller decides how
 * often: CaptureService asks at most every 400 ms, and only while input arrives), and every
 * 10 s checks whether a window manager has appeared since.
 */
export class X11ActiveAppProbe implements ActiveAppProbe {
  private readonly env: NodeJS.ProcessEnv;
  private readonly timeoutMs: number;
  /** When _NET_ACTIVE_WINDOW was last found missing (no window manager). */
  private noWmSince = -Infinity;
  private spy: ChildProcess | undefined;
  /** Latest active window from the spy ("" = none); undefined until the spy has spoken. */
  private spyWindow: string | undefined;
  private spyFailedAt = -Infinity;
  private closed = false;
  /** window id → class name; WM_CLASS is set once when a window is mapped, so cache it briefly. */
  private readonly classes = new Map<string, { cls: Promise<string | undefined>; at: number }>();

  constructor(opts: X11ProbeOptions = {}) {
    const base = opts.env ?? process.env;
    const display = opts.display ?? base.DISPLAY;
    if (!display) throw new ActiveAppError("no X server: set DISPLAY (active-application detection needs an X11 session)");
    this.env = { ...base, DISPLAY: display };
    this.timeoutMs = opts.timeoutMs ?? 2000;
  }

  get display(): string {
    return this.env.DISPLAY!;
  }

  /** "spy" when a window manager's _NET_ACTIVE_WINDOW is followed live, else "focus" (polling). */
  get mode(): "spy" | "focus" {
    return this.spy && this.spyWindow !== undefined ? "spy" : "focus";
  }

  async activeApp(): Promise<string | undefined> {
    if (this.closed) throw new ActiveAppError("the active-app probe is closed");
    if (this.spy && this.spyWindow !== undefined) return this.spyWindow === "" ? undefined : this.classOf(this.spyWindow);
    const now = Date.now();
    if (now - this.noWmSince >= WM_RECHECK_MS && now - this.spyFailedAt >= WM_RECHECK_MS && !this.spy) {
      const r = await this.run("xprop", ["-root", "-notype", "_NET_ACTIVE_WINDOW"], "x11-utils");
      const id = r.code === 0 ? parseActiveWindow(r.stdout) : undefined;
      if (id !== undefined) {
        this.startSpy();
        return id === "" ? undefined : this.classOf(id);
      }
      if (r.code === 0) this.noWmSince = now; // atom absent: no EWMH window manager
    }
    const f = await this.run("xdotool", ["getwindowfocus"], "xdotool");
    const dec = f.code === 0 ? /^(\d+)\s*$/.exec(f.stdout)?.[1] : undefined;
    // nothing focused: PointerRoot (1) or None (0)
    return dec === undefined || Number(dec) <= 1 ? undefined : this.classOf(`0x${Number(dec).toString(16)}`);
  }

  close(): void {
    this.closed = true;
    this.spy?.kill();
    this.spy = undefined;
  }

  private startSpy(): void {
    const spy = spawn("xprop", ["-root", "-notype", "-spy", "_NET_ACTIVE_WINDOW"], { env: this.env, stdio: ["ignore", "pipe", "ignore"] });
    this.spy = spy;
    this.spyWindow = undefined;
    createInterface({ input: spy.stdout! }).on("line", (line) => {
      const id = parseActiveWindow(line);
      if (id === undefined) return;
      this.spyWindow = id;
      if (id !== "") void this.classOf(id); // look the class up now, before the next key needs it
    });
    spy.on("error", () => undefined);
    spy.on("exit", () => {
      if (this.spy !== spy) return;
      // The window manager went away or the X connection broke: poll, and retry the spy later.
      this.spy = undefined;
      this.spyWindow = undefined;
      this.spyFailedAt = Date.now();
    });
  }

  private classOf(id: string): Promise<string | undefined> {
    const now = Date.now();
    const hit = this.classes.get(id);
    if (hit && now - hit.at < CLASS_TTL_MS) return hit.cls;
    if (this.classes.size >= CLASS_CACHE_MAX) this.classes.clear();
    const cls = this.wmClass(id);
    this.classes.set(id, { cls, at: now });
    cls.catch(() => this.classes.delete(id));
    return cls;
  }

  private async wmClass(id: string): Promise<string | undefined> {
    const r = await this.run("xprop", ["-id", id, "-notype", "WM_CLASS"], "x11-utils");
    if (r.code !== 0) return undefined; // the window went away meanwhile
    const strings = [...r.stdout.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!);
    return strings[1] ?? strings[0] ?? undefined;
  }

  private run(cmd: string, args: string[], pkg: string): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      execFile(cmd, args, { env: this.env, timeout: this.timeoutMs, maxBuffer: 64 * 1024, encoding: "utf8" }, (err, stdout, stderr) => {
        if (err && (err as NodeJS.ErrnoException).code === "ENOENT") {
          reject(new ActiveAppError(`${cmd} is not installed: install ${pkg} (apt-get install -y ${pkg})`));
          return;
        }
        if (err && /unable to open display|Can't open display|cannot open display/i.test(stderr)) {
          reject(new ActiveAppError(`no X server at DISPLAY=${this.env.DISPLAY}: set DISPLAY to a running X11 session`));
          return;
        }
        const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  }
}

/**
 * The window id in an xprop line for _NET_ACTIVE_WINDOW: "0x…" for a window, "" for none (0),
 * undefined if the atom does not exist. Window managers set it with type WINDOW ("window id #
 * 0x1e00007"); a bare number is accepted too.
 */
export function parseActiveWindow(line: string): string | undefined {
  const m = /^_NET_ACTIVE_WINDOW(?:\([A-Z_]+\))?(?::\s*window id #|\s*=)\s*(0x[0-9a-fA-F]+|\d+)/m.exec(line);
  if (!m) return undefined;
  const n = Number(m[1]);
  return n === 0 ? "" : `0x${n.toString(16)}`;
}
