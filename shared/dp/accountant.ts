/** The accountant interface shared by RDP and PLD (dp_accounting's `privacy_accountant.py`). */
import type { DpEvent } from "./events.ts";

export interface PrivacyAccountant {
  /** True if every part of `event` can be accounted. */
  supports(event: DpEvent): boolean;
  /** Adds `count` copies of `event`; checks before it changes anything. */
  compose(event: DpEvent, count?: number): this;
  /** Smallest ε such that the composed events are (ε, δ)-DP; never below the true value. */
  getEpsilon(delta: number): number;
  getDelta(epsilon: number): number;
}

export class AccountantInputError extends Error {
  override name = "AccountantInputError";
}

export function checkDelta(delta: number): void {
  if (!(delta > 0 && delta < 1)) throw new AccountantInputError(`delta must be in (0, 1), got ${delta}`);
}
