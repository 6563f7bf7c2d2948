/**
 * Which global models a ledger released: the model after every completed round
 * (`modelHashAfter` of its round entry) and each run's initial model (`initialModelHash` of
 * its run-launch entry). Model export names its model by these hashes, and `tacit verify
 * --model` looks an exported model's hash up here. Reads entries only; the chain and signatures
 * are verifyLedger's job. Pure.
 */
import { parseEntry } from "./verify.ts";

export interface ModelRelease {
  runId: string;
  /** The round after which this model was the global model; −1 = the run's initial model. */
  round: number;
  modelHash: string;
  /** seq of the ledger entry that records it. */
  seq: number;
  /** The run's model spec as its run-launch entry records it. */
  spec: unknown;
  /**
   * Round −1 only: whether the run spec named this initial model as pretrained on public data
   * (`initialModel.source: "public"` with this hash) rather than a seeded random initialisation.
   */
  public?: boolean;
}

export function modelReleases(ledgerText: string): ModelRelease[] {
  const lines = ledgerText.split("\n").filter((l) => l.length > 0);
  const specs = new Map<string, unknown>();
  const out: ModelRelease[] = [];
  lines.forEach((line, i) => {
    const e = parseEntry(line, i + 1);
    const b = e.body as Record<string, unknown>;
    if (typeof b.runId !== "string") return;
    if (e.type === "run-launch") {
      const runSpec = b.spec as { model?: unknown; initialModel?: { source?: unknown; sha256?: unknown } } | undefined;
      const spec = runSpec?.model;
      specs.set(b.runId, spec);
      const hash = b.initialModelHash;
      const isPublic = runSpec?.initialModel?.source === "public" && runSpec.initialModel.sha256 === hash;
      if (typeof hash === "string") out.push({ runId: b.runId, round: -1, modelHash: hash, seq: e.seq, spec, public: isPublic });
    } else if (e.type === "round" && b.status === "completed" && typeof b.modelHashAfter === "string" && typeof b.round === "number") {
      out.push({ runId: b.runId, round: b.round, modelHash: b.modelHashAfter, seq: e.seq, spec: specs.get(b.runId) });
    }
  });
  return out;
}

export class ModelReleaseError extends Error {
  override name = "ModelReleaseError";
}

/**
 * The release to export: round `round` of `runId`, or its last completed round. An unknown run
 * or a round the ledger does not record as completed is refused with the rounds it does record.
 */
export function findRelease(releases: readonly ModelRelease[], runId: string, round?: number): ModelRelease {
  const ofRun = releases.filter((r) => r.runId === runId);
  if (ofRun.length === 0) {
    const runs = [...new Set(releases.map((r) => r.runId))];
    throw new ModelReleaseError(`run ${runId} is not in the ledger${runs.length ? ` (runs: ${runs.join(", ")})` : ""}`);
  }
  const rounds = ofRun.filter((r) => r.round >= 0);
  if (round === undefined) {
    const last = rounds.at(-1);
    if (!last) throw new ModelReleaseError(`run ${runId} has no completed round yet: nothing trained to export`);
    return last;
  }
  const hit = ofRun.find((r) => r.round === round);
  if (!hit) throw new ModelReleaseError(`round ${round} of run ${runId} was not released (completed rounds in the ledger: ${rounds.length ? rounds.map((r) => r.round).join(", ") : "none"})`);
  return hit;
}
