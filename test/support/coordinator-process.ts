/**
 * Test support: the coordinator as a separate process (`bin/tacit.js coordinator start`) on a
 * fixed port and state dir against an external Redis (REDIS_URL) or, without `redisUrl`, its
 * embedded one, so a test can kill or signal it and start it again on the same port, state and
 * data. Its log (pino JSON) is appended to `logFile`.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { appendFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = new URL("../..", import.meta.url).pathname;
const BIN = join(ROOT, "bin/tacit.js");

export function initCoordinatorStateDir(stateDir: string): void {
  execFileSync(process.execPath, [BIN, "coordinator", "init", "--state-dir", stateDir], { stdio: "ignore" });
}

export class CoordinatorProcess {
  child: ChildProcess | undefined;
  starts = 0;

  constructor(
    readonly o: { stateDir: string; port: number; redisUrl?: string; logFile: string; env?: NodeJS.ProcessEnv },
  ) {}

  get address(): string {
    return `localhost:${this.o.port}`;
  }

  /**
   * Starts the coordinator and resolves once it listens (or, with `until: "standby"`, once it
   * waits as a standby for the active lease); `failpoint` sets TACIT_FAILPOINT.
   */
  async start(failpoint?: string, until: "listening" | "standby" = "listening"): Promise<void> {
    this.starts++;
    const env: NodeJS.ProcessEnv = { ...process.env, TACIT_LOG_LEVEL: "info", ...this.o.env };
    if (this.o.redisUrl) env.REDIS_URL = this.o.redisUrl;
    else delete env.REDIS_URL;
    delete env.TACIT_FAILPOINT;
    if (failpoint) env.TACIT_FAILPOINT = failpoint;
    const child = spawn(process.execPath, [BIN, "coordinator", "start", "--state-dir", this.o.stateDir, "--port", String(this.o.port)], { stdio: ["ignore", "pipe", "pipe"], env });
    this.child = child;
    appendFileSync(this.o.logFile, `--- start ${this.starts} pid ${child.pid}${failpoint ? ` failpoint ${failpoint}` : ""}\n`);
    let out = "";
    let onOut: (() => void) | undefined;
    child.stdout!.on("data", (d: Buffer) => {
      appendFileSync(this.o.logFile, d);
      out += d.toString();
      onOut?.();
    });
    await new Promise<void>((resolve, reject) => {
      let err = "";
      if (until === "standby") onOut = () => out.includes("standby: another coordinator holds the active lease") && resolve();
      const onData = (d: Buffer): void => {
        err += d.toString();
        appendFileSync(this.o.logFile, d);
        if (err.includes("listening on")) resolve();
      };
      child.stderr!.on("data", onData);
      child.once("exit", (code, sig) => reject(new Error(`coordinator exited (${code ?? sig}) before listening: ${err}`)));
    });
  }

  /** Sends a signal without waiting. */
  signal(sig: NodeJS.Signals): void {
    this.child?.kill(sig);
  }

  /** Resolves with the signal (or exit code) once the process has exited. */
  exited(): Promise<string> {
    const c = this.child;
    if (!c) return Promise.resolve("none");
    if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve(String(c.signalCode ?? c.exitCode));
    return new Promise((resolve) => c.once("exit", (code, sig) => resolve(String(sig ?? code))));
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<string> {
    const done = this.exited();
    this.child?.kill(signal);
    return done;
  }
}
