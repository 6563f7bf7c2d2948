/**
 * The coordinator's state dir at rest (security findings 2026-11-30, "Files at rest" and L8):
 * `init` leaves the root 0700 and every secret 0600, also over a dir that already existed with
 * wider modes; `start` on a root widened later narrows it again (or refuses one others could
 * write); the CA may sign only end-entity certificates (pathlen:0) and the server certificate
 * is no CA.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { initCoordinatorState, StateDirError } from "../coordinator/state/state-dir.ts";
import { startCoordinator } from "../coordinator/coordinator.ts";
import { stateLockPath } from "../coordinator/state/state-lock.ts";

const modeOf = (path: string): string => (statSync(path).mode & 0o777).toString(8).padStart(4, "0");

/** Every secret `init` writes; registry.key exists in state dirs of this version (older ones get it at first start). */
function secretFiles(root: string): string[] {
  const keys = readdirSync(join(root, "keys")).filter((f) => f.endsWith(".key")).map((f) => join(root, "keys", f));
  const files = [join(root, "coordinator.key"), join(root, "principals.json"), join(root, "tls", "ca.key"), join(root, "tls", "server.key"), ...keys];
  if (existsSync(join(root, "registry.key"))) files.push(join(root, "registry.key"));
  return files;
}

function expectPrivate(root: string): void {
  expect(modeOf(root), root).toBe("0700");
  const secrets = secretFiles(root);
  // The three generated principal keys: an empty keys/ would make the loop below vacuous.
  expect(secrets.filter((f) => f.includes(`${join(root, "keys")}/`)).length).toBe(3);
  for (const f of secrets) expect(modeOf(f), f).toBe("0600");
}

/** A pino logger whose records the test can read. */
function capturingLogger(): { logger: pino.Logger; records: { level: number; msg: string; mode?: string }[] } {
  const records: { level: number; msg: string; mode?: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line.trim()) records.push(JSON.parse(line) as { level: number; msg: string; mode?: string });
      done();
    },
  });
  return { logger: pino({ level: "warn" }, sink), records };
}

describe("coordinator state dir at rest", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "tacit-at-rest-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("init makes a new state dir 0700 and every key file 0600", () => {
    const root = join(dir, "fresh");
    initCoordinatorState(root);
    expectPrivate(root);
    for (const sub of ["keys", "tls", "checkpoints"]) expect(modeOf(join(root, sub)), sub).toBe("0700");
  });

  it("init narrows a state dir that already existed with mode 0755", () => {
    const root = join(dir, "pre-existing");
    mkdirSync(root);
    chmodSync(root, 0o755); // explicit: mkdir's mode is filtered by the umask
    expect(modeOf(root)).toBe("0755");
    initCoordinatorState(root);
    expectPrivate(root);
  });

  it("L8: the CA can sign only end-entity certificates (CA:TRUE, pathlen:0); the server certificate is not a CA", () => {
    const root = join(dir, "certificates");
    initCoordinatorState(root);
    const caPem = join(root, "tls", "ca.pem");
    const serverPem = join(root, "tls", "server.pem");
    const ca = new X509Certificate(readFileSync(caPem));
    const server = new X509Certificate(readFileSync(serverPem));
    expect(ca.ca).toBe(true);
    expect(server.ca).toBe(false);
    expect(server.checkIssued(ca)).toBe(true);
    expect(server.verify(ca.publicKey)).toBe(true);
    // Node exposes no path length; openssl (which init itself needs) prints the extension.
    const caConstraints = execFileSync("openssl", ["x509", "-in", caPem, "-noout", "-ext", "basicConstraints"], { encoding: "utf8" });
    expect(caConstraints).toMatch(/Basic Constraints: critical/);
    expect(caConstraints).toMatch(/CA:TRUE, pathlen:0\b/);
    // Either no basicConstraints at all or CA:FALSE: never a CA a stolen server key could sign with.
    // (openssl says "No extensions in certificate" on stderr for the former: kept out of the test output.)
    const serverConstraints = execFileSync("openssl", ["x509", "-in", serverPem, "-noout", "-ext", "basicConstraints"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    expect(serverConstraints).not.toMatch(/CA:TRUE/);
  });

  it("start on a root widened to 0755 after init makes it 0700 again and says so", async () => {
    const root = join(dir, "widened");
    initCoordinatorState(root);
    chmodSync(root, 0o755);
    const { logger, records } = capturingLogger();
    const c = await startCoordinator({ stateDir: root, logger, env: {} });
    try {
      expect(modeOf(root)).toBe("0700");
      expect(records.find((r) => /state dir was open to other users/.test(r.msg))?.mode).toBe("0755");
      // The embedded Redis's password file, written at every start.
      expect(modeOf(join(root, "redis"))).toBe("0700");
      expect(modeOf(join(root, "redis", "redis.conf"))).toBe("0600");
      expectPrivate(root);
    } finally {
      await c.stop();
    }
  });

  it("start refuses a root other users can write, before taking the lock or touching anything", async () => {
    const root = join(dir, "group-writable");
    initCoordinatorState(root);
    chmodSync(root, 0o775);
    // A coordinator that starts anyway is stopped again, so a failing run leaves no Redis behind.
    const refusal = await startCoordinator({ stateDir: root, logger: pino({ level: "silent" }), env: {} }).then(
      async (c) => {
        await c.stop();
        return undefined;
      },
      (err: unknown) => err,
    );
    expect(refusal).toBeInstanceOf(StateDirError);
    expect((refusal as Error).message).toMatch(/writable by other users \(mode 0775\)/);
    // Left for the operator to inspect: not silently "fixed", no lock, no Redis started.
    expect(modeOf(root)).toBe("0775");
    expect(existsSync(stateLockPath(root))).toBe(false);
    expect(existsSync(join(root, "redis"))).toBe(false);
  });

  it("start leaves a directory that is not a state dir alone (no coordinator key: nothing is chmod-ed)", async () => {
    const notState = join(dir, "not-a-state-dir");
    mkdirSync(notState);
    chmodSync(notState, 0o755);
    await expect(startCoordinator({ stateDir: notState, logger: pino({ level: "silent" }), env: {} })).rejects.toThrow(/no coordinator key/);
    expect(modeOf(notState)).toBe("0755");
  });
});
