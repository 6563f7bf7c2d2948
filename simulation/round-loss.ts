/** A round's training loss so far: example-weighted over finite losses, diverged devices counted apart. */
export interface RoundLoss {
  sum: number;
  n: number;
  diverged: number;
}

/**
 * Adds one device's reported loss. A device whose local training diverged reports a non-finite
 * loss (and contributes a zero update): it is counted, not averaged in, so one such device does
 * not turn the round's loss into NaN and hide what the others did.
 */
export function addDeviceLoss(l: RoundLoss, loss: number, examples: number): RoundLoss {
  if (!Number.isFinite(loss)) return { ...l, diverged: l.diverged + 1 };
  return { ...l, sum: l.sum + loss * examples, n: l.n + examples };
}
