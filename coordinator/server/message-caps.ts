/**
 * The largest request body each RPC may carry, checked on the wire before a message is
 * buffered. Only the SecAgg messages of a round in progress are large, and their size follows
 * from that round's signed config; every other method, including ones added to the proto later,
 * gets a kilobyte-scale cap. The method list is read from the loaded proto, never hard-coded.
 */
import { aggregationLength, type RoundConfig } from "../../shared/run/index.ts";

/** Default for any method without a specific rule: a signed request of a few fields. */
export const DEFAULT_REQUEST_CAP = 4 * 1024;
/** Room for protobuf framing, the round reference and small fields around a payload. */
const HEADROOM = 1024;
/** Largest ciphertext of one key share (handlers.ts refuses anything longer). */
export const MAX_SHARE_BYTES = 4096;
/** A Shamir share of a 32-byte secret in a field element, with its owner index and framing. */
const UNMASK_SHARE_BYTES = 128;

const FIXED: Record<string, number> = {
  "/tacit.v1.RunControl/LaunchRun": 64 * 1024 + HEADROOM, // spec_json ≤ 64 KiB + signature
  "/tacit.v1.Ledger/SetPolicy": 16 * 1024 + HEADROOM,
  "/tacit.v1.Rounds/SubmitAttestation": 16 * 1024 + HEADROOM,
};

type ActiveConfig = Pick<RoundConfig, "parameterCount" | "cohort" | "secagg">;

/** Largest message `method` may carry while `active` rounds are running. */
export function requestCap(method: string, active: readonly ActiveConfig[]): number {
  const fixed = FIXED[method];
  if (fixed !== undefined) return fixed;
  const perRound = (f: (c: ActiveConfig) => number): number => active.reduce((m, c) => Math.max(m, f(c)), 0) + HEADROOM;
  switch (method) {
    case "/tacit.v1.Rounds/SubmitMaskedInput":
      // Exactly the round's vector, one or two 32-bit limbs per element.
      return perRound((c) => aggregationLength(c) * (c.secagg.bits > 32 ? 8 : 4));
    case "/tacit.v1.Rounds/ShareKeys":
      return perRound((c) => c.cohort.size * (MAX_SHARE_BYTES + 32));
    case "/tacit.v1.Rounds/SubmitUnmasking":
      return perRound((c) => c.cohort.size * 2 * UNMASK_SHARE_BYTES);
    default:
      return DEFAULT_REQUEST_CAP;
  }
}
