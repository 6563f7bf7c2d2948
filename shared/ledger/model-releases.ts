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
      const spec = (b.spec as { model?: unknown } | undefined)?.model;
      specs.set(b.runId, spec);
      if (typeof b.initialModelHash === "string") out.push({ runId: b.runId, round: -1, modelHash: b.initialModelHash, seq: e.seq, spec });
    } else if (e.type === "round" && b.status === "completed" && typeof b.modelHashAfter === "string" && typeof b.round === "number") {
      out.push({ runId: b.runId, round: b.round, modelHash: b.modelHashAfter, seq: e.seq, spec: specs.get(b.runId) });
    }
  });
  return out;
}
