/** `tacit verify --ledger FILE [--policy FILE] [--report OUT.html] [--json]` (privacy reviewers). */
import type { Command } from "commander";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { readLedgerText } from "../../coordinator/ledger/segment-writer.ts";
import { DirectoryStore } from "../../coordinator/store/directory-store.ts";
import { openDurableStore } from "../../coordinator/store/open-store.ts";
import { writeFileAtomic } from "../../shared/fs/write-file-atomic.ts";
import { CliError } from "../errors.ts";
import { verifyLedger, LedgerFormatError, type Findings } from "../../shared/ledger/index.ts";
import { renderReport } from "../../shared/ledger/report.ts";
import { verifyPolicy, PolicyError, type PolicyFile } from "../../shared/dp/index.ts";
import { jsonWithInfinity } from "../../simulation/write-json-atomic.ts";
import { modelReleases } from "../../shared/ledger/model-releases.ts";
import { readExportedModel, ExportedModelError } from "../../shared/model/index.ts";

export function registerVerifyCommand(program: Command): void {
  program
    .command("verify")
    .description("verify a privacy ledger and recompute every ε from it (reviewers)")
    .requiredOption("--ledger <file|dir|url>", "ledger.jsonl, or a coordinator's store (a directory, a state dir, or file:///…) whose ledger segments are read in order")
    .option("--policy <file>", "the signed policy you hold; must be the one in the ledger")
    .option("--coordinator-key <base64>", "the coordinator's public key you trust")
    .option("--delta <d>", "an extra δ to show ε at (budgets are always judged at the policy's δ)", "1e-6")
    .option("--head <seq:hash>", "the last entry known out of band (detects a ledger cut at an entry boundary)")
    .option("--initial-model <checkpoint>", "a public initial-model checkpoint you hold: some run must have started from exactly its weights")
    .option("--report <out.html>", "write a self-contained HTML report")
    .option("--model <dir>", "also check that this exported model is one the ledger released, and show the ε at its release")
    .option("--json", "print findings as JSON")
    .action(async (o: VerifyOptions) => {
      const r = await runVerify(o);
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      process.exitCode = r.exitCode;
    });
}

/** Options of `tacit verify`, as commander parses them. */
export interface VerifyOptions { ledger: string; policy?: string; coordinatorKey?: string; delta: string; head?: string; initialModel?: string; report?: string; json?: boolean; model?: string }

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
  if (o.initialModel) await checkInitialModelFile(o.initialModel, text, findings);
  if (o.report) {
    writeFileAtomic(o.report, await renderReport(findings, policy), 0o644);
  }
  const model = o.model === undefined ? undefined : modelAtRelease(o.model, text, findings);
  if (o.json) out.push(jsonWithInfinity(model ? { ...findings, model } : findings) + "\n");
  else {
    out.push(findings.ok ? `VERIFIED: ${findings.entries} entries; chain, signatures, attestations and budgets hold at the policy's δ = ${findings.delta}\n` : `NOT VERIFIED: ${findings.violations.length} violation(s) (budgets judged at δ = ${findings.delta})\n`);
    for (const v of findings.violations) out.push(`  ${v.code}${v.line ? ` (line ${v.line})` : ""}: ${v.message}\n`);
    for (const r of findings.runs) {
      const last = r.rounds.filter((x) => x.status === "completed").at(-1);
      const f = (x: number | undefined): string => (x === undefined ? "—" : Number.isFinite(x) ? x.toFixed(3) : "∞");
      out.push(`  run ${r.runId}: ${r.state}, worst device ε ${f(last?.worstDeviceEpsilon)} at δ = ${last?.delta ?? findings.delta} (needs no trust in the coordinator), population ε ${f(last?.populationEpsilon)} (rests on the coordinator sampling cohorts honestly)\n`);
      // Evaluation rounds are charged like training rounds; exact counts are reported as ε = ∞.
      for (const e of r.evaluations ?? []) {
        const noise = e.noiseMultiplier > 0 ? `noise multiplier ${e.noiseMultiplier}` : "exact counts, no DP noise";
        out.push(`    evaluation after round ${e.afterRound}: ${e.status}, ${e.survivors} device(s), ${noise}; worst device ε after it ${f(e.worstDeviceEpsilon)}\n`);
      }
    }
    if (findings.requestedDelta !== undefined) {
      const worst = Math.max(0, ...findings.devices.map((d) => d.epsilonAtRequestedDelta ?? 0));
      out.push(`  at --delta ${findings.requestedDelta} (for information only): worst device ε ${Number.isFinite(worst) ? worst.toFixed(3) : "∞"}\n`);
    }
    for (const o of findings.offences) out.push(`  device ${o.deviceId}: ${o.count} malformed message(s) named by the coordinator\n`);
    for (const e of findings.enrollments) out.push(`  enrollments by ${e.creator}: ${e.tokens} token(s) created, ${e.devices} device(s) enrolled\n`);
    if (model) out.push(describeModelRelease(model));
  }
  return findings.ok && (model === undefined || model.released);
}

