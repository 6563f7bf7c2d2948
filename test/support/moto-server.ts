/**
 * Test support: a real S3-compatible server on loopback — moto's (`python -m moto.server`, moto 5,
 * which honours `If-None-Match: *` with 412) — for the S3 store tests. scripts/ensure-deps.mjs
 * installs it; a missing one fails the test with the command to run, never a skip.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer, request, type Server } from "node:http";
import { join } from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { freePort } from "../../coordinator/redis/embedded-redis.ts";
import { findMotoPython } from "../../scripts/moto-python.mjs";
import { sleep } from "./wait.ts";

const root = join(import.meta.dirname, "..", "..");

export class MotoServer {
  private constructor(
    private readonly child: ChildProcess,
    readonly endpoint: string,
  ) {}

  /** What a coordinator (or any process) needs in its env to reach this server. */
  get env(): Record<string, string> {
    return { TACIT_S3_ENDPOINT: this.endpoint, AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test", AWS_REGION: "us-east-1", AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" };
  }

  static async start(): Promise<MotoServer> {
    const python = findMotoPython(root);
    if (!python) throw new Error("moto 5 (S3-compatible server) not found: run `node scripts/ensure-deps.mjs test` (it installs moto[server] into .venv-test)");
    const port = await freePort();
    let log = "";
    const child = spawn(python, ["-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    child.stderr!.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    const m = new MotoServer(child, `http://127.0.0.1:${port}`);
    const deadline = Date.now() + 90_000; // moto imports slowly on a loaded machine
    while (!(await m.answers())) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`moto server on port ${port} did not start (exit ${child.exitCode}): ${log}`);
      }
      await sleep(200);
    }
    return m;
  }

  private answers(): Promise<boolean> {
    return new Promise((resolve) => {
      const req = request(`${this.endpoint}/moto-api/`, { timeout: 2000 }, (res) => {
        res.resume();
        resolve(true);
      });
      req.on("error", () => resolve(false));
      req.on("timeout", () => req.destroy());
      req.end();
    });
  }

  /** A new, empty bucket; its name. */
  async bucket(): Promise<string> {
    const name = `tacit-${randomBytes(6).toString("hex")}`;
    const c = new S3Client({ endpoint: this.endpoint, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: "test", secretAccessKey: "test" } });
    await c.send(new CreateBucketCommand({ Bucket: name }));
    c.destroy();
    return name;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    this.child.kill("SIGTERM");
    await Promise.race([exited, sleep(5000)]);
    this.child.kill("SIGKILL");
  }
}

/**
 * An HTTP proxy in front of `endpoint` that drops the If-None-Match header: an S3-compatible
 * server without conditional writes, as older servers are, for the startup probe's test.
 */
export async function conditionalWritesIgnored(endpoint: string): Promise<{ endpoint: string; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const headers = { ...req.headers };
    delete headers["if-none-match"];
    const up = request(`${endpoint}${req.url}`, { method: req.method, headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return { endpoint: `http://127.0.0.1:${port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
}
