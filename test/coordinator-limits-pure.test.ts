/**
 * Pure rules behind the coordinator's hardening: per-method body caps (every method the proto
 * declares has one, new methods default to kilobytes) and the weak identity-key check.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { generateEd25519 } from "../shared/crypto/index.ts";
import { loadTacitProto } from "../shared/transport/proto.ts";
import { DEFAULT_REQUEST_CAP, requestCap } from "../coordinator/server/message-caps.ts";
import { weakIdentityKeyReason } from "../coordinator/state/identity-key-check.ts";

const round = (parameterCount: number, bits: number, members: number) => ({
  parameterCount,
  cohort: { size: members, root: "0".repeat(64) },
  secagg: { bits } as never,
});

describe("per-method request caps", () => {
  it("gives every proto method a cap, kilobyte-scale unless it carries a round's vectors or a spec", () => {
    const proto = loadTacitProto().tacit.v1 as unknown as Record<string, { service?: Record<string, { path: string }> }>;
    const paths = Object.values(proto).flatMap((x) => (x.service ? Object.values(x.service).map((m) => m.path) : []));
    expect(paths.length).toBeGreaterThan(10);
    for (const p of paths) expect(requestCap(p, [])).toBeLessThanOrEqual(65 * 1024 + 1024);
    expect(requestCap("/tacit.v1.Rounds/SomeMethodAddedLater", [round(1 << 20, 32, 100)])).toBe(DEFAULT_REQUEST_CAP);
  });

  it("sizes SubmitMaskedInput from the active round: one or two 32-bit limbs per element", () => {
    expect(requestCap("/tacit.v1.Rounds/SubmitMaskedInput", [])).toBeLessThan(2048);
    const c32 = requestCap("/tacit.v1.Rounds/SubmitMaskedInput", [round(1000, 32, 5)]);
    const c64 = requestCap("/tacit.v1.Rounds/SubmitMaskedInput", [round(1000, 64, 5)]);
    expect(c32).toBeGreaterThanOrEqual(1024 * 4);
    expect(c64).toBeGreaterThanOrEqual(1024 * 8);
    expect(c64).toBeLessThan(1024 * 8 + 2048);
  });
});

describe("weak identity keys", () => {
  it("accepts real ed25519 keys", () => {
    fc.assert(
      fc.property(fc.integer(), () => weakIdentityKeyReason(generateEd25519().publicRaw) === undefined),
      { numRuns: 200 },
    );
  });

  it("refuses every encoding whose y (either sign) is a small-order point's, and y ≥ p", () => {
    const p = (1n << 255n) - 19n;
    const y8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022n;
    const le = (v: bigint): Uint8Array => Uint8Array.from({ length: 32 }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn));
    for (const y of [0n, 1n, p - 1n, y8, p - y8]) {
      expect(weakIdentityKeyReason(le(y))).toMatch(/small-order/);
      expect(weakIdentityKeyReason(le(y | (1n << 255n)))).toMatch(/small-order/);
    }
    fc.assert(fc.property(fc.bigInt({ min: p, max: (1n << 255n) - 1n }), (y) => /non-canonical/.test(weakIdentityKeyReason(le(y)) ?? "")));
  });
});
