/**
 * Device accountability (finding M2, device side). A device whose message is provably malformed
 * in a way no honest device produces — today: an unmasking share that is not a field element —
 * is named in the ledger (a signed "device-offence" entry), its message is refused so the round
 * goes on without it, and after QUARANTINE_AFTER offences it is quarantined: its stream is ended
 * and it may not subscribe again, so it is never sampled. The ledger is the durable record, so a
 * restarted coordinator keeps the quarantine.
 *
 * Not covered here: shares that are valid field elements but wrong. Identifying their sender
 * needs reconstruction from redundant share subsets inside the SecAgg server (the
 * privacy-soundness work on M2); until then such a device is not named.
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

export function isQuarantined(ledger: Pick<OffenceLedger, "offences">, deviceId: string): boolean {
  return ledger.offences(deviceId) >= QUARANTINE_AFTER;
}
