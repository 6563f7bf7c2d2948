/**
 * The low findings (L1–L11) and item 5 of the 2026-11-30 security findings, each against a live
 * coordinator: who declined is in the ledger but never why, and a member reads only its own part
 * of a round; Deregister ends the stream; only a
 * registered reviewer's small policy installs; ReadLedger serves pages from its index; one error
 * text for unknown and enrolled ids; Enroll is rate-limited per address before anything else;
 * TLS 1.3 only and the public name in the certificate; run specs bounded; a `null` spec refused.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect as tlsConnect } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateEd25519, privateKeyFromPem, publicKeyFromRaw } from "../shared/crypto/index.ts";
import { entryHash, entrySignatureValid, provenRoles, type LedgerEntry } from "../shared/ledger/index.ts";
import { signPolicy } from "../shared/dp/index.ts";
import { parseRunSpec } from "../shared/run/index.ts";
import type { RoundConfig } from "../shared/run/index.ts";
import { initCoordinatorState } from "../coordinator/state/state-dir.ts";
import { CoordinatorClient, RpcCallError } from "../client/transport/coordinator-client.ts";
import { startCoordinator } from "../coordinator/coordinator.ts";
import { loadTacitProto } from "../shared/transport/proto.ts";
import { pinnedCaCredentials } from "../shared/transport/channel-credentials.ts";
import pino from "pino";
import { OPEN_LIMITS, TestCluster, tinyRunSpec } from "./support/cluster.ts";
import { runTacit } from "./support/run-tacit.ts";
import { ledgerText } from "./support/ledger-text.ts";

function constantDelta(value: number) {
  return async (cfg: RoundConfig) => ({ delta: new Float32Array(cfg.parameterCount).fill(value), loss: 1, examples: 1 });
}

async function outcome(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
    return { code: grpc.status.OK, message: "" };
  } catch (err) {
    return { code: (err as RpcCallError).code, message: (err as Error).message };
  }
}

describe("coordinator hardening: low findings and policy", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start();
  });
  afterAll(async () => cluster?.stop());

  it("L1: the ledger names who declined but never why; a member is served its own verified view of the round, naming no other device", async () => {
    for (let i = 0; i < 3; i++) await cluster.addDevice(`open-${i}`, { train: constantDelta(0.01) });
    const strict = await cluster.addDevice("strict", { train: constantDelta(0.01) }, { ...OPEN_LIMITS, minNoiseMultiplier: 5 });
    await cluster.waitConnected(4);
    // A cohort of 4 with one decline cannot also tolerate a colluder (SecAgg floors): none assumed here.
    const runId = await cluster.launch(tinyRunSpec({ rounds: 1, cohortSize: 4, minSurvivors: 3, populationSize: 4, clip: 100, corruptTolerance: 0 }));
    expect((await cluster.waitRun(runId)).state).toBe("completed");
    const ledger = ledgerText(cluster.stateDir);
    const round = ledger.trim().split("\n").map((l) => JSON.parse(l)).find((e) => e.type === "round" && e.body.runId === runId);
    expect(round.body.declined).toEqual([strict.deviceId]);
    expect(ledger).not.toMatch(/NOISE_TOO_LOW|minimum|limit/);
    // What a member is served: its own view of the round, which verifies and proves its own
    // roles, never the other members (the reviewer above reads them all).
    const coordinatorKey = publicKeyFromRaw(Buffer.from(String(JSON.parse(ledger.split("\n")[0]!).body.coordinatorPublicKey), "base64"));
    const viewOf = async (d: { deviceId: string; client: CoordinatorClient }) => {
      const lines = await d.client.readLedger(0);
      const mine = lines.map((l) => JSON.parse(l) as LedgerEntry).find((e) => e.type === "round" && e.body.runId === runId)!;
      expect(mine.hash).toBe(round.hash);
      expect(entryHash(mine)).toBe(mine.hash);
      expect(entrySignatureValid(mine, coordinatorKey)).toBe(true);
      return { text: lines.join("\n"), roles: provenRoles(mine.body, d.deviceId) };
    };
    const open = cluster.devices.filter((d) => d !== strict);
    for (const d of open) {
      const { text, roles } = await viewOf(d);
      expect(roles).toEqual({ inCohort: true, survived: true, declined: false });
      for (const other of cluster.devices) if (other !== d) expect(text.includes(other.deviceId), `${d.deviceId} reads ${other.deviceId}`).toBe(false);
      expect(text).not.toMatch(/NOISE_TOO_LOW|minimum|memberKey/);
    }
    expect((await viewOf(strict)).roles).toEqual({ inCohort: true, survived: false, declined: true });
    for (const d of cluster.devices.splice(0)) d.stop();
  }, 60_000);

  it("L4: ReadLedger serves exactly the entries of the file, from any seq, for the reviewer and for a device", async () => {
    const reviewer = cluster.principal("reviewer-1");
    const file = ledgerText(cluster.stateDir).trim().split("\n");
    expect(await reviewer.readLedger(0)).toEqual(file);
    expect(await reviewer.readLedger(3)).toEqual(file.slice(3));
    expect(await reviewer.readLedger(file.length + 5)).toEqual([]);
    const dev = await cluster.enroll("reader");
    const mine = (await dev.client.readLedger(0)).map((l) => JSON.parse(l));
    expect(mine[0].type).toBe("genesis");
    expect(mine.slice(1).every((e) => e.body.deviceId === dev.deviceId)).toBe(true);
    expect(mine.map((e) => e.type)).toEqual(["genesis", "enrollment"]);
    expect((await outcome(reviewer.readLedger(-1))).code).toBe(grpc.status.INVALID_ARGUMENT);
    reviewer.close();
    dev.client.close();
  });

  it("L2: Deregister ends the device's stream and takes it out of selection", async () => {
    const dev = await cluster.enroll("leaving");
    const stream = dev.client.subscribe(true, "test");
    const ended = new Promise<string>((resolve) => {
      stream.on("data", () => undefined);
      stream.on("end", () => resolve("end"));
      stream.on("error", (e: grpc.ServiceError) => resolve(`error ${e.code}`));
    });
    const deadline = Date.now() + 5000;
    while (!cluster.coordinator.hub.isConnected(dev.deviceId) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(cluster.coordinator.hub.eligibleDevices()).toContain(dev.deviceId);
    await dev.client.unary("Enrollment", "Deregister", {});
    expect(await Promise.race([ended, new Promise((r) => setTimeout(() => r("still open"), 3000))])).not.toBe("still open");
    expect(cluster.coordinator.hub.eligibleDevices()).not.toContain(dev.deviceId);
    dev.client.close();
  });

  it("L3: SetPolicy refuses a policy signed by an unregistered key and one over its size bound", async () => {
    const reviewer = cluster.principal("reviewer-1");
    const stranger = generateEd25519();
    const weak = signPolicy({ version: 1, minNoiseMultiplier: 0, maxDeviceEpsilon: 1e6, delta: 1e-6, minSurvivors: 2, allowedSignals: ["commit"] }, stranger.privateKey, stranger.publicKey);
    const r1 = await outcome(reviewer.unary("Ledger", "SetPolicy", { json: JSON.stringify(weak) }));
    expect(r1.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(r1.message).toMatch(/not a registered reviewer/);
    const key = privateKeyFromPem(readFileSync(join(cluster.coordinator.paths.keysOut, "reviewer-1.key"), "utf8"));
    const huge = signPolicy({ version: 1, minNoiseMultiplier: 1, maxDeviceEpsilon: 10, delta: 1e-6, minSurvivors: 2, allowedSignals: Array.from({ length: 2000 }, () => "commit") }, key.privateKey, key.publicKey);
    const r2 = await outcome(reviewer.unary("Ledger", "SetPolicy", { json: JSON.stringify(huge) }));
    expect([grpc.status.INVALID_ARGUMENT, grpc.status.RESOURCE_EXHAUSTED]).toContain(r2.code);
    const good = signPolicy({ version: 1, minNoiseMultiplier: 0, maxDeviceEpsilon: 1e6, delta: 1e-6, minSurvivors: 2, allowedSignals: ["commit", "file-change"] }, key.privateKey, key.publicKey);
    expect((await outcome(reviewer.unary("Ledger", "SetPolicy", { json: JSON.stringify(good) }))).code).toBe(grpc.status.OK);
    reviewer.close();
  });

  it("L5: an unknown id and an enrolled id with a bad signature get the same error", async () => {
    const dev = await cluster.enroll("oracle");
    const impostor = generateEd25519();
    const asEnrolled = new CoordinatorClient({ address: cluster.address, caFile: cluster.caFile, credentials: { keyId: dev.deviceId, privateKey: impostor.privateKey } });
    const asUnknown = new CoordinatorClient({ address: cluster.address, caFile: cluster.caFile, credentials: { keyId: "dev-00000000000000000000", privateKey: impostor.privateKey } });
    const a = await outcome(asEnrolled.unary("Ledger", "GetPolicy", {}));
    const b = await outcome(asUnknown.unary("Ledger", "GetPolicy", {}));
    expect(a.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(a.message).toBe(b.message);
    asEnrolled.close();
    asUnknown.close();
    dev.client.close();
  });

  it("L8: TLS 1.2 is refused; TLS 1.3 is served", async () => {
    const ca = readFileSync(cluster.caFile);
    const handshake = (maxVersion: "TLSv1.2" | "TLSv1.3"): Promise<string> =>
      new Promise((resolve) => {
        const s = tlsConnect({ host: "127.0.0.1", port: cluster.coordinator.port, ca, servername: "localhost", maxVersion, ALPNProtocols: ["h2"] }, () => {
          resolve(String(s.getProtocol()));
          s.destroy();
        });
        s.on("error", (e) => resolve(`error ${e.message}`));
      });
    expect(await handshake("TLSv1.2")).toMatch(/^error/);
    expect(await handshake("TLSv1.3")).toBe("TLSv1.3");
  });
});

describe("Enroll is rate-limited per address before anything else (L5)", () => {
  it("answers a flood of token guesses with RESOURCE_EXHAUSTED", async () => {
    const cluster = await TestCluster.start();
    try {
      const anon = new CoordinatorClient({ address: cluster.address, caFile: cluster.caFile });
      const codes = await Promise.all(
        Array.from({ length: 150 }, (_, i) => outcome(anon.unary("Enrollment", "Enroll", { token: `tt_guess_${i}`, identityPublicKey: Buffer.from(generateEd25519().publicRaw), deviceLabel: "x" })).then((r) => r.code)),
      );
      anon.close();
      expect(codes.filter((c) => c === grpc.status.PERMISSION_DENIED).length).toBeGreaterThan(0);
      expect(codes.filter((c) => c === grpc.status.RESOURCE_EXHAUSTED).length).toBeGreaterThan(0);
    } finally {
      await cluster.stop();
    }
  });
});

describe("certificate names and run specs (L8, L9, L11)", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "tacit-lows-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("coordinator init --tls-name puts a public name in the certificate, reissued under the same CA", async () => {
    const state = join(dir, "state");
    const r = await runTacit(["coordinator", "init", "--state-dir", state, "--tls-name", "coord.example", "--tls-name", "192.0.2.7"]);
    expect(r.status).toBe(0);
    const san = execFileSync("openssl", ["x509", "-in", join(state, "tls", "server.pem"), "-noout", "-ext", "subjectAltName"], { encoding: "utf8" });
    expect(san).toContain("DNS:coord.example");
    expect(san).toContain("IP Address:192.0.2.7");
    const ca = readFileSync(join(state, "tls", "ca.pem"));
    // A name added later reissues the server certificate, not the CA devices pinned.
    initCoordinatorState(state, ["coord2.example"]);
    expect(readFileSync(join(state, "tls", "ca.pem")).equals(ca)).toBe(true);
    expect(execFileSync("openssl", ["x509", "-in", join(state, "tls", "server.pem"), "-noout", "-ext", "subjectAltName"], { encoding: "utf8" })).toContain("DNS:coord2.example");
    const bad = await runTacit(["coordinator", "init", "--state-dir", join(dir, "bad"), "--tls-name", "evil,DNS:x"]);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/neither a DNS name nor an IP address/);
  });

  it("the README flow: a client dialling coord.example verifies the coordinator's certificate", async () => {
    const state = join(dir, "readme");
    initCoordinatorState(state, ["coord.example"]);
    const c = await startCoordinator({ stateDir: state, logger: pino({ level: "silent" }), env: {} });
    try {
      // coord.example is not in DNS here: dial loopback and check the certificate against coord.example.
      const enroll = (name: string): Promise<{ code: number; message: string }> => {
        const client = new (loadTacitProto().tacit.v1.Enrollment)(`127.0.0.1:${c.port}`, pinnedCaCredentials(join(state, "tls", "ca.pem")), { "grpc.ssl_target_name_override": name, "grpc.default_authority": name });
        return new Promise((resolve) =>
          client.Enroll({ token: "tt_x", identityPublicKey: Buffer.from(generateEd25519().publicRaw), deviceLabel: "x" }, { deadline: Date.now() + 3000 }, (err) => {
            client.close();
            resolve({ code: err?.code ?? grpc.status.OK, message: err?.details ?? "" });
          }),
        );
      };
      expect((await enroll("coord.example")).code).toBe(grpc.status.PERMISSION_DENIED); // reached the coordinator over verified TLS
      expect((await enroll("other.example")).code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      await c.stop();
    }
  });

  it("run specs refuse a model whose checkpoint cannot be sent (L9)", () => {
    const huge = { ...tinyRunSpec(), model: { ...tinyRunSpec().model, vocabBuckets: 65_536, window: 64, embedDim: 512, hidden: 2048 } };
    expect(() => parseRunSpec(huge)).toThrow(/checkpoint .* exceeds/);
    expect(() => parseRunSpec(tinyRunSpec())).not.toThrow();
  });

  it("tacit run launch refuses a null, empty or non-object spec file (L11)", async () => {
    for (const [name, text] of [["null.json", "null"], ["empty.json", "{}"]] as const) {
      const f = join(dir, name);
      writeFileSync(f, text);
      const r = await runTacit(["run", "launch", "--spec", f, "--coordinator", "127.0.0.1:1", "--state-dir", join(dir, "none")]);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/must be a JSON object|is empty/);
    }
  });
});
