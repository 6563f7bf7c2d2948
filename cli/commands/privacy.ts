/**
 * `tacit privacy epsilon|keygen|policy sign|policy show|policy install` (privacy reviewers, ML teams).
 * `privacy epsilon` prints exactly one JSON object on stdout with --json.
 */
import type { Command } from "commander";
import { readFileSync, mkdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { CliError, parseNumber } from "../errors.ts";
import { readJsonFile, stripBom } from "../json-file.ts";
import { generateEd25519, privateKeyFromPem, privateKeyToPem } from "../../shared/crypto/index.ts";
import { makeAccountant, policyBodySchema, signPolicy, verifyPolicy, type DpEvent } from "../../shared/dp/index.ts";
import { writeJsonAtomic } from "../../simulation/write-json-atomic.ts";
import { writeFileAtomic } from "../../shared/fs/write-file-atomic.ts";
import { principalClient } from "./coordinator.ts";

export interface PrivacyDeps {
  epsilonForRun?: (runId: string, o: { delta: number; stateDir?: string; coordinator?: string }) => Promise<object>;
}

export function epsilonFor(o: { noiseMultiplier: number; sampleRate: number; steps: number; delta: number; accountant: "rdp" | "pld"; sampling: "poisson" | "fixed"; population: number }): number {
  const g: DpEvent = { kind: "gaussian", noiseMultiplier: o.noiseMultiplier };
  let inner: DpEvent = g;
  if (o.sampleRate < 1) {
    inner =
      o.sampling === "poisson"
        ? { kind: "poissonSampled", samplingProbability: o.sampleRate, event: g }
        : { kind: "sampledWithoutReplacement", sourceDatasetSize: o.population, sampleSize: Math.round(o.sampleRate * o.population), event: g };
  }
  return makeAccountant(o.accountant).compose({ kind: "selfComposed", count: o.steps, event: inner }).getEpsilon(o.delta);
}

export function registerPrivacyCommands(program: Command, deps: PrivacyDeps = {}): void {
  const privacy = program.command("privacy").description("privacy budgets and the signed privacy policy (reviewers)");
  registerEpsilon(privacy, deps);
  registerKeygen(privacy);
  const policy = privacy.command("policy").description("the reviewer-signed privacy policy");
  registerPolicySign(policy);
  registerPolicyShow(policy);
}

function registerEpsilon(privacy: Command, deps: PrivacyDeps): void {
  privacy
    .command("epsilon")
    .description("ε of a Gaussian mechanism run for T steps with sampling rate q (or of a launched run with --run)")
    .option("--noise-multiplier <z>", "noise standard deviation / L2 sensitivity")
    .option("--sample-rate <q>", "sampling probability per step (1 = no sampling)")
    .option("--steps <t>", "number of steps (rounds)")
    .option("--delta <d>", "target δ", "1e-6")
    .option("--accountant <kind>", "rdp or pld (PLD: Poisson sampling or none, as dp_accounting 0.6)", "rdp")
    .option("--sampling <kind>", "poisson or fixed (fixed-size sampling without replacement)", "poisson")
    .option("--population <n>", "dataset size for --sampling fixed", "1000000")
    .option("--run <runId>", "compute device and population ε of a launched run")
    .option("--state-dir <dir>", "coordinator state dir (with --run)")
    .option("--coordinator <host:port>", "coordinator address (with --run)")
    .option("--json", "print one JSON object")
    .action((o: Record<string, string | boolean | undefined>) => printEpsilon(o, deps));
}

/** `privacy epsilon`: of a launched run (--run), or of T Gaussian steps at sampling rate q. */
async function printEpsilon(o: Record<string, string | boolean | undefined>, deps: PrivacyDeps): Promise<void> {
  const delta = parseNumber("--delta", String(o.delta), { min: 1e-300, max: 0.999999 });
  if (o.run) {
    if (!deps.epsilonForRun) throw new CliError("--run is not available in this build");
    const r = await deps.epsilonForRun(String(o.run), { delta, ...(o.stateDir ? { stateDir: String(o.stateDir) } : {}), ...(o.coordinator ? { coordinator: String(o.coordinator) } : {}) });
    process.stdout.write(JSON.stringify(r) + "\n");
    return;
  }
  for (const k of ["noiseMultiplier", "sampleRate", "steps"] as const) if (o[k] === undefined) throw new CliError(`--${k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())} is required (or --run RUN_ID)`);
  const accountant = String(o.accountant);
  if (accountant !== "rdp" && accountant !== "pld") throw new CliError(`--accountant must be rdp or pld, got '${accountant}'`);
  const sampling = String(o.sampling);
  if (sampling !== "poisson" && sampling !== "fixed") throw new CliError(`--sampling must be poisson or fixed, got '${sampling}'`);
  const args = {
    noiseMultiplier: parseNumber("--noise-multiplier", String(o.noiseMultiplier), { min: 0, max: 1e6 }),
    sampleRate: parseNumber("--sample-rate", String(o.sampleRate), { min: 0, max: 1 }),
    steps: parseNumber("--steps", String(o.steps), { min: 0, max: 1e9, integer: true }),
    delta,
    accountant: accountant as "rdp" | "pld",
    sampling: sampling as "poisson" | "fixed",
    population: parseNumber("--population", String(o.population), { min: 1, max: 1e12, integer: true }),
  };
  if (args.delta >= 1) throw new CliError("--delta must be below 1");
  let epsilon: number;
  try {
    epsilon = epsilonFor(args);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  const out = { epsilon: Number.isFinite(epsilon) ? epsilon : "Infinity", delta, noiseMultiplier: args.noiseMultiplier, sampleRate: args.sampleRate, steps: args.steps, accountant, sampling };
  process.stdout.write(o.json ? JSON.stringify(out) + "\n" : `ε = ${Number.isFinite(epsilon) ? epsilon.toPrecision(6) : "∞"} at δ = ${delta} (${accountant}, ${sampling} sampling q=${args.sampleRate}, z=${args.noiseMultiplier}, ${args.steps} steps)\n`);
}

function registerKeygen(privacy: Command): void {
  privacy
    .command("keygen")
    .description("create a reviewer ed25519 key pair (private key 0600)")
    .requiredOption("--out <dir>", "directory for reviewer.key and reviewer.pub")
    .action((o: { out: string }) => {
      mkdirSync(o.out, { recursive: true, mode: 0o700 });
      const key = join(o.out, "reviewer.key");
      if (existsSync(key)) throw new CliError(`${key} already exists; refusing to overwrite a key`);
      const kp = generateEd25519();
      writeFileAtomic(key, privateKeyToPem(kp.privateKey), 0o600);
      writeFileAtomic(join(o.out, "reviewer.pub"), Buffer.from(kp.publicRaw).toString("base64") + "\n", 0o644);
      process.stdout.write(`wrote ${key} (keep it secret) and ${join(o.out, "reviewer.pub")}\n`);
    });
}

function registerPolicySign(policy: Command): void {
  policy
    .command("sign")
    .description("sign a policy body (JSON) with a reviewer key")
    .requiredOption("--in <file>", "policy body JSON: {version:1, minNoiseMultiplier, maxDeviceEpsilon, delta, minSurvivors, allowedSignals}")
    .requiredOption("--key <file>", "reviewer private key (PEM)")
    .requiredOption("--out <file>", "signed policy file")
    .action((o: { in: string; key: string; out: string }) => {
      const body = readJsonFile(o.in, "policy body");
      const parsed = policyBodySchema.safeParse(body);
      if (!parsed.success) throw new CliError(`impossible policy values in ${o.in}: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
      let pem: string;
      try {
        pem = readFileSync(o.key, "utf8");
      } catch {
        throw new CliError(`cannot read the reviewer key ${o.key}`);
      }
      const kp = privateKeyFromPem(pem, o.key);
      writeJsonAtomic(o.out, signPolicy(parsed.data, kp.privateKey, kp.publicKey));
      process.stdout.write(`signed policy written to ${o.out}\n`);
    });
}

function registerPolicyShow(policy: Command): void {
  policy
    .command("install")
    .description("install a signed policy on the coordinator (SetPolicy, as a reviewer registered at `coordinator init --reviewer-key`)")
    .requiredOption("--in <file>", "signed policy file (from `policy sign`)")
    .requiredOption("--key <file>", "the reviewer's private key (reviewer.key): authenticates the call")
    .option("--key-id <id>", "the reviewer's key id in the coordinator's principals.json", "reviewer-1")
    .option("--coordinator <host:port>", "coordinator address (default: from --state-dir)")
    .option("--ca <file>", "coordinator CA certificate (default: the state dir's tls/ca.pem)")
    .option("--state-dir <dir>", "coordinator state directory (on the coordinator host)")
    .action(async (o: { in: string; key: string; keyId: string; coordinator?: string; ca?: string; stateDir?: string }) => {
      let json: string;
      try {
        json = stripBom(readFileSync(o.in, "utf8"));
      } catch {
        throw new CliError(`cannot read policy file ${o.in}`);
      }
      const client = principalClient(o, "reviewer");
      try {
        await client.unary("Ledger", "SetPolicy", { json });
      } finally {
        client.close();
      }
      process.stdout.write(`policy ${o.in} installed\n`);
    });
  policy
    .command("show")
    .description("verify and print a signed policy")
    .argument("<file>")
    .option("--json", "print JSON")
    .action((file: string, o: { json?: boolean }) => {
      let text: string;
      try {
        text = stripBom(readFileSync(file, "utf8"));
      } catch {
        throw new CliError(`cannot read policy file ${file}`);
      }
      const p = verifyPolicy(text);
      if (o.json) {
        process.stdout.write(JSON.stringify({ valid: true, ...p }) + "\n");
        return;
      }
      const b = p.body;
      process.stdout.write(
        `policy signed by reviewer ${p.reviewerPublicKey} (signature valid)\n` +
          `  minimum noise multiplier  ${b.minNoiseMultiplier}\n` +
          `  maximum device ε          ${b.maxDeviceEpsilon} at δ = ${b.delta}\n` +
          `  minimum survivors         ${b.minSurvivors}\n` +
          `  allowed signals           ${b.allowedSignals.join(", ")}\n` +
          (b.note ? `  note                      ${b.note}\n` : ""),
      );
    });
}
