import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { generateEd25519, rawPublicKey } from "../shared/crypto/ed25519.ts";
import { LedgerWriter } from "../shared/ledger/index.ts";
import { registerVerifyCommand, runVerify } from "../cli/commands/verify.ts";

function genesisLedger(): { dir: string; path: string } {
  const key = generateEd25519();
  const dir = mkdtempSync(join(tmpdir(), "tacit-verify-cli-"));
  const path = join(dir, "ledger.jsonl");
  LedgerWriter.open(path, key.privateKey).append("genesis", { coordinatorPublicKey: Buffer.from(rawPublicKey(key.publicKey)).toString("base64") });
  return { dir, path };
}

describe("tacit verify", () => {
  it("exits 0 on an intact ledger and writes the HTML report", async () => {
    const { dir, path } = genesisLedger();
    const report = join(dir, "r.html");
    const r = await runVerify({ ledger: path, delta: "1e-6", report });
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^VERIFIED: 1 entries/);
    expect(r.exitCode).toBe(0);
    expect(readFileSync(report, "utf8")).toMatch(/<html/i);
  });

  it("exits 1 naming the violation when an entry was altered", async () => {
    const { path } = genesisLedger();
    writeFileSync(path, readFileSync(path, "utf8").replace(/"time":(\d)/, '"time":9$1'));
    const r = await runVerify({ ledger: path, delta: "1e-6" });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/NOT VERIFIED[\s\S]*\(line 1\)/);
  });

  it("exits 2 with a specific message, no stack trace, for a missing or non-JSON ledger", async () => {
    const { dir, path } = genesisLedger();
    const missing = await runVerify({ ledger: join(dir, "nope.jsonl"), delta: "1e-6" });
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/cannot read ledger .*nope\.jsonl/);
    writeFileSync(path, readFileSync(path, "utf8") + "{not json\n");
    const bad = await runVerify({ ledger: path, delta: "1e-6", report: join(dir, "x.html") });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/line 2/);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(join(dir, "x.html"))).toBe(false);
  });

  it("is wired into a commander program", async () => {
    const { path } = genesisLedger();
    const program = new Command().exitOverride();
    registerVerifyCommand(program);
    const saved = process.exitCode;
    let written = "";
    const orig = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => ((written += s), true)) as typeof process.stdout.write;
    try {
      await program.parseAsync(["node", "tacit", "verify", "--ledger", path, "--json"]);
    } finally {
      process.stdout.write = orig;
    }
    expect(process.exitCode).toBe(0);
    process.exitCode = saved;
    expect(JSON.parse(written)).toMatchObject({ ok: true, entries: 1 });
  });
});
