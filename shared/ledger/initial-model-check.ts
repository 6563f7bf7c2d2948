/**
 * What `tacit verify` checks about the model a run started from. A run may name a pretrained
 * initial model by the SHA-256 of its weights (run spec `initialModel`, trained on public data
 * at no privacy cost — issue #13). Its ledger launch entry records the hash of the model the
 * coordinator actually installed (`initialModelHash`), and every attempt of round 0 records the
 * model it trained from (`modelHashBefore`). A run that claims a public initial model but
 * started from something else (e.g. a model already trained on private data, whose cost the
 * ledger would never show) is caught here.
 */
import type { RunSpec } from "../run/index.ts";

export interface InitialModelFacts {
  runId: string;
  spec: RunSpec | undefined;
  /** The launch entry's `initialModelHash` (absent in ledgers written by hand or by old coordinators). */
  initialModelHash: unknown;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Problems with a launch entry: the installed model must be the one the spec pins. */
export function launchInitialModelProblems(f: InitialModelFacts): string[] {
  const pinned = f.spec?.initialModel?.sha256;
  const recorded = typeof f.initialModelHash === "string" && HEX64.test(f.initialModelHash) ? f.initialModelHash : undefined;
  if (f.initialModelHash !== undefined && recorded === undefined) return [`run ${f.runId}: the launch entry's initialModelHash ${JSON.stringify(f.initialModelHash)?.slice(0, 80)} is not a SHA-256`];
  if (pinned === undefined) return [];
  if (recorded === undefined) return [`run ${f.runId}: the spec pins initial model ${pinned} (public data, ${f.spec!.initialModel!.dataset}), but the launch entry records no initial model hash`];
  if (recorded !== pinned) return [`run ${f.runId}: started from model ${recorded}, but the spec pins initial model ${pinned} (public data, ${f.spec!.initialModel!.dataset})`];
  return [];
}

/** Problems with one attempt of round 0: it must train from the recorded initial model. */
export function firstRoundModelProblem(runId: string, initialModelHash: unknown, round: number, attempt: number, modelHashBefore: unknown): string | undefined {
  if (round !== 0 || typeof initialModelHash !== "string") return undefined;
  if (modelHashBefore === initialModelHash) return undefined;
  return `run ${runId} round 0 attempt ${attempt}: trained from model ${String(modelHashBefore)}, not the initial model ${initialModelHash} the launch recorded`;
}
