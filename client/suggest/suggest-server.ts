/**
 * The daemon's suggestion socket for an agent on this laptop: a unix socket at
 * $XDG_RUNTIME_DIR/tacit/suggest.sock (the state dir when no runtime dir is set), in a 0700
 * directory, itself 0600 — only this user can connect. Newline-delimited JSON: one request
 * object per line, one response object per line, in order. The socket is local by nature; the
 * answers never leave the laptop through Tacit (see README, "Agent integration").
 *
 *   request:  {"top": 5}            (every field optional; top: 1–50, default 5)
 *   response: {"ok": true, "suggestions": [{"token": "…", "p": 0.41}, …], "personalized": true,
 *              "contextActions": 3, "model": {"runId": "…", "round": 4, "modelHash": "…"}}
 *   error:    {"ok": false, "error": "…"}
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { z } from "zod";
import type { Suggestions } from "./suggest.ts";

/** A request line longer than this is refused and the connection closed (bounds memory). */
export const MAX_REQUEST_BYTES = 4096;
export const DEFAULT_TOP = 5;

export const suggestRequestSchema = z.object({ top: z.number().int().min(1).max(50).optional() }).strict();

export function suggestSocketPath(stateDir: string, env: NodeJS.ProcessEnv = process.env): string {
  const run = env.XDG_RUNTIME_DIR;
  return run && run.startsWith("/") ? join(run, "tacit", "suggest.sock") : join(stateDir, "suggest.sock");
}

/** Parses one request line into the number of suggestions asked for, or says what is wrong. */
export function parseSuggestRequest(line: string): { top: number } | { error: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return { error: "malformed request: not a JSON object on one line (send e.g. {\"top\": 5})" };
  }
  const r = suggestRequestSchema.safeParse(raw);
  if (!r.success) return { error: `malformed request: ${r.error.issues.map((i) => `${i.path.join(".") || "(request)"}: ${i.message}`).join("; ")}` };
  return { top: r.data.top ?? DEFAULT_TOP };
}

export class SuggestServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly o: { path: string; answer: (top: number) => Promise<Suggestions> }) {}

  async start(): Promise<void> {
    const dir = dirname(this.o.path);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // The directory is what keeps other users out between listen() and the chmod below.
    chmodSync(dir, 0o700);
    // A socket left by a daemon that crashed (one daemon per state dir is enforced by its pid file).
    if (existsSync(this.o.path) && lstatSync(this.o.path).isSocket()) rmSync(this.o.path);
    const server = createServer((s) => this.serve(s));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.o.path, () => resolve());
    });
    chmodSync(this.o.path, 0o600);
    this.server = server;
  }

  private serve(s: Socket): void {
    this.sockets.add(s);
    s.on("close", () => this.sockets.delete(s));
    s.on("error", () => s.destroy());
    let buf = "";
    let queue = Promise.resolve();
    s.setEncoding("utf8");
    s.on("data", (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        // Answers go out in request order even though computing one is asynchronous; a bug in
        // one answer drops that connection, never the daemon.
        queue = queue.then(() => this.reply(s, line)).catch(() => void s.destroy());
      }
      if (Buffer.byteLength(buf) > MAX_REQUEST_BYTES) {
        buf = "";
        void queue.then(() => s.end(JSON.stringify({ ok: false, error: `malformed request: longer than ${MAX_REQUEST_BYTES} bytes without a newline` }) + "\n"));
      }
    });
  }

  private async reply(s: Socket, line: string): Promise<void> {
    if (line.trim() === "") return;
    const req = parseSuggestRequest(line);
    let out: object;
    if ("error" in req) out = { ok: false, error: req.error };
    else {
      try {
        out = { ok: true, ...(await this.o.answer(req.top)) };
      } catch (err) {
        out = { ok: false, error: (err as Error).message };
      }
    }
    if (!s.destroyed) s.write(JSON.stringify(out) + "\n");
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(this.o.path, { force: true });
  }
}