/** Whether an exported model is one the ledger released, and the privacy cost at its release. */
interface ModelAtRelease {
  dir: string;
  /** Recomputed from the export's weights (readExportedModel refuses one that differs from tacit-model.json). */
  modelHash: string;
  released: boolean;
  releases: { runId: string; round: number; ledgerSeq: number; worstDeviceEpsilon: number; populationEpsilon: number; delta: number }[];
  /** A mixture export: its public half must be the initial model of the run that released the federated half. */
  mixture?: { federatedWeight: number; publicModelHash: string };
}

function modelAtRelease(dir: string, ledger: string, findings: Findings): ModelAtRelease {
  let exported: ReturnType<typeof readExportedModel>;
  try {
    exported = readExportedModel(dir);
  } catch (err) {
    if (err instanceof ExportedModelError) throw new CliError(`--model: ${err.message}`);
    throw err;
  }
  const hash = exported.modelHash;
  const mixture = exported.mixture && { federatedWeight: exported.mixture.federatedWeight, publicModelHash: exported.mixture.publicModel.modelHash };
  const all = modelReleases(ledger);
  // Public data costs nothing, but only the public model the run's launch entry pinned is public.
  const pinnedPublic = (runId: string): boolean => !mixture || all.some((r) => r.runId === runId && r.round === -1 && r.public === true && r.modelHash === mixture.publicModelHash);
  const releases = all
    .filter((r) => r.modelHash === hash && pinnedPublic(r.runId))
    .map((r) => {
      // ε as the reviewer's own recomputation has it after that round (0 before any round).
      const fig = findings.runs.find((x) => x.runId === r.runId)?.rounds.find((x) => x.round === r.round && x.status === "completed");
      return { runId: r.runId, round: r.round, ledgerSeq: r.seq, worstDeviceEpsilon: fig?.worstDeviceEpsilon ?? 0, populationEpsilon: fig?.populationEpsilon ?? 0, delta: fig?.delta ?? findings.delta };
    });
  return { dir, modelHash: hash, released: releases.length > 0, releases, ...(mixture ? { mixture } : {}) };
}

function describeModelRelease(m: ModelAtRelease): string {
  const f = (x: number): string => (Number.isFinite(x) ? x.toFixed(3) : "∞");
  const mixed = m.mixture ? `, mixed at weight ${m.mixture.federatedWeight} with the run's public initial model (hash ${m.mixture.publicModelHash}; public data, no privacy cost)` : "";
  if (!m.released) {
    const why = m.mixture ? `, or its public half (hash ${m.mixture.publicModelHash}) is not the initial model of the run that released it` : "";
    return `  model ${m.dir}: NOT RELEASED — its weights hash to ${m.modelHash}, which no completed round or run launch in this ledger records${why}\n`;
  }
  return m.releases
    .map((r) => r.round < 0
      ? `  model ${m.dir}: RELEASED as the initial model of run ${r.runId} (ledger entry ${r.ledgerSeq}, hash ${m.modelHash})${mixed}; ε at release 0 (no round had run)\n`
      : `  model ${m.dir}: RELEASED after round ${r.round} of run ${r.runId} (ledger entry ${r.ledgerSeq}, hash ${m.modelHash})${mixed}; ε at release: worst device ${f(r.worstDeviceEpsilon)} at δ = ${r.delta}, population ${f(r.populationEpsilon)}\n`)
    .join("");
}

/**
 * `--initial-model CKPT`: the reviewer's own copy of the public checkpoint a run claims to start
 * from. Its weights' SHA-256 (the hash the spec pins and the launch entry records) must be the
 * initial model of some run in the ledger; otherwise the checkpoint is not what any run used.
 */
async function checkInitialModelFile(dir: string, ledgerText: string, findings: { ok: boolean; violations: { code: string; message: string }[] }): Promise<void> {
  const { loadCheckpoint, weightsHash } = await import("../../shared/model/index.ts");
  let hash: string;
  try {
    hash = weightsHash((await loadCheckpoint(dir)).weights);
  } catch (err) {
    throw new CliError(`--initial-model ${dir}: ${(err as Error).message}`);
  }
  const started = ledgerText
    .split("\n")
    .filter((l) => l.includes('"run-launch"'))
    .map((l) => JSON.parse(l) as { type?: string; body?: { runId?: string; initialModelHash?: unknown } })
    .filter((e) => e.type === "run-launch" && e.body?.initialModelHash === hash);
  if (started.length === 0) {
    findings.violations.push({ code: "INITIAL_MODEL_FILE", message: `no run in the ledger started from ${dir} (weights SHA-256 ${hash})` });
    findings.ok = false;
  }
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
