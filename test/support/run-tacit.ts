/**
 * Runs the `tacit` binary as a child process without blocking this test worker: a worker whose
 * event loop is blocked for long (a synchronous spawn of a simulation) misses vitest's own RPC
 * deadline and fails the whole run with "Timeout calling onTaskUpdate".
 */
import { spawn } from "node:child_process";
import { join } from "node:path";

export const TACIT_BIN = join(import.meta.dirname, "..", "..", "bin", "tacit.js");

export interface TacitResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** `input`: written to the child's stdin, which is then closed (otherwise stdin is /dev/null). */
export function runTacit(args: string[], o: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {}): Promise<TacitResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [TACIT_BIN, ...args], { env: { ...process.env, ...o.env }, stdio: [o.input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    if (o.input !== undefined) child.stdin!.end(o.input);
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), o.timeoutMs ?? 120_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ status: code ?? -1, stdout, stderr });
    });
  });
}
