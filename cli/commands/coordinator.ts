/** `tacit coordinator init|start|token create` (operators of the coordinator host). */
import type { Command } from "commander";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ShutdownSignals } from "../shutdown.ts";
import { CliError, parseNumber } from "../errors.ts";
import { DEFAULT_COORDINATOR_STATE_DIR, coordinatorPaths, initCoordinatorState, loadPrincipals, parseReviewerPublicKey, writeFileAtomic } from "../../coordinator/state/state-dir.ts";
import { startCoordinator } from "../../coordinator/coordinator.ts";
import { privateKeyFromPem } from "../../shared/crypto/index.ts";
import { CoordinatorClient } from "../../client/transport/coordinator-client.ts";

export function endpointFile(stateDir: string): string {
  return join(coordinatorPaths(stateDir).root, "endpoint.json");
}

/** Address and a principal's credentials for talking to a coordinator from its own host. */
export function principalClient(o: { stateDir?: string; coordinator?: string; key?: string; keyId?: string; ca?: string }, role: "ml-team" | "reviewer" | "admin"): CoordinatorClient {
  const stateDir = o.stateDir ?? DEFAULT_COORDINATOR_STATE_DIR;
  let address = o.coordinator;
  if (!address) {
    try {
      address = (JSON.parse(readFileSync(endpointFile(stateDir), "utf8")) as { address: string }).address;
    } catch {
      throw new CliError(`no --coordinator given and no running coordinator recorded in ${endpointFile(stateDir)}`);
    }
  }
  const keyId = o.keyId ?? `${role}-1`;
  const keyPath = o.key ?? join(coordinatorPaths(stateDir).keysOut, `${keyId}.key`);
  let pem: string;
  try {
    pem = readFileSync(keyPath, "utf8");
  } catch {
    throw new CliError(`cannot read the ${role} key ${keyPath}: pass --key FILE --key-id ID`);
  }
  const caFile = o.ca ?? join(coordinatorPaths(stateDir).root, "tls", "ca.pem");
  return new CoordinatorClient({ address, caFile, credentials: { keyId, privateKey: privateKeyFromPem(pem, keyPath).privateKey } });
}

export function registerCoordinatorCommands(program: Command): void {
  const coord = program.command("coordinator").description("run and administer the coordinator");
  coord
    .command("init")
    .description("create the state dir: coordinator signing key, ML-team and admin keys, and the reviewer's public key")
    .option("--state-dir <dir>", "state directory", DEFAULT_COORDINATOR_STATE_DIR)
    .option("--tls-name <host>", "a DNS name or IP address clients dial, added to the TLS certificate (repeatable)", (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option("--reviewer-key <file>", "a reviewer's public key (reviewer.pub from `tacit privacy keygen`) to register; repeatable, also on an existing state dir", (v: string, acc: string[]) => [...acc, v], [] as string[])
    .action((o: { stateDir: string; tlsName: string[]; reviewerKey: string[] }) => {
      const reviewerKeys = o.reviewerKey.map((file) => {
        let text: string;
        try {
          text = readFileSync(file, "utf8");
        } catch {
          throw new CliError(`cannot read the reviewer public key ${file}`);
        }
        return parseReviewerPublicKey(text, file);
      });
      const r = initCoordinatorState(o.stateDir, o.tlsName, reviewerKeys);
      if (r.created.length === 0) process.stdout.write(`state dir ${r.paths.root} already initialised\n`);
      for (const f of r.created) process.stdout.write(`created ${f}\n`);
      for (const p of loadPrincipals(r.paths)) if (p.role === "reviewer" && reviewerKeys.includes(p.publicKey)) process.stdout.write(`reviewer ${p.keyId}: public key from the reviewer (no private key on this host)\n`);
      if (r.created.some((f) => /reviewer-\d+\.key$/.test(f))) {
        process.stdout.write("note: generated a reviewer key pair in keys/ (development only): for real use the reviewer runs `tacit privacy keygen` and you pass --reviewer-key reviewer.pub\n");
      }
    });
  coord
    .command("start")
    .description("start the coordinator (gRPC) with REDIS_URL or an embedded redis-server")
    .option("--state-dir <dir>", "state directory", DEFAULT_COORDINATOR_STATE_DIR)
    .option("--host <host>", "listen address", "127.0.0.1")
    .option("--port <port>", "listen port (0 = any free port)", "7443")
    .action(async (o: { stateDir: string; host: string; port: string }) => {
      const port = parseNumber("--port", o.port, { min: 0, max: 65535, integer: true });
      const shutdown = new ShutdownSignals();
      const c = await startCoordinator({ stateDir: o.stateDir, host: o.host, port });
      const address = `${o.host === "127.0.0.1" || o.host === "0.0.0.0" ? "localhost" : o.host}:${c.port}`;
      writeFileAtomic(endpointFile(o.stateDir), JSON.stringify({ address, pid: process.pid }) + "\n", 0o644);
      process.stderr.write(`tacit coordinator listening on ${o.host}:${c.port} (state ${c.paths.root})\n`);
      await shutdown.next();
      // Rounds running here end at their next phase boundary and are recorded; the embedded
      // Redis stops; the state-dir lock goes with the process.
      await c.stop();
      process.stderr.write("tacit coordinator stopped\n");
      process.exit(shutdown.exitCode() ?? 0);
    });
  const token = coord.command("token").description("enrollment tokens");
  token
    .command("create")
    .description("create a single-use enrollment token for one laptop")
    .option("--state-dir <dir>", "coordinator state directory", DEFAULT_COORDINATOR_STATE_DIR)
    .option("--coordinator <host:port>", "coordinator address (default: from the state dir)")
    .option("--key <file>", "admin private key (only the admin creates enrollment tokens)")
    .option("--key-id <id>", "key id registered with the coordinator", "admin-1")
    .option("--ca <file>", "coordinator CA certificate (default: the state dir's tls/ca.pem)")
    .option("--ttl <seconds>", "validity", "86400")
    .option("--label <text>", "note stored with the token", "")
    .option("--json", "print JSON")
    .action(async (o: { stateDir: string; coordinator?: string; key?: string; keyId: string; ttl: string; label: string; json?: boolean }) => {
      // Flags first: a bad --ttl is refused before any key is read or connection made.
      const ttlSeconds = parseNumber("--ttl", o.ttl, { min: 60, max: 30 * 86400, integer: true });
      const client = principalClient(o, "admin");
      try {
        const r = await client.unary<object, { token: string; expiresAtMs: string }>("Enrollment", "CreateToken", { ttlSeconds, label: o.label });
        process.stdout.write(o.json ? JSON.stringify({ token: r.token, expiresAt: new Date(Number(r.expiresAtMs)).toISOString() }) + "\n" : `${r.token}\n`);
      } finally {
        client.close();
      }
    });
}
