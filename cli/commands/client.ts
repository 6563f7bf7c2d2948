/**
 * `tacit client …` — the person on the laptop: enroll, consent, start the daemon, pause,
 * resume, review, export, delete, withdraw, status (with --verify), install-service.
 * Every command takes --state-dir (default: the XDG data dir).
 */
import type { Command } from "commander";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { homedir } from "node:os";
import { createInterface } from "node:readline/promises";
import pino from "pino";
import * as grpc from "@grpc/grpc-js";
import { ShutdownSignals } from "../shutdown.ts";
import { CliError, parseNumber } from "../errors.ts";
import { readEnrollmentToken, type TokenSource } from "../enroll-token.ts";
import { publicKeyFromRaw } from "../../shared/crypto/index.ts";
import { deviceEpsilon } from "../../shared/dp/index.ts";
import { writeFileAtomic } from "../../shared/fs/write-file-atomic.ts";
import { clientPaths, defaultClientStateDir, ensureClientStateDir } from "../../client/state/client-dirs.ts";
import { deleteIdentity, ensureIdentity, identityPaths, loadEnrollment, loadIdentity, saveEnrollment } from "../../client/identity/device-identity.ts";
import { DEFAULT_LIMITS, SIGNAL_KINDS, loadConsent, saveConsent, setPaused, type Consent, type SignalKind } from "../../client/consent/consent.ts";
import { CoordinatorClient, RpcCallError } from "../../client/transport/coordinator-client.ts";
import { BudgetRecord } from "../../client/participant/budget-record.ts";
import { ClientDaemon, requestDaemonFlush, runningDaemonPid, type DaemonStatus } from "../../client/daemon/client-daemon.ts";
import { verifyLedgerCopy } from "../../client/daemon/ledger-copy.ts";
import { systemdUserUnit } from "../../client/daemon/systemd-unit.ts";
import { loadDeviceModel } from "../../client/suggest/device-model.ts";
import { suggestNext } from "../../client/suggest/suggest.ts";
import { formatPredictions } from "../format-predictions.ts";
import { ActionStore, summarize } from "../../client/store/action-store.ts";
import { dayPattern, utcDay } from "../../client/store/action-record.ts";
import { CaptureService } from "../../client/capture/capture-service.ts";
import { normalizeAppName } from "../../client/capture/tokenizer.ts";

interface StateOpt {
  stateDir: string;
}

function stateDirOption(cmd: Command): Command {
  return cmd.option("--state-dir <dir>", "client state directory", defaultClientStateDir());
}

function print(json: boolean | undefined, value: unknown, human: string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + "\n" : human.endsWith("\n") ? human : human + "\n");
}

function deviceClient(stateDir: string): { client: CoordinatorClient; deviceId: string; coordinatorKey: ReturnType<typeof publicKeyFromRaw> } {
  const identity = loadIdentity(stateDir);
  const e = loadEnrollment(stateDir);
  const client = new CoordinatorClient({ address: e.coordinator, caFile: e.caFile, credentials: { keyId: e.deviceId, privateKey: identity.privateKey } });
  return { client, deviceId: e.deviceId, coordinatorKey: publicKeyFromRaw(new Uint8Array(Buffer.from(e.coordinatorPublicKey, "base64"))) };
}

/** Turns transport failures into what the person should do about them. */
function explainRpc(err: unknown, address: string, caFile?: string): never {
  if (err instanceof RpcCallError) {
    // A CA mismatch fails the TLS handshake, which gRPC reports as unavailable or, while it
    // keeps retrying the connection, as a deadline: both mean "no trusted connection".
    if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED) {
      throw new CliError(
        `cannot reach the coordinator at ${address} over TLS (${err.message.replace(/^\S+: /, "").split(",")[0]})${caFile ? `: check the address and that ${caFile} is the coordinator's CA certificate (its tls/ca.pem)` : ""}`,
      );
    }
    throw new CliError(`the coordinator refused: ${err.message.replace(/^\S+: /, "")}`);
  }
  throw err;
}

