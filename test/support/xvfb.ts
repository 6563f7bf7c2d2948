/**
 * A private X server for tests: Xvfb on a display it picks itself (-displayfd: race-free even
 * when other tests start X servers at the same time), optionally without RECORD.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { waitFor } from "./wait.ts";

export interface XServer {
  display: string;
  server: ChildProcess;
  stop(): void;
  /**
   * libuiohook keeps an X connection from module load to process exit, and Xlib exits the
   * process when that server goes away. So an X server captured from is stopped by a small
   * watcher once this test process has exited, not by afterAll.
   */
  stopAfterExit(): void;
}


/**
 * Kills the X server once this test process has gone. PIDs wrap at 32,768 here, so by then either
 * number may belong to another process: each is followed by its start time (field 22 of
 * /proc/PID/stat, read after the command name, which may hold spaces), and the server is killed
 * only if the process with its number is still the one that started then.
 */
function killAfterExit(pid: number): void {
  const started = (p: number): string => readFileSync(`/proc/${p}/stat`, "utf8").replace(/^.*\) /s, "").split(" ")[19]!;
  const startOf = (p: number): string => `$(sed 's/^.*) //' /proc/${p}/stat 2>/dev/null | cut -d' ' -f20)`;
  const script = `while [ "${startOf(process.pid)}" = "${started(process.pid)}" ]; do sleep 0.5; done; [ "${startOf(pid)}" = "${started(pid)}" ] && kill ${pid}`;
  spawn("sh", ["-c", script], { detached: true, stdio: "ignore" }).unref();
}

/** Fails (never skips) with the install line when a tool is missing. */
export function requireXTools(): void {
  const missing = ["Xvfb", "xdotool", "xprop", "xmessage", "xdpyinfo"].filter((c) => spawnSync("sh", ["-c", `command -v ${c}`]).status !== 0);
  if (missing.length > 0) throw new Error(`missing ${missing.join(", ")}: this test needs a real X server — apt-get install -y xvfb xdotool x11-utils`);
}

/** Starts Xvfb; resolves once a client gets through. */
export async function startXvfb(extraArgs: string[] = []): Promise<XServer> {
  const server = spawn("Xvfb", ["-displayfd", "3", "-screen", "0", "1024x768x24", "-nolisten", "tcp", ...extraArgs], { stdio: ["ignore", "ignore", "pipe", "pipe"] });
  let err = "";
  server.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const display = await new Promise<string>((resolve, reject) => {
    let buf = "";
    server.stdio[3]!.on("data", (d: Buffer) => {
      buf += d.toString();
      const m = /^(\d+)\n/.exec(buf);
      if (m) resolve(`:${m[1]}`);
    });
    server.on("exit", (c) => reject(new Error(`Xvfb exited ${c}: ${err.trim().split("\n").slice(-3).join(" / ")}`)));
  });
  await waitFor("Xvfb to answer", () => spawnSync("xdpyinfo", [], { env: { ...process.env, DISPLAY: display }, stdio: "ignore", timeout: 5000 }).status === 0, 10_000);
  return { display, server, stop: () => server.kill(), stopAfterExit: () => killAfterExit(server.pid!) };
}
