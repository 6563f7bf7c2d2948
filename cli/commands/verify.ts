/** `tacit verify --ledger FILE [--policy FILE] [--report OUT.html] [--json]` (privacy reviewers). */
import type { Command } from "commander";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { readLedgerText } from "../../coordinator/ledger/segment-writer.ts";
import { DirectoryStore } from "../../coordinator/store/directory-store.ts";
import { openDurableStore } from "../../coordinator/store/open-store.ts";
import { writeFileAtomic } from "../../shared/fs/write-file-atomic.ts";
import { CliError } from "../errors.ts";
import { verifyLedger, LedgerFormatError } from "../../shared/ledger/index.ts";
import { renderReport } from "../../shared/ledger/report.ts";
import { verifyPolicy, PolicyError, type PolicyFile } from "../../shared/dp/index.ts";
import { jsonWithInfinity } from "../../simulation/write-json-atomic.ts";

export function registerVerifyCommand(program: Command): void {
  program
    .command("verify")
    .description("verify a privacy ledger and recompute every ε from it (reviewers)")
    .requiredOption("--ledger <file|dir|url>", "ledger.jsonl, or a coordinator's store (a directory, a state dir, or file:///…) whose ledger segments are read in order")
    .option("--policy <file>", "the signed policy you hold; must be the one in the ledger")
    .option("--coordinator-key <base64>", "the coordinator's public key you trust")
    .option("--delta <d>", "an extra δ to show ε at (budgets are always judged at the policy's δ)", "1e-6")
    .option("--head <seq:hash>", "the last entry known out of band (detects a ledger cut at an entry boundary)")
    .option("--report <out.html>", "write a self-contained HTML report")
    .option("--json", "print findings as JSON")
    .action(async (o: VerifyOptions) => {
      const r = await runVerify(o);
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      process.exitCode = r.exitCode;
    });
}

/** Options of `tacit verify`, as commander parses them. */
export interface VerifyOptions { ledger: string; policy?: string; coordinatorKey?: string; delta: string; head?: string; report?: string; json?: boolean }

/**
 * The whole `tacit verify` command without a process: exit 0 when everything holds, 1 naming
 * each violation, 2 for bad input (message on stderr, never a stack trace).
 */
export async function runVerify(o: VerifyOptions): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  try {
    const ok = await verifyInto(o, out);
    return { exitCode: ok ? 0 : 1, stdout: out.join(""), stderr: "" };
  } catch (err) {
    if (err instanceof CliError) return { exitCode: err.exitCode, stdout: out.join(""), stderr: `tacit verify: ${err.message}\n` };
    throw err;
  }
}

async function verifyInto(o: VerifyOptions, out: string[]): Promise<boolean> {
  let expectedHead: { seq: number; hash: string } | undefined;
  if (o.head) {
    const m = /^(\d+):([0-9a-f]{64})$/.exec(o.head);
    if (!m) throw new CliError("--head must be SEQ:HASH (the entry's seq and its 64-hex-digit hash)");
    expectedHead = { seq: Number(m[1]), hash: m[2]! };
  }
  const text = await readLedgerInput(o.ledger);
  let policy: PolicyFile | undefined;
  if (o.policy) {
    try {
      policy = verifyPolicy(readFileSync(o.policy, "utf8"));
    } catch (err) {
      throw new CliError(`policy ${o.policy}: ${err instanceof PolicyError ? err.message : "cannot read the file"}`);
    }
  }
  const delta = Number(o.delta);
  if (!(delta > 0 && delta < 1)) throw new CliError(`--delta must be in (0, 1), got ${o.delta}`);
  let findings;
  try {
    findings = verifyLedger(text, { ...(policy ? { policy } : {}), ...(expectedHead ? { expectedHead } : {}), ...(o.coordinatorKey ? { trustedCoordinatorKey: o.coordinatorKey } : {}), delta });
  } catch (err) {
    if (err instanceof LedgerFormatError) throw new CliError(`ledger ${o.ledger} ${err.message}`);
    throw err;
  }
  if (o.report) {
    writeFileAtomic(o.report, await renderReport(findings, policy), 0o644);
  }
  if (o.json) out.push(jsonWithInfinity(findings) + "\n");
  else {
    out.push(findings.ok ? `VERIFIED: ${findings.entries} entries; chain, signatures, attestations and budgets hold at the policy's δ = ${findings.delta}\n` : `NOT VERIFIED: ${findings.violations.length} violation(s) (budgets judged at δ = ${findings.delta})\n`);
    for (const v of findings.violations) out.push(`  ${v.code}${v.line ? ` (line ${v.line})` : ""}: ${v.message}\n`);
    for (const r of findings.runs) {
      const last = r.rounds.filter((x) => x.status === "completed").at(-1);
      const f = (x: number | undefined): string => (x === undefined ? "—" : Number.isFinite(x) ? x.toFixed(3) : "∞");
      out.push(`  run ${r.runId}: ${r.state}, worst device ε ${f(last?.worstDeviceEpsilon)} at δ = ${last?.delta ?? findings.delta} (needs no trust in the coordinator), population ε ${f(last?.populationEpsilon)} (rests on the coordinator sampling cohorts honestly)\n`);
    }
    if (findings.requestedDelta !== undefined) {
      const worst = Math.max(0, ...findings.devices.map((d) => d.epsilonAtRequestedDelta ?? 0));
      out.push(`  at --delta ${findings.requestedDelta} (for information only): worst device ε ${Number.isFinite(worst) ? worst.toFixed(3) : "∞"}\n`);
    }
    for (const o of findings.offences) out.push(`  device ${o.deviceId}: ${o.count} malformed message(s) named by the coordinator\n`);
    for (const e of findings.enrollments) out.push(`  enrollments by ${e.creator}: ${e.tokens} token(s) created, ${e.devices} device(s) enrolled\n`);
  }
  return findings.ok;
}

/**
 * The ledger as one JSONL text: a file as it is, or a store's segments concatenated in seq
 * order (the same text: segments hold whole lines of the one hash chain).
 */
async function readLedgerInput(where: string): Promise<string> {
  try {
    if (/^[a-z0-9]+:\/\//.test(where)) return await readLedgerText(openDurableStore(where));
    if (statSync(where).isDirectory()) {
      const root = existsSync(join(where, "ledger")) ? where : join(where, "store");
      if (!existsSync(join(root, "ledger"))) throw new Error("no ledger segments");
      return await readLedgerText(new DirectoryStore(root));
    }
    return readFileSync(where, "utf8");
  } catch {
    throw new CliError(`cannot read ledger ${where}`);
  }
}
