/**
 * metrics.json's device ε: devices charged for the same rounds share one composition (934
 * compositions one by one blocked the coordinator's thread for 7 s after a round), and the
 * figures are exactly those of composing each device's own history.
 */
import { describe, expect, it } from "vitest";
import { deviceEpsilon, type DpEvent } from "../shared/dp/index.ts";
import { deviceEpsilons } from "../simulation/simulate.ts";

describe("simulate: device ε per device", () => {
  it("equals each device's own composition, for shared and distinct histories and devices never charged", () => {
    const a: DpEvent = { kind: "gaussian", noiseMultiplier: 2 };
    const b: DpEvent = { kind: "gaussian", noiseMultiplier: 1.2 };
    const histories: DpEvent[][] = [[a, a], [a, a], [a], [], [a, b], [b, a], [a, a]];
    const got = deviceEpsilons(histories, 1e-6);
    expect(got).toEqual(histories.map((h) => (h.length ? deviceEpsilon(h, 1e-6) : 0)));
    expect(got[3]).toBe(0);
    expect(got[0]).toBeGreaterThan(got[2]!); // two rounds cost more than one
    expect(got[4]).toBeGreaterThan(got[0]!); // a round with less noise costs more
  });
});
