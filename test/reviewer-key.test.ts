/**
 * Item 5 / finding L3, separation of duties: the reviewer generates their own key pair
 * (`tacit privacy keygen`), the operator registers only its public half
 * (`tacit coordinator init --reviewer-key reviewer.pub`), so the reviewer's private key never
 * exists on the coordinator host; the reviewer then signs and installs a policy with it
 * (`tacit privacy policy sign|install`). Through the CLI, against a live coordinator.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { runTacit } from "./support/run-tacit.ts";
import { ledgerText } from "./support/ledger-text.ts";
import { startCoordinator, type Coordinator } from "../coordinator/coordinator.ts";

describe("the reviewer's key is the reviewer's own (item 5)", () => {
  let dir: string;
  let state: string;
  let coordinator: Coordinator | undefined;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "tacit-reviewer-"));
    state = join(dir, "state");
  });
  afterAll(async () => {
    await coordinator?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("init registers only the reviewer's public key, and the reviewer installs a policy signed with their own key", async () => {
    const reviewer = join(dir, "reviewer");
    expect((await runTacit(["privacy", "keygen", "--out", reviewer])).status).toBe(0);
    const init = await runTacit(["coordinator", "init", "--state-dir", state, "--reviewer-key", join(reviewer, "reviewer.pub")]);
    expect(init.status, init.stderr).toBe(0);
    expect(init.stdout).toMatch(/reviewer reviewer-1: public key from the reviewer/);

    // No reviewer private key anywhere in the state dir; the operator roles still get theirs.
    const keyFiles = readdirSync(join(state, "keys"));
    expect(keyFiles.filter((f) => f.startsWith("reviewer"))).toEqual([]);
    expect(keyFiles.sort()).toEqual(["admin-1.key", "ml-team-1.key"]);
    const principals = JSON.parse(readFileSync(join(state, "principals.json"), "utf8")) as { keyId: string; role: string; publicKey: string }[];
    expect(principals.filter((p) => p.role === "reviewer")).toEqual([{ keyId: "reviewer-1", role: "reviewer", publicKey: readFileSync(join(reviewer, "reviewer.pub"), "utf8").trim() }]);

    coordinator = await startCoordinator({ stateDir: state, port: 0, env: {}, logger: pino({ level: "silent" }) });
    const address = `localhost:${coordinator.port}`;
    const ca = join(state, "tls", "ca.pem");
    const body = join(dir, "policy-body.json");
    writeFileSync(body, JSON.stringify({ version: 1, minNoiseMultiplier: 0.5, maxDeviceEpsilon: 20, delta: 1e-6, minSurvivors: 2, allowedSignals: ["commit", "file-change"] }));
    const policy = join(dir, "policy.json");
    expect((await runTacit(["privacy", "policy", "sign", "--in", body, "--key", join(reviewer, "reviewer.key"), "--out", policy])).status).toBe(0);
    const install = await runTacit(["privacy", "policy", "install", "--in", policy, "--key", join(reviewer, "reviewer.key"), "--key-id", "reviewer-1", "--coordinator", address, "--ca", ca]);
    expect(install.status, install.stderr).toBe(0);
    const ledger = ledgerText(coordinator.paths.root).trim().split("\n").map((l) => JSON.parse(l) as { type: string; body: { policy?: { reviewerPublicKey?: string } } });
    expect(ledger.filter((e) => e.type === "policy").map((e) => e.body.policy?.reviewerPublicKey)).toEqual([principals.find((p) => p.role === "reviewer")!.publicKey]);

    // A policy signed with any other key is refused, even when the registered reviewer sends it.
    const stranger = join(dir, "stranger");
    expect((await runTacit(["privacy", "keygen", "--out", stranger])).status).toBe(0);
    const forged = join(dir, "forged.json");
    expect((await runTacit(["privacy", "policy", "sign", "--in", body, "--key", join(stranger, "reviewer.key"), "--out", forged])).status).toBe(0);
    const refused = await runTacit(["privacy", "policy", "install", "--in", forged, "--key", join(reviewer, "reviewer.key"), "--coordinator", address, "--ca", ca]);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/registered|reviewer/i);
  }, 180_000);

  it("init on an existing state dir adds a further reviewer key, and refuses a weak one", async () => {
    const second = join(dir, "second");
    expect((await runTacit(["privacy", "keygen", "--out", second])).status).toBe(0);
    const again = await runTacit(["coordinator", "init", "--state-dir", state, "--reviewer-key", join(second, "reviewer.pub")]);
    expect(again.status, again.stderr).toBe(0);
    const principals = JSON.parse(readFileSync(join(state, "principals.json"), "utf8")) as { keyId: string; role: string }[];
    expect(principals.filter((p) => p.role === "reviewer").map((p) => p.keyId)).toEqual(["reviewer-1", "reviewer-2"]);
    expect(existsSync(join(state, "keys", "reviewer-2.key"))).toBe(false);

    // The identity point (01 00…00) verifies a key-less signature: anyone could sign as it.
    const weak = join(dir, "weak.pub");
    const identity = Buffer.alloc(32);
    identity[0] = 1;
    writeFileSync(weak, identity.toString("base64") + "\n");
    const bad = await runTacit(["coordinator", "init", "--state-dir", state, "--reviewer-key", weak]);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/small-order/);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
  }, 120_000);
});
