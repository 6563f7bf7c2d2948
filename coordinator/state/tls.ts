/**
 * The coordinator's private CA and TLS server certificate, made with the openssl binary (no
 * hand-made ASN.1). Devices and operators pin this CA; the server key never leaves the state dir.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";

export class TlsSetupError extends Error {
  override name = "TlsSetupError";
}

export interface TlsPaths {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
}

export function tlsPaths(stateRoot: string): TlsPaths {
  const dir = join(stateRoot, "tls");
  return { dir, caCert: join(dir, "ca.pem"), caKey: join(dir, "ca.key"), serverCert: join(dir, "server.pem"), serverKey: join(dir, "server.key") };
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    const e = err as { code?: string; stderr?: Buffer };
    if (e.code === "ENOENT") throw new TlsSetupError("openssl not found: install it with `sudo apt-get install -y openssl`");
    throw new TlsSetupError(`openssl ${args[0]} failed: ${e.stderr?.toString().trim().split("\n").pop() ?? "unknown error"}`);
  }
}

/** Creates the CA and a server certificate for loopback and this host name; returns created files. */
export function ensureTls(stateRoot: string, extraNames: string[] = []): string[] {
  const p = tlsPaths(stateRoot);
  if (existsSync(p.caCert) && existsSync(p.serverCert) && existsSync(p.serverKey)) return [];
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl(["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650", "-subj", "/CN=Tacit coordinator CA",
    "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], p.dir);
  openssl(["req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=tacit-coordinator"], p.dir);
  const names = ["DNS:localhost", "IP:127.0.0.1", "IP:::1", `DNS:${hostname()}`, ...extraNames.map((n) => (/^[\d.:]+$/.test(n) ? `IP:${n}` : `DNS:${n}`))];
  writeFileSync(join(p.dir, "server.ext"), `subjectAltName=${names.join(",")}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n`);
  openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "825", "-extfile", "server.ext"], p.dir);
  for (const f of ["server.csr", "server.ext", "ca.srl"]) rmSync(join(p.dir, f), { force: true });
  chmodSync(p.caKey, 0o600);
  chmodSync(p.serverKey, 0o600);
  return [p.caCert, p.serverCert];
}

export function serverTlsMaterial(stateRoot: string): { key: Buffer; cert: Buffer } {
  const p = tlsPaths(stateRoot);
  if (!existsSync(p.serverCert)) throw new TlsSetupError(`no TLS certificate in ${p.dir}: run \`tacit coordinator init\``);
  return { key: readFileSync(p.serverKey), cert: readFileSync(p.serverCert) };
}
