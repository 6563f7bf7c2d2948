/**
 * Per-device rosters and unmasking requests (DeviceHub.encodeRosters, encodeUnmaskRequests):
 * every device's bytes decode, with the real tacit.proto deserializer, to what a per-device
 * encoding gives — a roster with the list of every advertiser and only its own and its
 * neighbours' advertisements, an unmasking request with the sets and only its neighbourhood's
 * signatures; without an encoder each device gets the plain event.
 */
import { describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { DeviceHub } from "../coordinator/rounds/device-hub.ts";
import { loadTacitProto } from "../shared/transport/proto.ts";
import type { ServerEvent } from "../shared/proto-gen/tacit/v1/ServerEvent.ts";
import type { AdvertisedKeys } from "../shared/secagg/index.ts";

const subscribe = loadTacitProto().tacit.v1.Rounds.service.Subscribe;
const serialize = (ev: ServerEvent): Buffer => subscribe.responseSerialize(ev);
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** The decoded roster, byte fields as hex. */
function decode(b: Buffer): { ref: unknown; advertised: number[]; keys: string[]; members: string[] } {
  const r = (subscribe.responseDeserialize(b) as ServerEvent).roster as { ref: unknown; advertised: number[]; keys: AdvertisedKeys[]; members: { index: number; identityPublicKey: Buffer; path: Buffer[] }[] };
  return {
    ref: r.ref,
    advertised: r.advertised,
    keys: r.keys.map((k) => `${k.index}:${hex(k.cPk)}:${hex(k.sPk)}:${hex(k.selfMaskCommitment)}:${hex(k.signature)}`),
    members: r.members.map((m) => `${m.index}:${hex(m.identityPublicKey)}:${m.path.map(hex).join(",")}`),
  };
}

const n = 300;
const advertised = Array.from({ length: n }, (_, i) => i * 3 + (i % 2)); // indices across varint lengths
const keys = new Map<number, AdvertisedKeys>(advertised.map((index) => [index, { index, cPk: randomBytes(32), sPk: randomBytes(32), selfMaskCommitment: randomBytes(32), signature: randomBytes(64) }]));
/** A stand-in neighbourhood: the device and the next few advertisers on the list. */
const keysFor = (index: number): AdvertisedKeys[] => {
  const p = advertised.indexOf(index);
  return [0, 1, 2, 3, 4].map((s) => keys.get(advertised[(p + s) % n]!)!).sort((a, b) => a.index - b.index);
};
const ref = { runId: "run-r", round: 7 };
/** A stand-in cohort proof per index: its key and a path that differ per member. */
const memberOf = (index: number) => ({ index, identityPublicKey: Buffer.alloc(32, index % 256), path: Array.from({ length: 1 + (index % 9) }, (_, l) => Buffer.alloc(32, (index * 7 + l) % 256)) });

describe("per-device rosters", () => {
  it("each device's bytes decode to its own roster: every advertiser, only its neighbourhood's keys", () => {
    const hub = new DeviceHub();
    hub.encoder = serialize;
    const rosters = hub.encodeRosters(ref, advertised, keysFor, memberOf);
    for (const index of [advertised[0]!, advertised[1]!, advertised[42]!, advertised[n - 1]!]) {
      const ev = rosters(index);
      expect("encoded" in ev).toBe(true);
      const got = decode((ev as { encoded: Buffer }).encoded);
      const mine = keysFor(index);
      const want = decode(serialize({ roster: { ref, advertised, keys: mine.map((k) => ({ ...k, cPk: Buffer.from(k.cPk), sPk: Buffer.from(k.sPk), signature: Buffer.from(k.signature) })), members: mine.map((k) => memberOf(k.index)) } }));
      expect(got).toEqual(want);
      expect(got.keys).toHaveLength(5);
      // One proof per advertisement, for the same indices in the same order.
      expect(got.members.map((m) => Number(m.split(":")[0]))).toEqual(mine.map((k) => k.index));
      expect(got.advertised).toEqual(advertised);
    }
  });

  it("without an encoder each device gets the plain event", () => {
    const ev = new DeviceHub().encodeRosters(ref, advertised, keysFor, memberOf)(advertised[5]!) as ServerEvent;
    expect(ev.roster?.advertised).toEqual(advertised);
    expect(ev.roster?.keys?.map((k) => k.index)).toEqual(keysFor(advertised[5]!).map((k) => k.index));
    expect(ev.roster?.members).toEqual(keysFor(advertised[5]!).map((k) => memberOf(k.index)));
  });
});

describe("per-device unmasking requests", () => {
  const survivors = advertised.filter((_, i) => i % 7 !== 0);
  const dropouts = advertised.filter((_, i) => i % 7 === 0);
  const signatures = survivors.map((index) => ({ index, signature: randomBytes(64) }));
  const signersFor = (index: number): number[] => keysFor(index).map((k) => k.index);
  const decodeUnmask = (b: Buffer) => {
    const u = (subscribe.responseDeserialize(b) as ServerEvent).unmask as { ref: unknown; survivors: number[]; dropouts: number[]; signatures: { index: number; signature: Buffer }[] };
    return { ref: u.ref, survivors: u.survivors, dropouts: u.dropouts, signatures: u.signatures.map((s) => `${s.index}:${hex(s.signature)}`) };
  };

  it("each device's bytes decode to the sets and only its neighbourhood's signatures", () => {
    const hub = new DeviceHub();
    hub.encoder = serialize;
    const requests = hub.encodeUnmaskRequests(ref, survivors, dropouts, signatures, signersFor);
    for (const index of [survivors[0]!, survivors[10]!, survivors.at(-1)!]) {
      const got = decodeUnmask((requests(index) as { encoded: Buffer }).encoded);
      const mine = signatures.filter((s) => signersFor(index).includes(s.index)).map((s) => ({ index: s.index, signature: Buffer.from(s.signature) }));
      expect(got).toEqual(decodeUnmask(serialize({ unmask: { ref, survivors, dropouts, signatures: mine } })));
      expect(got.survivors).toEqual(survivors);
      expect(got.signatures.length).toBe(mine.length);
      expect(mine.length).toBeGreaterThan(0);
    }
  });
});
