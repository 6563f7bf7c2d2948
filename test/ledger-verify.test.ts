/**
 * The privacy ledger of a real run (coordinator + 3 devices over gRPC, distributed DP on):
 * every single-byte change, every deleted, duplicated or reordered entry and every forged
 * signature is detected; a run that broke the policy is a violation; ε recomputed from the
 * ledger equals what the devices charged; a torn last line is cut on reopen; the HTML report
 * renders in real headless Chromium.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, writeFileSync, mkdtempSync, appendFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sign } from "node:crypto";
import { generateEd25519, privateKeyFromPem } from "../shared/crypto/index.ts";
import { deviceEpsilon, signPolicy } from "../shared/dp/index.ts";
import { LedgerWriter, verifyLedger, LedgerFormatError, sealEntry } from "../shared/ledger/index.ts";
import { renderReport } from "../shared/ledger/report.ts";
import { TestCluster, tinyRunSpec } from "./support/cluster.ts";
import { ledgerText } from "./support/ledger-text.ts";

describe("privacy ledger of a real run", () => {
  let cluster: TestCluster;
  let ledger: string;
  let policyJson: string;
  const charged = new Map<string, number>();

  beforeAll(async () => {
    cluster = await TestCluster.start();
    const reviewerKey = privateKeyFromPem(readFileSync(join(cluster.coordinator.paths.keysOut, "reviewer-1.key"), "utf8"));
    const reviewer = cluster.principal("reviewer-1");
    const spec = tinyRunSpec({ rounds: 2, noiseMultiplier: 1.5, cohortSize: 3, minSurvivors: 2, populationSize: 3, clip: 1 });
    policyJson = JSON.stringify(signPolicy({ version: 1, minNoiseMultiplier: 1, maxDeviceEpsilon: 50, delta: 1e-6, minSurvivors: 2, allowedSignals: ["commit", "file-change"] }, reviewerKey.privateKey, reviewerKey.publicKey));
    await reviewer.unary("Ledger", "SetPolicy", { json: policyJson });
    for (let i = 0; i < 3; i++) {
      await cluster.addDevice(`d${i}`, { train: async (cfg) => ({ delta: Float32Array.from({ length: cfg.parameterCount }, (_, j) => Math.sin(j + i) * 0.01), loss: 1, examples: 10 }) });
    }
    await cluster.waitConnected(3);
    const runId = await cluster.launch(spec);
    expect((await cluster.waitRun(runId)).state).toBe("completed");
    // A run that breaks the policy is refused at launch, naming the rule and the projected ε.
    await expect(cluster.launch({ ...spec, noiseMultiplier: 0.5 })).rejects.toThrow(/minNoiseMultiplier.*projected device ε/);
    ledger = ledgerText(cluster.stateDir);
    for (const d of cluster.devices) charged.set(d.deviceId, deviceEpsilon(d.budget.events(), 1e-6));
    reviewer.close();
  });
  afterAll(async () => cluster?.stop());

  it("verifies and recomputes the same ε the devices charged themselves", () => {
    const f = verifyLedger(ledger, { policy: JSON.parse(policyJson), delta: 1e-6 });
    expect(f.violations).toEqual([]);
    expect(f.ok).toBe(true);
    expect(f.devices).toHaveLength(3);
    for (const d of f.devices) expect(d.deviceEpsilon).toBeCloseTo(charged.get(d.deviceId)!, 9);
    const lines = ledger.trim().split("\n").map((l) => JSON.parse(l) as { type: string; body: { privacy?: { eligible: number; sampling: string; colluders: number; wrapProbability: number } } });
    expect(lines.filter((l) => l.type === "attestation")).toHaveLength(6);
    // Each round records the pool its cohort was drawn from, the scheme, the collusion assumption
    // and the wrap-around bound (audit findings 4, 5, 6).
    for (const r of lines.filter((l) => l.type === "round")) {
      expect(r.body.privacy).toMatchObject({ eligible: 3, sampling: "fixed-size-without-replacement", colluders: 1 });
      expect(r.body.privacy!.wrapProbability).toBeLessThan(1e-8);
    }
  });

  it("detects every single-byte change, deletion, duplication, reordering and forged signature", async () => {
    const bytes = Buffer.from(ledger);
    let flips = 0;
    let detected = 0;
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] === 0x0a) continue; // changing a newline changes the line structure: covered below
      const b = Buffer.from(bytes);
      b[i] = b[i] === 0x41 ? 0x42 : 0x41;
      flips++;
      if (i % 500 === 0) await new Promise((r) => setImmediate(r)); // keep the test worker responsive
      try {
        if (!verifyLedger(b.toString("latin1"), { integrityOnly: true }).ok) detected++;
      } catch (err) {
        if (err instanceof LedgerFormatError) detected++;
        else throw err;
      }
    }
    const lines = ledger.slice(0, -1).split("\n");
    const variants: string[][] = [];
    for (let i = 0; i < lines.length; i++) variants.push(lines.filter((_, j) => j !== i)); // deletions
    for (let i = 0; i < lines.length; i++) variants.push([...lines.slice(0, i + 1), lines[i]!, ...lines.slice(i + 1)]); // duplications
    for (let i = 0; i + 1 < lines.length; i++) variants.push([...lines.slice(0, i), lines[i + 1]!, lines[i]!, ...lines.slice(i + 2)]); // swaps
    const forger = generateEd25519();
    for (let i = 0; i < lines.length; i++) {
      const e = JSON.parse(lines[i]!);
      const forged = sealEntry({ seq: e.seq, prevHash: e.prevHash, time: e.time, type: e.type, body: e.body }, forger.privateKey);
      variants.push(lines.map((l, j) => (j === i ? JSON.stringify(forged) : l)));
    }
    // The reviewer holds the head (seq and hash of the last entry) from outside the file, as a
    // device's local copy or the coordinator's status would give it; a tail cut is caught by it.
    const head = JSON.parse(lines.at(-1)!) as { seq: number; hash: string };
    let structural = 0;
    for (const v of variants) {
      try {
        if (!verifyLedger(v.join("\n") + "\n", { expectedHead: { seq: head.seq, hash: head.hash } }).ok) structural++;
      } catch (err) {
        if (err instanceof LedgerFormatError) structural++;
        else throw err;
      }
    }
    console.log(`ledger tamper test: ${detected}/${flips} single-byte changes and ${structural}/${variants.length} deletions, duplications, reorderings and forged signatures detected`);
    expect(detected).toBe(flips);
    expect(structural).toBe(variants.length);
  }, 600_000); // O(bytes × entries): the enrollment entries (finding M3) make the ledger ~30 % longer

  it("reports a run that broke the policy in force at its launch", () => {
    const dir = mkdtempSync(join(tmpdir(), "tacit-ledger-"));
    const key = generateEd25519();
    const reviewer = generateEd25519();
    const w = LedgerWriter.open(join(dir, "l.jsonl"), key.privateKey);
    w.append("genesis", { coordinatorPublicKey: Buffer.from(key.publicRaw).toString("base64") });
    w.append("policy", { policy: signPolicy({ version: 1, minNoiseMultiplier: 2, maxDeviceEpsilon: 1, delta: 1e-6, minSurvivors: 5, allowedSignals: ["commit"] }, reviewer.privateKey, reviewer.publicKey) });
    const spec = tinyRunSpec({ noiseMultiplier: 0.5 });
    const ml = generateEd25519();
    const body = JSON.stringify(spec);
    w.append("run-launch", { runId: "run-bad", spec, request: { body, publicKey: Buffer.from(ml.publicRaw).toString("base64"), signature: Buffer.from(sign(null, Buffer.from(body), ml.privateKey)).toString("base64") } });
    const f = verifyLedger(readFileSync(join(dir, "l.jsonl"), "utf8"));
    expect(f.ok).toBe(false);
    const codes = f.violations.map((v) => v.code);
    expect(codes).toEqual(expect.arrayContaining(["POLICY_minNoiseMultiplier", "POLICY_maxDeviceEpsilon", "POLICY_minSurvivors", "POLICY_allowedSignals"]));
    expect(f.violations.find((v) => v.code === "POLICY_maxDeviceEpsilon")!.line).toBe(3);
  });

  it("checks each attestation against its own round's mechanism when the cohort changes between rounds", () => {
    const dir = mkdtempSync(join(tmpdir(), "tacit-ledger-"));
    const key = generateEd25519();
    const w = LedgerWriter.open(join(dir, "l.jsonl"), key.privateKey);
    w.append("genesis", { coordinatorPublicKey: Buffer.from(key.publicRaw).toString("base64") });
    const spec = tinyRunSpec({ noiseMultiplier: 1, rounds: 2, cohortSize: 4, populationSize: 8, minSurvivors: 2 });
    const ml = generateEd25519();
    const body = JSON.stringify(spec);
    w.append("run-launch", { runId: "run-shrinks", spec, request: { body, publicKey: Buffer.from(ml.publicRaw).toString("base64"), signature: Buffer.from(sign(null, Buffer.from(body), ml.privateKey)).toString("base64") } });
    const devices = ["dev-a", "dev-b", "dev-c", "dev-d"].map((id) => ({ id, key: generateEd25519() }));
    // Four devices in round 0, three in round 1: the per-device noise (and so the event) differs.
    const events = [4, 3].map((n) => ({ kind: "distributedDiscreteGaussian" as const, l2Sensitivity: 1000, l1Sensitivity: 50_000, perDeviceVariance: 1e6 / n, devices: 1, dimension: 1024 }));
    const attest = (round: number, d: (typeof devices)[number], event: unknown) => {
      const bodyJson = JSON.stringify({ type: "tacit-attestation-v1", deviceId: d.id, runId: "run-shrinks", round, attempt: 0, mechanism: spec.mechanism, clip: spec.clip, noiseMultiplier: spec.noiseMultiplier, minSurvivors: spec.minSurvivors, event });
      w.append("attestation", { runId: "run-shrinks", round, deviceId: d.id, identityPublicKey: Buffer.from(d.key.publicRaw).toString("base64"), bodyJson, signature: Buffer.from(sign(null, Buffer.from(bodyJson), d.key.privateKey)).toString("base64") });
    };
    [devices, devices.slice(0, 3)].forEach((members, round) => {
      const ids = members.map((d) => d.id);
      w.append("round", { runId: "run-shrinks", round, attempt: 0, status: "completed", cohort: ids, survivors: ids, mechanism: events[round] });
      for (const d of members) attest(round, d, events[round]);
    });
    const good = verifyLedger(readFileSync(join(dir, "l.jsonl"), "utf8"), { delta: 1e-6 });
    expect(good.violations).toEqual([]);
    // These round entries record no eligible pool, so no amplification is claimed: population ε
    // is the composition of each round's own event.
    const pop = good.runs[0]!.rounds[1]!.populationEpsilon;
    expect(pop).toBeCloseTo(deviceEpsilon(events, 1e-6), 9);
    expect(pop).not.toBeCloseTo(deviceEpsilon([events[0]!, events[0]!], 1e-6), 6);

    // A device attesting round 0's mechanism for round 1 is named.
    attest(1, devices[0]!, events[0]);
    const bad = verifyLedger(readFileSync(join(dir, "l.jsonl"), "utf8"), { delta: 1e-6 });
    expect(bad.violations.map((v) => v.code)).toContain("ATTESTATION_MECHANISM");
  });

  it("cuts a torn last line on reopen and reports it", () => {
    const dir = mkdtempSync(join(tmpdir(), "tacit-ledger-"));
    const path = join(dir, "l.jsonl");
    writeFileSync(path, ledger);
    appendFileSync(path, '{"seq":999,"prevHash":"ab'); // a crash mid-write
    const key = privateKeyFromPem(readFileSync(cluster.coordinator.paths.signingKey, "utf8"));
    const w = LedgerWriter.open(path, key.privateKey);
    expect(w.repaired).toMatch(/torn or invalid/);
    expect(readFileSync(path, "utf8")).toBe(ledger);
    expect(() => verifyLedger(ledger + '{"seq":1')).toThrow(/truncated/);
    expect(() => verifyLedger("not json\n")).toThrow(/line 1: not JSON/);
  });

  it("renders a self-contained HTML report that shows the verdict and the ε plot in headless Chromium", async () => {
    const html = await renderReport(verifyLedger(ledger, { delta: 1e-6 }), JSON.parse(policyJson));
    expect(html).not.toMatch(/<script|(src|href)="https?:/); // nothing fetched at view time
    const dir = mkdtempSync(join(tmpdir(), "tacit-report-"));
    const file = join(dir, "report.html");
    writeFileSync(file, html);
    const chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
    expect(chromium, "install Debian's chromium: apt-get install -y chromium").toBeDefined();
    const { chromium: pw } = await import("playwright-core");
    const browser = await pw.launch({ executablePath: chromium!, args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"] });
    try {
      const page = await browser.newPage();
      await page.goto(`file://${file}`);
      expect(await page.textContent("#verdict")).toMatch(/VERIFIED/);
      const marks = await page.locator("#epsilon-plot svg path").count();
      expect(marks).toBeGreaterThan(2);
      const box = await page.locator("#epsilon-plot svg").boundingBox();
      expect(box!.width).toBeGreaterThan(300);
    } finally {
      await browser.close();
    }
  });
});
