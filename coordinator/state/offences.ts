/**
 * Device accountability (finding M2). A device proved to have broken the protocol in a way no
 * honest device does is named in the ledger (a signed "device-offence" entry):
 * - an unmasking share that is not a field element (refused at the RPC, the round goes on);
 * - a share that is a field element but wrong, located from the redundant shares by the SecAgg
 *   server's error-correcting reconstruction (corrected, the round goes on);
 * - shares it dealt of a key other than the one it advertised (the round aborts);
 * - a ConsistencyCheck signature that does not verify over the set it was shown.
 * Every round a device aborts or disturbs this way counts; after QUARANTINE_AFTER offences it is
 * quarantined: its stream is ended and it may not subscribe again, so it is never sampled. The
 * ledger is the durable record, so a restarted coordinator keeps the quarantine. Aborts nobody
 * can be blamed for (a device that goes silent) name nobody: an honest laptop drops out too.
 */
import { bytesToField, SecAggError } from "../../shared/secagg/index.ts";

export const QUARANTINE_AFTER = 3;

export interface OffenceLedger {
  offence(e: { deviceId: string; runId: string; round: number; reason: string }): Promise<void>;
  offences(deviceId: string): number;
}

/** The reason an unmasking message is provably malformed, if it is. */
export function malformedShareReason(shares: readonly { owner: number; share: Uint8Array }[]): string | undefined {
  for (const s of shares) {
    try {
      bytesToField(s.share);
    } catch (err) {
      if (err instanceof SecAggError) return `unmasking share for member ${s.owner} is not a field element`;
      throw err;
    }
  }
  return undefined;
}

/** What recording an offence needs: the ledger, and the hub that ends a quarantined device's stream. */
export interface OffenceSink {
  ledger: OffenceLedger;
  hub: { remove(deviceId: string): void };
}

/** Names the device in the ledger and, once it has offended QUARANTINE_AFTER times, ends its stream. */
export async function recordOffence(sink: OffenceSink, e: { deviceId: string; runId: string; round: number; reason: string }): Promise<void> {
  await sink.ledger.offence(e);
  if (isQuarantined(sink.ledger, e.deviceId)) sink.hub.remove(e.deviceId);
}

export function isQuarantined(ledger: Pick<OffenceLedger, "offences">, deviceId: string): boolean {
  return ledger.offences(deviceId) >= QUARANTINE_AFTER;
}
