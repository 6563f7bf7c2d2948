/**
 * Which application has the keyboard, on Linux/X11, by asking the X server through `xprop`
 * (x11-utils) — asynchronously (execFile), so the capture thread never waits on it.
 *
 *  1. `xprop -root _NET_ACTIVE_WINDOW`: the window manager's idea of the active window (every
 *     EWMH desktop: GNOME, KDE, Xfce, i3…).
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
import { execFile } from "node:child_process";

/** Answers "which application is in front?" with its raw class name, or undefined if none. */
export interface ActiveAppProbe {
  activeApp(): Promise<string | undefined>;
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

export class X11ActiveAppProbe implements ActiveAppProbe {
  private readonly env: NodeJS.ProcessEnv;
  private readonly timeoutMs: number;
  /** When _NET_ACTIVE_WINDOW was last found missing (no window manager): skip it for a while. */
  private noWmSince = -Infinity;
  /** window id → class name; WM_CLASS is set once when a window is mapped, so cache it briefly. */
  private readonly classes = new Map<string, { cls: string | undefined; at: number }>();

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

  async activeApp(): Promise<string | undefined> {
    const id = await this.activeWindow();
    if (id === undefined) return undefined;
    const now = Date.now();
    const hit = this.classes.get(id);
    if (hit && now - hit.at < CLASS_TTL_MS) return hit.cls;
    const cls = await this.wmClass(id);
    if (this.classes.size >= CLASS_CACHE_MAX) this.classes.clear();
    this.classes.set(id, { cls, at: now });
    return cls;
  }

  private async activeWindow(): Promise<string | undefined> {
    if (Date.now() - this.noWmSince >= WM_RECHECK_MS) {
      const r = await this.run("xprop", ["-root", "-notype", "_NET_ACTIVE_WINDOW"], "x11-utils");
      const m = /^_NET_ACTIVE_WINDOW: window id # (0x[0-9a-f]+)/im.exec(r.stdout);
      if (r.code === 0 && m) return /^0x0+$/.test(m[1]!) ? undefined : m[1]!.toLowerCase();
      if (r.code === 0) this.noWmSince = Date.now(); // atom absent: no EWMH window manager
    }
    const f = await this.run("xdotool", ["getwindowfocus"], "xdotool");
    const id = f.code === 0 ? /^(\d+)\s*$/.exec(f.stdout)?.[1] : undefined;
    if (id === undefined || Number(id) <= 1) return undefined; // nothing focused (PointerRoot / None)
    return `0x${Number(id).toString(16)}`;
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
        const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : 1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  }
}
