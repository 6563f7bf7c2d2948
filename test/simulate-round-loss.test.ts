import { describe, expect, it } from "vitest";
import { addDeviceLoss, DIVERGED_LOSS_NATS } from "../simulation/round-loss.ts";

describe("a round's training loss in metrics.json", () => {
  it("is the example-weighted mean of finite losses; a diverged device (non-finite or absurd loss) is counted, not averaged in", () => {
    let l = { sum: 0, n: 0, diverged: 0 };
    l = addDeviceLoss(l, 2, 10);
    l = addDeviceLoss(l, Number.NaN, 50);
    l = addDeviceLoss(l, 4, 30);
    l = addDeviceLoss(l, Number.POSITIVE_INFINITY, 5);
    l = addDeviceLoss(l, 4.8e24, 7); // diverged, still finite
    l = addDeviceLoss(l, DIVERGED_LOSS_NATS, 20); // the bound itself is still a loss
    expect(l.sum / l.n).toBeCloseTo((2 * 10 + 4 * 30 + DIVERGED_LOSS_NATS * 20) / 60, 12);
    expect(l.diverged).toBe(3);
  });
});
