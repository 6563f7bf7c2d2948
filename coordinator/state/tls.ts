/**
 * The coordinator's private CA and TLS server certificate, made with the openssl binary (no
 * hand-made ASN.1). Devices and operators pin this CA; the server key never leaves the state dir.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { X509Certificate } from "node:crypto";
import { isIP } from "node:net";
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

const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** `DNS:name` or `IP:addr` for a certificate; refuses anything else (it is written into an openssl config). */
export function subjectAltName(name: string): string {
  if (isIP(name)) return `IP:${name}`;
  if (DNS_NAME.test(name)) return `DNS:${name.toLowerCase()}`;
  throw new TlsSetupError(`--tls-name ${JSON.stringify(name)} is neither a DNS name nor an IP address`);
}

/** True when the server certificate already covers every name in `names`. */
function certCovers(certPem: Buffer, names: readonly string[]): boolean {
  const cert = new X509Certificate(certPem);
  return names.every((n) => (isIP(n) ? cert.checkIP(n) !== undefined : cert.checkHost(n) !== undefined));
}

/**
 * Creates the CA (once) and a server certificate for loopback, this host name and `extraNames`
 * (the public names clients dial, `coordinator init --tls-name`). A server certificate that does
 * not cover a requested name is reissued under the same CA, so devices keep their pinned CA.
 * Returns the files it created.
 */
export function ensureTls(stateRoot: string, extraNames: string[] = []): string[] {
  const p = tlsPaths(stateRoot);
  const extra = extraNames.map(subjectAltName);
  const haveCa = existsSync(p.caCert) && existsSync(p.caKey);
  if (haveCa && existsSync(p.serverCert) && existsSync(p.serverKey) && certCovers(readFileSync(p.serverCert), extraNames)) return [];
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  const created: string[] = [];
  if (!haveCa) {
    openssl(["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650", "-subj", "/CN=Tacit coordinator CA",
      "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], p.dir);
    created.push(p.caCert);
  }
  openssl(["req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=tacit-coordinator"], p.dir);
  const names = [...new Set(["DNS:localhost", "IP:127.0.0.1", "IP:::1", subjectAltName(hostname()), ...extra])];
  writeFileSync(join(p.dir, "server.ext"), `subjectAltName=${names.join(",")}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n`);
  openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "825", "-extfile", "server.ext"], p.dir);
  for (const f of ["server.csr", "server.ext", "ca.srl"]) rmSync(join(p.dir, f), { force: true });
  chmodSync(p.caKey, 0o600);
  chmodSync(p.serverKey, 0o600);
  created.push(p.serverCert);
  return created;
}

export function serverTlsMaterial(stateRoot: string): { key: Buffer; cert: Buffer } {
  const p = tlsPaths(stateRoot);
  if (!existsSync(p.serverCert)) throw new TlsSetupError(`no TLS certificate in ${p.dir}: run \`tacit coordinator init\``);
  return { key: readFileSync(p.serverKey), cert: readFileSync(p.serverCert) };
}
