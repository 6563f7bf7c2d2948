/**
 * CLI error policy: expected failures (bad flags, missing files, unreachable services) print
 * one line naming the problem and exit non-zero; only a genuine bug shows a stack trace, and
 * only with TACIT_DEBUG=1.
 */
export class CliError extends Error {
  override name = "CliError";
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
  }
}

const EXPECTED = new Set([
  "CliError", "DatasetError", "RedisUnavailableError", "CoordinatorStartError", "StateDirError", "RunSpecError",
  "RpcCallError", "SimulationError", "KeyFormatError", "PolicyError", "ModularError", "RoundConfigError", "EnrollmentError",
  "AccountantInputError", "UnsupportedEventError", "LedgerFormatError", "CaFileError", "TlsSetupError", "IdentityError", "DistributedDpError", "CheckpointError", "ModelSpecError",
  "ConsentError", "DaemonAlreadyRunningError", "StateDirLockedError", "CaptureUnavailableError", "StoreError", "NotEnoughDataError",
  "NoDeviceModelError", "ExportedModelError", "ModelReleaseError",
]);

export function reportError(err: unknown): number {
  const e = err as Error & { exitCode?: number };
  const name = e?.name ?? "Error";
  if (process.env.TACIT_DEBUG === "1") process.stderr.write(`${e?.stack ?? String(err)}\n`);
  if (EXPECTED.has(name) || process.env.TACIT_DEBUG === "1") {
    process.stderr.write(`tacit: ${e.message}\n`);
  } else {
    process.stderr.write(`tacit: unexpected ${name}: ${e?.message ?? String(err)} (set TACIT_DEBUG=1 for details)\n`);
  }
  return typeof e?.exitCode === "number" ? e.exitCode : 1;
}

export function parseNumber(name: string, raw: string, o: { min?: number; max?: number; integer?: boolean } = {}): number {
  const v = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(v)) throw new CliError(`${name} must be a number, got '${raw}'`);
  if (o.integer && !Number.isInteger(v)) throw new CliError(`${name} must be an integer, got '${raw}'`);
  if (o.min !== undefined && v < o.min) throw new CliError(`${name} must be at least ${o.min}, got ${v}`);
  if (o.max !== undefined && v > o.max) throw new CliError(`${name} must be at most ${o.max}, got ${v}`);
  return v;
}
