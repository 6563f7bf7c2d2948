/** `tacit run launch|status|watch|cancel` (ML teams). */
import type { Command } from "commander";
import { readFileSync } from "node:fs";
import { CliError } from "../errors.ts";
import { readJsonFile } from "../json-file.ts";
import { principalClient } from "./coordinator.ts";
import { signBytes, privateKeyFromPem } from "../../shared/crypto/index.ts";
import { assertDpRecipe, defaultTrainingFields, parseRunSpec, projectRun, DEFAULT_DEADLINES, type RunSpec } from "../../shared/run/index.ts";
import { DEFAULT_MODEL_SPEC } from "../../shared/model/index.ts";
import type { RunStatus } from "../../client/transport/coordinator-client.ts";
import { coordinatorPaths, DEFAULT_COORDINATOR_STATE_DIR } from "../../coordinator/state/state-dir.ts";
import { join } from "node:path";
import { evaluationLine, parseEvaluations } from "./evaluation-lines.ts";

interface Conn {
  stateDir?: string;
  coordinator?: string;
  key?: string;
  keyId?: string;
  json?: boolean;
}

const withConn = (c: Command): Command =>
  c
    .option("--state-dir <dir>", "coordinator state dir (address and key defaults)", DEFAULT_COORDINATOR_STATE_DIR)
    .option("--coordinator <host:port>", "coordinator address")
    .option("--key <file>", "ML-team private key (PEM)")
    .option("--key-id <id>", "key id registered with the coordinator", "ml-team-1")
    .option("--ca <file>", "coordinator CA certificate (default: the state dir's tls/ca.pem)")
    .option("--json", "print JSON");

/**
 * The spec `run launch` fills missing fields from. A run with noise (the default: z = 1) gets the
 * DP recipe's training fields (DP-FedAvgM); FedAdam, the non-DP default, is refused under noise.
 */
export function defaultRunSpec(o: { noiseMultiplier?: number; clip?: number } = {}): RunSpec {
  const noiseMultiplier = o.noiseMultiplier ?? 1;
  const clip = o.clip ?? 1;
  return {
    name: "run",
    model: DEFAULT_MODEL_SPEC,
    rounds: 20,
    cohortSize: 50,
    minSurvivors: 25,
    populationSize: 1000,
    ...defaultTrainingFields(noiseMultiplier > 0 ? { clip } : undefined),
    clip,
    noiseMultiplier,
    delta: 1e-6,
    mechanism: "ddgauss",
    bits: 32,
    dropoutTolerance: 0.2,
    corruptTolerance: 0.1,
    signals: ["shortcut", "click", "app-switch", "typing-burst"],
    deadlines: DEFAULT_DEADLINES,
    seed: 1,
  };
}

/**
 * The spec `run launch --spec FILE` would launch, and the fields that took defaults. A file that
 * cannot be read, is not a non-empty JSON object, or fails the schema or the DP recipe is
 * refused with one line here, before any key is read or any connection made.
 */
export function readRunSpecFile(path: string): { spec: RunSpec; defaulted: string[] } {
  const partial = readJsonFile(path, "run spec");
  // Only a JSON object is a spec: `null`, a number or an array would silently become the default run.
  if (typeof partial !== "object" || partial === null || Array.isArray(partial)) {
    throw new CliError(`run spec ${path} must be a JSON object with the fields to set (see --print-default-spec), got ${partial === null ? "null" : Array.isArray(partial) ? "an array" : typeof partial}`);
  }
  if (Object.keys(partial).length === 0) throw new CliError(`run spec ${path} is empty: name at least the fields you mean to set (see --print-default-spec)`);
  const p = partial as { noiseMultiplier?: unknown; clip?: unknown };
  const base = defaultRunSpec({ ...(typeof p.noiseMultiplier === "number" ? { noiseMultiplier: p.noiseMultiplier } : {}), ...(typeof p.clip === "number" && p.clip > 0 ? { clip: p.clip } : {}) });
  const spec = parseRunSpec({ ...base, ...partial });
  // The same refusal as `tacit simulate` (shared/run/run-spec.ts).
  assertDpRecipe(spec);
  // Own keys only: `in` would also see Object.prototype's.
  return { spec, defaulted: Object.keys(base).filter((k) => !Object.hasOwn(partial, k)) };
}

/** The ML-team key that signs the spec; a missing one is a one-line error, as in principalClient. */
function readKeyFile(keyPath: string): string {
  try {
    return readFileSync(keyPath, "utf8");
  } catch {
    throw new CliError(`cannot read the ml-team key ${keyPath}: pass --key FILE --key-id ID`);
  }
}

