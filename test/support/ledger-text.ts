/**
 * The coordinator's ledger as one JSONL text, read from its store's segments (ledger/<firstSeq>.jsonl
 * in seq order) — what `tacit verify` reads. `where` is a state dir (default store inside it) or a
 * store directory.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { sign } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { canonicalJson, generateEd25519 } from "../../shared/crypto/index.ts";
import { signPolicy, type DpEvent, type PolicyBody, type PolicyFile } from "../../shared/dp/index.ts";
import { LedgerWriter, type EntryType } from "../../shared/ledger/index.ts";
import type { RunSpec } from "../../shared/run/index.ts";
import { tinyRunSpec } from "./cluster.ts";

export function ledgerText(where: string): string {
  const root = existsSync(join(where, "ledger")) ? where : join(where, "store");
  const dir = join(root, "ledger");
  if (!existsSync(dir)) return "";
  return readdirSync(dir)
    .filter((n) => /^\d{12}\.jsonl$/.test(n))
    .sort()
    .map((n) => readFileSync(join(dir, n), "utf8"))
    .join("");
}

/**
 * A signed ledger built in process (no coordinator, no Redis): its keys, a run spec, one DP event,
 * and builders for each entry kind — run launches signed by the ML team's key, rounds,
 * attestations signed by each device's key — written through a real LedgerWriter (hash chain and
 * coordinator signatures). Every entry is honest unless a test overrides a field.
 */
export type LedgerItem = { type: EntryType; body: Record<string, unknown> };

export const b64 = (u: Uint8Array): string => Buffer.from(u).toString("base64");

export const LEDGER_MODEL_HASH = "cd".repeat(32);

export function signedLedgerKit(o: { devices?: number; spec?: RunSpec; event?: DpEvent; policy?: Partial<PolicyBody> } = {}) {
  const EVENT: DpEvent = o.event ?? { kind: "distributedDiscreteGaussian", l2Sensitivity: 1000, l1Sensitivity: 1000 * 32, perDeviceVariance: 1e6 / 3, devices: 3, dimension: 1024 };
  const DEVICES = Array.from({ length: o.devices ?? 5 }, (_, i) => ({ id: `dev-${i}`, key: generateEd25519() }));
  const COORDINATOR = generateEd25519();
  const REVIEWER = generateEd25519();
  const ML = generateEd25519();
  const SPEC: RunSpec = o.spec ?? tinyRunSpec({ noiseMultiplier: 1, rounds: 2, cohortSize: 5, minSurvivors: 4, populationSize: 5, clip: 5 });
  const signedPolicy = (over: Partial<PolicyBody> = {}): PolicyFile =>
    signPolicy({ version: 1, minNoiseMultiplier: 1, maxDeviceEpsilon: 1000, delta: 1e-6, minSurvivors: 4, allowedSignals: ["commit", "file-change"], ...o.policy, ...over }, REVIEWER.privateKey, REVIEWER.publicKey);
  const POLICY = signedPolicy();

  /** A run launch whose request the ML team signed (`signed`: what they signed, if not the spec). */
  const launch = (runId: string, spec: unknown = SPEC, signed: unknown = spec, extra: Record<string, unknown> = {}): LedgerItem => {
    const body = JSON.stringify(signed);
    return { type: "run-launch", body: { runId, spec, request: { body, publicKey: b64(ML.publicRaw), signature: b64(sign(null, Buffer.from(body), ML.privateKey)) }, ...extra } };
  };

  /** A round entry; `body` overrides or adds fields (undefined removes one). */
  const round = (runId: string, r: number, x: { cohort?: string[]; survivors?: string[]; status?: string; body?: Record<string, unknown> } = {}): LedgerItem => {
    const cohort = x.cohort ?? DEVICES.map((d) => d.id);
    const body: Record<string, unknown> = { runId, round: r, attempt: 0, status: x.status ?? "completed", modelHashBefore: LEDGER_MODEL_HASH, cohort, survivors: x.survivors ?? cohort, declined: [], memberKey: "3c".repeat(32), mechanism: EVENT, ...x.body };
    for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
    return { type: "round", body };
  };

  /** Device `device`'s signed attestation of a round: the kit's spec and event unless `over` says otherwise. */
  const attestation = (runId: string, r: number, device: number, over: Record<string, unknown> = {}, spec: RunSpec = SPEC): LedgerItem => {
    const d = DEVICES[device]!;
    const bodyJson = canonicalJson({ type: "tacit-attestation-v1", deviceId: d.id, runId, round: r, attempt: 0, modelHash: LEDGER_MODEL_HASH, mechanism: spec.mechanism, clip: spec.clip, noiseMultiplier: spec.noiseMultiplier, minSurvivors: spec.minSurvivors, event: EVENT, ...over });
    return { type: "attestation", body: { runId, round: r, deviceId: d.id, identityPublicKey: b64(d.key.publicRaw), bodyJson, signature: b64(sign(null, Buffer.from(bodyJson), d.key.privateKey)) } };
  };

  /** A completed round with every survivor's attestation (survivors by device index). */
  const attestedRound = (runId: string, r: number, survivors = DEVICES.map((_, i) => i)): LedgerItem[] => [round(runId, r, { survivors: survivors.map((i) => DEVICES[i]!.id) }), ...survivors.map((i) => attestation(runId, r, i))];

  /** A launch, two attested rounds with every device, and the run's end. */
  const honestRun = (runId: string): LedgerItem[] => [launch(runId), ...attestedRound(runId, 0), ...attestedRound(runId, 1), { type: "run-end", body: { runId, state: "completed", detail: "" } }];

  /** The ledger's text: genesis (the coordinator's key), the policy (none with `policy: null`), then `items`. */
  const ledger = (items: LedgerItem[], x: { policy?: PolicyFile | null } = {}): string => {
    const dir = mkdtempSync(join(tmpdir(), "tacit-ledger-kit-"));
    const w = LedgerWriter.open(join(dir, "l.jsonl"), COORDINATOR.privateKey);
    w.append("genesis", { coordinatorPublicKey: b64(COORDINATOR.publicRaw) });
    if (x.policy !== null) w.append("policy", { policy: x.policy ?? POLICY });
    for (const it of items) w.append(it.type, it.body);
    return readFileSync(join(dir, "l.jsonl"), "utf8");
  };

  return { EVENT, DEVICES, COORDINATOR, REVIEWER, ML, SPEC, POLICY, signedPolicy, launch, round, attestation, attestedRound, honestRun, ledger };
}
