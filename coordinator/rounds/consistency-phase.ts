/**
 * The ConsistencyCheck phase (Bonawitz et al. CCS'17, malicious server), between MaskedInput
 * and Unmasking: every survivor is shown the one survivor set and signs it; the unmasking
 * request then carries every signature collected. Devices reveal shares only for the set they
 * signed and only with t signatures on it from their neighbourhood (shared/secagg/device.ts), so
 * this coordinator could not get both shares of one device even if it tried to equivocate.
 */
import type { UnmaskRequest } from "../../shared/secagg/index.ts";
import type { DeviceHub } from "./device-hub.ts";
import type { ActiveRound } from "./active-round.ts";
import { PhaseGate } from "./phase-gate.ts";

export async function runConsistencyPhase(o: {
  hub: DeviceHub;
  active: ActiveRound;
  ref: { runId: string; round: number };
  shown: UnmaskRequest;
  deadline: number;
}): Promise<UnmaskRequest> {
  const { hub, active, ref, shown } = o;
  active.phase = "consistency";
  active.gate = new PhaseGate(shown.survivors, o.deadline);
  // One message for every survivor: the same set, serialized once.
  const msg = hub.encodeOnce({ consistency: { ref, survivors: shown.survivors } });
  for (const [n, i] of shown.survivors.entries()) {
    if (!hub.send(active.deviceByIndex.get(i)!, msg)) active.gate.settle(i);
    // Let the event loop turn now and then on large cohorts (RPCs, keepalives, lock renewal).
    if (n % 64 === 63) await new Promise((r) => setImmediate(r));
  }
  await active.gate.done;
  return active.secagg.closeConsistency();
}