function printStatus(st: RunStatus, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(JSON.stringify({ ...st, spec: JSON.parse(st.specJson || "{}"), specJson: undefined, evaluations: parseEvaluations(st.evaluationsJson), evaluationsJson: undefined, rounds: st.rounds.map((r) => ({ ...r, phases: JSON.parse(r.phaseCountsJson || "{}"), phaseCountsJson: undefined })) }) + "\n");
    return;
  }
  process.stdout.write(`${st.runId}  ${st.state}  rounds ${st.roundsDone}/${st.roundsTotal}  phase ${st.currentPhase}  model ${st.modelHash.slice(0, 12)}${st.error ? `  error: ${st.error}` : ""}\n`);
  for (const r of st.rounds) {
    const p = JSON.parse(r.phaseCountsJson || "{}") as { secagg?: { mode: string; degree: number; threshold: number; guarantee: string } };
    process.stdout.write(`  round ${r.round} ${r.status}: ${r.survivors}/${r.cohort} survived  ${r.detail}\n`);
    if (p.secagg?.mode) process.stdout.write(`    secure aggregation: ${p.secagg.guarantee}\n`);
  }
  for (const e of parseEvaluations(st.evaluationsJson)) process.stdout.write(evaluationLine(e) + "\n");
}

export function registerRunCommands(program: Command): void {
  const run = program.command("run").description("launch and follow training runs (ML team)");
  withConn(run.command("launch").description("launch a run from a JSON spec (missing fields take defaults)"))
    .option("--spec <file>", "run spec JSON")
    .option("--print-default-spec", "print the default spec and exit")
    .action(async (o: Conn & { spec?: string; printDefaultSpec?: boolean }) => {
      if (o.printDefaultSpec) {
        process.stdout.write(JSON.stringify(defaultRunSpec(), null, 2) + "\n");
        return;
      }
      if (!o.spec) throw new CliError("--spec FILE is required (see --print-default-spec)");
      const { spec, defaulted } = readRunSpecFile(o.spec);
      if (defaulted.length > 0) process.stderr.write(`run spec: defaults used for ${defaulted.join(", ")}\n`);
      const specJson = JSON.stringify(spec);
      const keyPath = o.key ?? join(coordinatorPaths(o.stateDir ?? DEFAULT_COORDINATOR_STATE_DIR).keysOut, `${o.keyId ?? "ml-team-1"}.key`);
      const key = privateKeyFromPem(readKeyFile(keyPath), keyPath);
      const client = principalClient(o, "ml-team");
      try {
        const st = await client.unary<object, RunStatus>("RunControl", "LaunchRun", { specJson, requestSignature: Buffer.from(signBytes(key.privateKey, specJson)) });
        printStatus(st, o.json);
      } finally {
        client.close();
      }
    });
  withConn(run.command("status").description("show a run (or all runs)").argument("[runId]"))
    .action(async (runId: string | undefined, o: Conn) => {
      const client = principalClient(o, "ml-team");
      try {
        if (runId) printStatus(await client.unary<object, RunStatus>("RunControl", "GetRun", { runId }), o.json);
        else for (const st of (await client.unary<object, { runs: RunStatus[] }>("RunControl", "ListRuns", {})).runs) printStatus(st, o.json);
      } finally {
        client.close();
      }
    });
  withConn(run.command("watch").description("follow a run until it ends").argument("<runId>"))
    .action(async (runId: string, o: Conn) => {
      const client = principalClient(o, "ml-team");
      await new Promise<void>((resolve, reject) => {
        const s = client.watchRun(runId);
        s.on("data", (st: RunStatus) => printStatus(st, o.json));
        s.on("error", (e: Error & { details?: string }) => reject(new CliError(e.details ?? e.message)));
        s.on("end", () => resolve());
      }).finally(() => client.close());
    });
  withConn(run.command("cancel").description("cancel a run").argument("<runId>"))
    .action(async (runId: string, o: Conn) => {
      const client = principalClient(o, "ml-team");
      try {
        printStatus(await client.unary<object, RunStatus>("RunControl", "CancelRun", { runId }), o.json);
      } finally {
        client.close();
      }
    });
}

/** `tacit privacy epsilon --run RUN_ID`: device and population ε of a launched run. */
export async function epsilonForRun(runId: string, o: { delta: number; stateDir?: string; coordinator?: string }): Promise<object> {
  const client = principalClient({ ...o }, "ml-team");
  try {
    const st = await client.unary<object, RunStatus>("RunControl", "GetRun", { runId });
    const spec = parseRunSpec(st.specJson);
    const done = st.rounds.filter((r) => r.status === "completed").length;
    const p = projectRun({ ...spec, rounds: Math.max(done, 0) }, o.delta);
    const full = projectRun(spec, o.delta);
    const inf = (x: number): number | string => (Number.isFinite(x) ? x : "Infinity");
    return {
      runId,
      roundsCompleted: done,
      delta: o.delta,
      epsilon: inf(p.deviceEpsilon),
      deviceEpsilon: inf(p.deviceEpsilon),
      populationEpsilon: inf(p.populationEpsilon),
      populationEpsilonRestsOn: `uniform sampling of ${spec.cohortSize} of ${spec.populationSize} devices per round, as the coordinator claims`,
      projectedAtEnd: { rounds: spec.rounds, deviceEpsilon: inf(full.deviceEpsilon), populationEpsilon: inf(full.populationEpsilon) },
    };
  } finally {
    client.close();
  }
}
