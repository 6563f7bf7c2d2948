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
import { openPhaseGate } from "./phase-gate.ts";
import { fanOut } from "./fan-out.ts";

export async function runConsistencyPhase(o: {
  hub: DeviceHub;
  active: ActiveRound;
  signal: AbortSignal;
  ref: { runId: string; round: number };
  shown: UnmaskRequest;
  deadline: number;
}): Promise<UnmaskRequest> {
  const { hub, active, ref, shown } = o;
  active.phase = "consistency";
  openPhaseGate(active, o.signal, shown.survivors, o.deadline);
  // One message for every survivor: the same set, serialized once.
  const msg = hub.encodeOnce({ consistency: { ref, survivors: shown.survivors } });
  await fanOut(hub, active, shown.survivors, () => msg);
  return active.secagg.closeConsistency();
}
