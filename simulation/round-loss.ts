/** A round's training loss so far: example-weighted over finite losses, diverged devices counted apart. */
export interface RoundLoss {
  sum: number;
  n: number;
  diverged: number;
}

/**
 * A mean cross-entropy above this means the model gave the true next action about e^-100 on
 * average: the local training diverged even though its numbers stayed finite (a uniform guess
 * over the vocabulary costs ln V ≈ 7 nats). Seen at population scale: one device reporting
 * 4.8·10²⁴ made a round's mean loss that large.
 */
export const DIVERGED_LOSS_NATS = 100;

/**
 * Adds one device's reported loss. A device whose local training diverged reports a non-finite
 * or absurd loss: it is counted, not averaged in, so one such device does not turn the round's
 * loss into NaN (or 10²⁴) and hide what the others did.
 */
export function addDeviceLoss(l: RoundLoss, loss: number, examples: number): RoundLoss {
  if (!(Number.isFinite(loss) && loss <= DIVERGED_LOSS_NATS)) return { ...l, diverged: l.diverged + 1 };
  return { ...l, sum: l.sum + loss * examples, n: l.n + examples };
}