async function stopDaemon(stateDir: string): Promise<number | undefined> {
  const pid = runningDaemonPid(stateDir);
  if (!pid) return undefined;
  process.kill(pid, "SIGTERM");
  for (let i = 0; i < 100 && runningDaemonPid(stateDir); i++) await new Promise((r) => setTimeout(r, 100));
  if (runningDaemonPid(stateDir)) process.kill(pid, "SIGKILL");
  return pid;
}

function parseList(raw: string): string[] {
  return raw
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Application names in the form capture sees them ("Code - OSS" → "code-oss"). */
function parseApps(raw: string): string[] {
  const apps = parseList(raw).map((a) => {
    const n = normalizeAppName(a);
    if (!n) throw new CliError(`--apps: '${a}' is not an application name (as \`xprop WM_CLASS\` shows it)`);
    return n;
  });
  return [...new Set(apps)];
}

function parseKinds(raw: string): SignalKind[] {
  const kinds = parseList(raw);
  for (const k of kinds) if (!(SIGNAL_KINDS as readonly string[]).includes(k)) throw new CliError(`--kinds: unknown signal kind '${k}' (one of ${SIGNAL_KINDS.join(", ")})`);
  if (kinds.length === 0) throw new CliError("--kinds: name at least one signal kind");
  return [...new Set(kinds)] as SignalKind[];
}

/**
 * `--day` of review, export and delete: a real UTC calendar day. The store checks only the
 * YYYY-MM-DD shape, so "2026-13-45" read as an empty day ("0 actions stored on 2026-13-45")
 * instead of a typo. A day must round-trip through Date.UTC, which rolls 13-45 or 02-30 over.
 */
export function parseDay(raw: string): string {
  const [y, m, d] = raw.split("-").map(Number);
  if (!dayPattern.test(raw) || utcDay(Date.UTC(y!, m! - 1, d!)) !== raw) throw new CliError(`--day must be a calendar day as YYYY-MM-DD (UTC), e.g. 2026-11-25; got '${raw}'`);
  return raw;
}

interface ConsentFlags extends StateOpt {
  apps?: string;
  kinds?: string;
  maxEpsilon?: string;
  minNoise?: string;
  minSurvivors?: string;
  delta?: string;
  yes?: boolean;
}

/** Asks on a TTY for what the flags left open; scripts must give every flag. */
async function collectConsent(o: ConsentFlags, previous: Consent | undefined): Promise<Omit<Consent, "givenAt" | "updatedAt" | "paused" | "version">> {
  const interactive = process.stdin.isTTY && process.stdout.isTTY;
  const missing = (["apps", "kinds", "maxEpsilon", "minNoise", "minSurvivors"] as const).filter((k) => o[k] === undefined);
  if (missing.length > 0 && !interactive && !previous) {
    throw new CliError(`no terminal to ask on: pass ${missing.map((k) => "--" + k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())).join(", ")} (nothing is captured until consent is given)`);
  }
  const prev = previous ?? { apps: [], kinds: ["shortcut", "click", "app-switch", "typing-burst"] as SignalKind[], limits: DEFAULT_LIMITS };
  const rl = interactive && missing.length > 0 ? createInterface({ input: process.stdin, output: process.stdout, terminal: false }) : undefined;
  // An iterator keeps lines typed ahead of a question (readline's question() would drop them).
  const lines = rl?.[Symbol.asyncIterator]();
  const ask = async (q: string, def: string): Promise<string> => {
    if (!lines) return def;
    process.stdout.write(`${q} [${def}]: `);
    const next = await lines.next();
    if (next.done) throw new CliError("consent not given (input closed); nothing changed", 1);
    const a = String(next.value).trim();
    return a === "" ? def : a;
  };
  try {
    if (rl) {
      process.stdout.write(
        "Tacit captures only abstract actions (shortcuts, clicks, app switches, the length of typing bursts) in the apps you list.\n" +
          "Never the characters you type, never window titles or screenshots. You can pause, review and delete at any time.\n",
      );
    }
    const apps = parseApps(o.apps ?? (await ask("Applications that may be observed (comma-separated, as `xprop WM_CLASS` names them)", prev.apps.join(","))));
    const kinds = parseKinds(o.kinds ?? (await ask(`Signal kinds (${SIGNAL_KINDS.join(",")})`, prev.kinds.join(","))));
    const maxDeviceEpsilon = parseNumber("--max-epsilon", o.maxEpsilon ?? (await ask("Largest device ε you accept over all rounds", String(prev.limits.maxDeviceEpsilon))), { min: 0.01, max: 1000 });
    const minNoiseMultiplier = parseNumber("--min-noise", o.minNoise ?? (await ask("Smallest noise multiplier you accept per round", String(prev.limits.minNoiseMultiplier))), { min: 0, max: 100 });
    const minSurvivors = parseNumber("--min-survivors", o.minSurvivors ?? (await ask("Fewest devices whose noise must protect you in a round", String(prev.limits.minSurvivors))), { min: 2, max: 1_000_000, integer: true });
    const delta = parseNumber("--delta", o.delta ?? String(prev.limits.delta), { min: 1e-12, max: 1e-4 });
    if (rl && !o.yes) {
      const ok = (await ask(`Capture ${kinds.join(", ")} in ${apps.length ? apps.join(", ") : "(no apps yet)"}; join rounds only while device ε ≤ ${maxDeviceEpsilon}. Agree? (yes/no)`, "no")).toLowerCase();
      if (ok !== "yes" && ok !== "y") throw new CliError("consent not given; nothing changed", 1);
    }
    return { apps, kinds, limits: { maxDeviceEpsilon, minNoiseMultiplier, minSurvivors, delta } };
  } finally {
    rl?.close();
  }
}

function readDaemonStatus(stateDir: string): DaemonStatus | undefined {
  const pid = runningDaemonPid(stateDir);
  const p = clientPaths(stateDir).daemonStatus;
  if (!pid || !existsSync(p)) return undefined;
  try {
    return JSON.parse(readFileSync(p, "utf8")) as DaemonStatus;
  } catch {
    return undefined;
  }
}

type EnrollOpts = StateOpt & TokenSource & { coordinator: string; ca: string; label: string; json?: boolean };

/** `tacit client enroll`: a fresh identity registered with a single-use token (read off argv if possible). */
async function enrollLaptop(o: EnrollOpts): Promise<void> {
  const token = await readEnrollmentToken(o, { stdin: process.stdin, warn: (line) => process.stderr.write(line + "\n") });
  const paths = ensureClientStateDir(o.stateDir);
  if (existsSync(identityPaths(o.stateDir).enrollment)) {
    const e = loadEnrollment(o.stateDir);
    throw new CliError(`this laptop is already enrolled as ${e.deviceId} with ${e.coordinator}: run \`tacit client withdraw\` first to enroll again`);
  }
  let caPem: Buffer;
  try {
    caPem = readFileSync(o.ca);
  } catch {
    throw new CliError(`cannot read the CA certificate ${o.ca}`);
  }
  if (!caPem.toString("utf8").includes("-----BEGIN CERTIFICATE-----")) throw new CliError(`${o.ca} is not a PEM certificate (expected the coordinator's tls/ca.pem)`);
  const identity = ensureIdentity(o.stateDir);
  const c = new CoordinatorClient({ address: o.coordinator, caFile: resolve(o.ca) });
  let res: { deviceId: string; coordinatorPublicKey: Buffer };
  try {
    res = await c.unary("Enrollment", "Enroll", { token, identityPublicKey: Buffer.from(identity.publicRaw), deviceLabel: o.label }, 10_000);
  } catch (err) {
    explainRpc(err, o.coordinator, o.ca);
  } finally {
    c.close();
  }
  saveEnrollment(o.stateDir, { deviceId: res.deviceId, coordinator: o.coordinator, caFile: o.ca, coordinatorPublicKey: Buffer.from(res.coordinatorPublicKey).toString("base64"), enrolledAt: Date.now() }, caPem);
  print(o.json, { deviceId: res.deviceId, stateDir: paths.root }, `enrolled as ${res.deviceId}; state in ${paths.root}\nnext: \`tacit client consent\` (nothing is captured before it)`);
}

/** `tacit client enroll`: creates the identity and exchanges the single-use token for a device id; refuses to enroll twice. */
function registerEnrollCommand(client: Command): void {
  stateDirOption(client.command("enroll").description("create this laptop's identity and register it with a single-use token"))
    .requiredOption("--coordinator <host:port>", "coordinator address")
    .option("--token-file <file>", "file holding the single-use enrollment token (from `tacit coordinator token create`)")
    .option("--token <token>", "the token itself, or - to read it from stdin (a token in argv is visible to other local users)")
    .requiredOption("--ca <file>", "the coordinator's CA certificate (PEM)")
    .option("--label <text>", "a name for this laptop shown to the operator", "")
    .option("--json", "print JSON")
    .action(enrollLaptop);
}

/** `tacit client consent`: nothing is captured before it. */
function registerConsentCommand(client: Command): void {
  stateDirOption(client.command("consent").description("choose the apps, signal kinds and privacy limits (prompts on a terminal)"))
    .option("--apps <list>", "comma-separated application names that may be observed")
    .option("--kinds <list>", `signal kinds: ${SIGNAL_KINDS.join(",")}`)
    .option("--max-epsilon <eps>", "largest device ε accepted over all rounds")
    .option("--min-noise <z>", "smallest noise multiplier accepted per round")
    .option("--min-survivors <n>", "fewest devices whose noise must protect you in a round")
    .option("--delta <d>", "δ at which device ε is computed", String(DEFAULT_LIMITS.delta))
    .option("--yes", "do not ask for confirmation")
    .option("--json", "print the consent record")
    .action(async (o: ConsentFlags & { json?: boolean }) => {
      const paths = ensureClientStateDir(o.stateDir);
      const previous = loadConsent(paths.consent);
      const chosen = await collectConsent(o, previous);
      const now = Date.now();
      const c: Consent = { version: 1, ...chosen, paused: previous?.paused ?? false, givenAt: previous?.givenAt ?? now, updatedAt: now };
      saveConsent(paths.consent, c);
      print(
        o.json,
        c,
        `consent saved: ${c.kinds.join(", ")} in ${c.apps.length ? c.apps.join(", ") : "no apps"}; rounds only while device ε ≤ ${c.limits.maxDeviceEpsilon} (δ=${c.limits.delta.toExponential()}), noise multiplier ≥ ${c.limits.minNoiseMultiplier}, ≥ ${c.limits.minSurvivors} survivors`,
      );
    });
}

/** `tacit client pause` and `resume`: the consent is kept, only its paused flag changes (the daemon reads it every second). */
function registerPauseResumeCommands(client: Command): void {
  stateDirOption(client.command("pause").description("stop capturing and taking part in rounds (choices are kept)")).action((o: StateOpt) => {
    setPaused(clientPaths(o.stateDir).consent, true);
    process.stdout.write(`paused${runningDaemonPid(o.stateDir) ? " (the running daemon stops capturing within a second)" : ""}\n`);
  });
  stateDirOption(client.command("resume").description("resume capturing and taking part in rounds")).action((o: StateOpt) => {
    setPaused(clientPaths(o.stateDir).consent, false);
    process.stdout.write("resumed\n");
  });
}

/** `tacit client withdraw`: stops the daemon, deregisters (unless --local-only) and deletes every local file and key. */
function registerWithdrawCommand(client: Command): void {
  stateDirOption(client.command("withdraw").description("stop, deregister, and delete all local data and keys"))
    .option("--local-only", "do not contact the coordinator (e.g. after it is gone or the key is damaged)")
    .action(async (o: StateOpt & { localOnly?: boolean }) => {
      const stopped = await stopDaemon(o.stateDir);
      let note = "";
      if (!o.localOnly && existsSync(identityPaths(o.stateDir).enrollment)) {
        const { client: c, deviceId } = deviceClient(o.stateDir);
        try {
          await c.unary("Enrollment", "Deregister", {}, 15_000);
          note = `deregistered ${deviceId}; `;
        } catch (err) {
          note = `could not deregister ${deviceId} (${(err as Error).message}): ask the operator to remove it; `;
        } finally {
          c.close();
        }
      }
      const paths = clientPaths(o.stateDir);
      if (existsSync(paths.store)) ActionStore.open(paths.store).deleteAll();
      deleteIdentity(o.stateDir);
      rmSync(o.stateDir, { recursive: true, force: true });
      process.stdout.write(`${stopped ? `stopped the daemon (pid ${stopped}); ` : ""}${note}deleted all local data and keys in ${o.stateDir}\n`);
    });
}

/** `tacit client suggest`: computed on this laptop from its own model and actions; nothing is sent. */
function registerSuggestCommand(client: Command): void {
  stateDirOption(client.command("suggest").description("the actions you are likely to take next, from this laptop's model and your recent actions (computed here; nothing is sent)"))
    .option("--top <k>", "how many suggestions", "5")
    .option("--json", "print JSON")
    .action(async (o: StateOpt & { top: string; json?: boolean }) => {
      const top = parseNumber("--top", o.top, { min: 1, max: 50, integer: true });
      // The daemon's buffered actions are the most recent ones: have it seal them first.
      await requestDaemonFlush(o.stateDir);
      const model = await loadDeviceModel(o.stateDir);
      const store = ActionStore.open(clientPaths(o.stateDir).store);
      const { records } = store.read();
      store.close();
      const s = suggestNext(model, records, { top, nowMs: Date.now() });
      const head = `next actions after your last ${s.contextActions} action(s)${s.personalized ? ", personalized with your own habits" : ""} (model of run ${s.model.runId}, round ${s.model.round}):`;
      print(o.json, s, `${head}\n${formatPredictions(s.suggestions)}`);
    });
}

/** `tacit client review`: what the store holds, summarized for the person it was captured from. */
function registerReviewCommand(client: Command): void {
  stateDirOption(client.command("review").description("what was captured: counts per app and kind, a timeline per day"))
    .option("--day <YYYY-MM-DD>", "only this day (UTC)", parseDay)
    .option("--json", "print JSON")
    .action(async (o: StateOpt & { day?: string; json?: boolean }) => {
      await requestDaemonFlush(o.stateDir);
      const store = ActionStore.open(clientPaths(o.stateDir).store);
      const { records, problems } = store.read(o.day ? { day: o.day } : undefined);
      const s = summarize(records);
      store.close();
      if (o.json) return print(true, { ...s, problems }, "");
      const lines = [`${s.total} actions stored${o.day ? ` on ${o.day}` : ""}`];
      for (const [app, kinds] of Object.entries(s.perApp).sort()) lines.push(`  ${app}: ${Object.entries(kinds).map(([k, n]) => `${k} ${n}`).join(", ")}`);
      for (const [day, d] of Object.entries(s.perDay).sort()) {
        const spark = d.perHour.map((n) => (n === 0 ? "·" : n < 10 ? "▁" : n < 50 ? "▄" : "█")).join("");
        lines.push(`  ${day}  ${String(d.total).padStart(6)}  ${spark}  (hours 00–23 UTC)`);
      }
      for (const p of problems) lines.push(`  ! ${p.reason} (skipped)`);
      print(false, undefined, lines.join("\n"));
    });
}

/** `tacit client export`: everything captured, as one JSON file only its owner can read. */
function registerExportCommand(client: Command): void {
  stateDirOption(client.command("export").description("write everything captured about you as JSON"))
    .requiredOption("--out <file>", "output file (written 0600)")
    .option("--day <YYYY-MM-DD>", "only this day (UTC)", parseDay)
    .action(async (o: StateOpt & { out: string; day?: string }) => {
      await requestDaemonFlush(o.stateDir);
      const store = ActionStore.open(clientPaths(o.stateDir).store);
      const { records, problems } = store.read(o.day ? { day: o.day } : undefined);
      store.close();
      mkdirSync(dirname(resolve(o.out)), { recursive: true });
      writeFileAtomic(o.out, JSON.stringify({ exportedAt: new Date().toISOString(), actions: records, problems }, null, 1) + "\n", 0o600);
      process.stdout.write(`wrote ${records.length} actions to ${o.out}${problems.length ? ` (${problems.length} damaged segments skipped)` : ""}\n`);
    });
}

/** `tacit client delete`: exactly one of a day, an app or everything, so that a slip never deletes more than asked. */
function registerDeleteCommand(client: Command): void {
  stateDirOption(client.command("delete").description("delete captured data and destroy its keys"))
    .option("--day <YYYY-MM-DD>", "one day (UTC): its key is destroyed", parseDay)
    .option("--app <name>", "everything from one application")
    .option("--all", "everything")
    .action(async (o: StateOpt & { day?: string; app?: string; all?: boolean }) => {
      const chosen = [o.day !== undefined, o.app !== undefined, o.all === true].filter(Boolean).length;
      if (chosen !== 1) throw new CliError("say what to delete: exactly one of --day YYYY-MM-DD, --app NAME or --all");
      await requestDaemonFlush(o.stateDir);
      const store = ActionStore.open(clientPaths(o.stateDir).store);
      let msg: string;
      if (o.all) {
        store.deleteAll();
        msg = "deleted all captured data and its keys";
      } else if (o.day) msg = `deleted ${store.deleteDay(o.day)} actions of ${o.day} and destroyed that day's key`;
      else msg = `deleted ${store.deleteApp(normalizeAppName(o.app!) ?? o.app!)} actions of ${o.app}`;
      store.close();
      process.stdout.write(`${msg}${runningDaemonPid(o.stateDir) ? " (the running daemon keeps capturing what your consent allows)" : ""}\n`);
    });
}

/** `tacit client start`: the daemon in the foreground (the systemd unit runs this). */
function registerStartCommand(client: Command): void {
  stateDirOption(client.command("start").description("run the daemon in the foreground: capture, and rounds while idle"))
    .option("--idle-seconds <s>", "no input for this long makes the laptop eligible for rounds", "300")
    .option("--no-capture", "do not capture (take part in rounds with what is stored)")
    .option("--min-actions <n>", "stored actions needed before offering to train", "64")
    .action(async (o: StateOpt & { idleSeconds: string; capture: boolean; minActions: string }) => {
      const idleMs = parseNumber("--idle-seconds", o.idleSeconds, { min: 0, max: 86_400 }) * 1000;
      const minActions = parseNumber("--min-actions", o.minActions, { min: 1, integer: true });
      const log = pino({ name: "tacit-client", level: process.env.TACIT_LOG_LEVEL ?? "info" }, pino.destination(2));
      const daemon = new ClientDaemon({
        stateDir: o.stateDir,
        idleMs,
        minActions,
        log,
        capture: o.capture ? (onAction, consent) => new CaptureService({ consent: { apps: consent.apps, kinds: consent.kinds }, onAction, logger: log }) : undefined,
      });
      const shutdown = new ShutdownSignals();
      await daemon.start();
      await shutdown.next();
      // Seals the capture buffer into the store, stops the training thread and the stream.
      await daemon.stop();
      log.info("tacit daemon stopped");
      log.flush();
      process.exit(shutdown.exitCode() ?? 0);
    });
}

/** `tacit client status`: what this laptop has agreed to and spent, and with --verify the coordinator's ledger checked against its own copy. */
function registerStatusCommand(client: Command): void {
  stateDirOption(client.command("status").description("consent, capture state, rounds joined and device ε spent"))
    .option("--verify", "check the coordinator's ledger against this laptop's own copy and budget record")
    .option("--json", "print JSON")
    .action(async (o: StateOpt & { verify?: boolean; json?: boolean }) => {
      const paths = clientPaths(o.stateDir);
      const enrollment = existsSync(identityPaths(o.stateDir).enrollment) ? loadEnrollment(o.stateDir) : undefined;
      const consent = loadConsent(paths.consent);
      const daemon = readDaemonStatus(o.stateDir);
      const budget = new BudgetRecord(paths.budget);
      const delta = consent?.limits.delta ?? DEFAULT_LIMITS.delta;
      const counted = budget.list().filter((e) => e.outcome !== "superseded");
      const spent = deviceEpsilon(budget.events(), delta);
      const status = {
        enrolled: enrollment ? { deviceId: enrollment.deviceId, coordinator: enrollment.coordinator } : null,
        consent: consent ? { apps: consent.apps, kinds: consent.kinds, limits: consent.limits, paused: consent.paused } : null,
        daemon: daemon ?? null,
        capture: !consent ? "no consent" : consent.paused ? "paused" : daemon ? daemon.capture : "daemon not running",
        roundsJoined: counted.length,
        roundsCompleted: counted.filter((e) => e.outcome === "completed").length,
        deviceEpsilon: { epsilon: spent, delta, limit: consent?.limits.maxDeviceEpsilon ?? null },
        verify: undefined as unknown,
      };
      if (o.verify) {
        if (!enrollment) throw new CliError("not enrolled: nothing to verify");
        const { client: c, deviceId, coordinatorKey } = deviceClient(o.stateDir);
        try {
          status.verify = await verifyLedgerCopy(c, deviceId, paths.ledgerCopy, coordinatorKey, budget.list());
        } catch (err) {
          explainRpc(err, enrollment.coordinator);
        } finally {
          c.close();
        }
      }
      const v = status.verify as Awaited<ReturnType<typeof verifyLedgerCopy>> | undefined;
      const lines = [
        enrollment ? `enrolled as ${enrollment.deviceId} with ${enrollment.coordinator}` : "not enrolled (`tacit client enroll`)",
        consent ? `consent: ${consent.kinds.join(", ")} in ${consent.apps.join(", ") || "no apps"}${consent.paused ? " — PAUSED" : ""}` : "consent: none given — nothing is captured",
        `capture: ${status.capture}${daemon ? ` (daemon pid ${daemon.pid}, ${daemon.connected ? "connected" : "not connected"}, ${daemon.idle ? "idle" : "in use"}, ${daemon.storedActions} actions stored)` : ""}`,
        `rounds joined: ${status.roundsJoined} (${status.roundsCompleted} completed)`,
        `device ε spent: ${spent.toFixed(3)} at δ=${delta.toExponential()}${consent ? ` (your limit ${consent.limits.maxDeviceEpsilon})` : ""} — no amplification assumed`,
      ];
      if (v) {
        lines.push(v.ok ? `ledger check: OK — ${v.localEntries} local entries all present and unchanged in the coordinator's ledger; every completed round is attested` : `ledger check: FAILED`);
        for (const p of v.problems) lines.push(`  ! ${p.message}`);
      }
      print(o.json, status, lines.join("\n"));
      if (v && !v.ok) process.exitCode = 1;
    });
}

/** `tacit client install-service`: a systemd --user unit, so the daemon runs at login without a terminal. */
function registerInstallServiceCommand(client: Command): void {
  stateDirOption(client.command("install-service").description("write a systemd --user unit that runs the daemon at login"))
    .option("--idle-seconds <s>", "idle time before rounds", "300")
    .option("--unit-dir <dir>", "where to write the unit", join(process.env.XDG_CONFIG_HOME ?? join(process.env.HOME ?? homedir(), ".config"), "systemd", "user"))
    .option("--print", "print the unit instead of writing it")
    .action((o: StateOpt & { idleSeconds: string; unitDir: string; print?: boolean }) => {
      parseNumber("--idle-seconds", o.idleSeconds, { min: 0, max: 86_400 });
      const unit = systemdUserUnit({ node: process.execPath, bin: resolve(new URL("../../bin/tacit.js", import.meta.url).pathname), stateDir: resolve(o.stateDir), idleSeconds: Number(o.idleSeconds) });
      if (o.print) return void process.stdout.write(unit);
      mkdirSync(o.unitDir, { recursive: true });
      const file = join(o.unitDir, "tacit-client.service");
      writeFileSync(file, unit, { mode: 0o644 });
      process.stdout.write(`wrote ${file}\nenable it with: systemctl --user daemon-reload && systemctl --user enable --now tacit-client.service\n`);
    });
}

export function registerClientCommands(program: Command): void {
  const client = program.command("client").description("the Tacit daemon on this laptop: consent, capture, review, rounds");
  // In the order `tacit client --help` lists them.
  registerEnrollCommand(client);
  registerConsentCommand(client);
  registerPauseResumeCommands(client);
  registerWithdrawCommand(client);
  registerSuggestCommand(client);
  registerReviewCommand(client);
  registerExportCommand(client);
  registerDeleteCommand(client);
  registerStartCommand(client);
  registerStatusCommand(client);
  registerInstallServiceCommand(client);
}
