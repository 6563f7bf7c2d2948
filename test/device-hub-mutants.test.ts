/**
 * DeviceHub survivors of the coordinator/rounds mutation run (issue #16): the spliced encodings
 * are byte for byte the shared body followed by each piece's field body under one length prefix
 * (checked against a splice computed here, across the one-byte/two-byte length boundary); only
 * pieces shared by several devices are kept (rosters, unmasking requests), not invitations;
 * serializer outputs that are not one bare field of the expected tag fall back to the
 * serializer's own per-device bytes; and the connection bookkeeping (connect, remove, closeAll).
 */
import { describe, expect, it } from "vitest";
import { DeviceHub } from "../coordinator/rounds/device-hub.ts";
import { loadTacitProto } from "../shared/transport/proto.ts";
import type { ServerEvent } from "../shared/proto-gen/tacit/v1/ServerEvent.ts";
import type { AdvertisedKeys } from "../shared/secagg/index.ts";
import { wireAdvertisedKeys } from "../shared/secagg/index.ts";

const subscribe = loadTacitProto().tacit.v1.Rounds.service.Subscribe;
const serialize = (ev: ServerEvent): Buffer => subscribe.responseSerialize(ev);
const INVITE = 0x0a;
const ROSTER = 0x12;
const UNMASK = 0x22;

/** Minimal varint, written independently of the hub's. */
function varintBytes(n: number): number[] {
  const out: number[] = [];
  while (n > 127) {
    out.push((n % 128) + 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}
/** The body of a serialized one-field event (after its tag and length), checking it is exactly that. */
function fieldBody(b: Buffer, tag: number): Buffer {
  expect(b[0]).toBe(tag);
  let len = 0;
  let pos = 1;
  for (let mul = 1; ; mul *= 128) {
    const byte = b[pos++]!;
    len += (byte & 0x7f) * mul;
    if (byte < 0x80) break;
  }
  expect(pos + len).toBe(b.length);
  return b.subarray(pos);
}
/** What the hub must send: one field `tag` holding the shared body then every piece's body. */
function splice(tag: number, shared: ServerEvent, pieces: ServerEvent[]): Buffer {
  const parts = [shared, ...pieces].map((ev) => fieldBody(serialize(ev), tag));
  const length = parts.reduce((a, p) => a + p.length, 0);
  return Buffer.concat([Buffer.from([tag, ...varintBytes(length)]), ...parts]);
}
const encodedOf = (ev: ServerEvent | { encoded: Buffer }): Buffer => {
  expect("encoded" in ev).toBe(true);
  return (ev as { encoded: Buffer }).encoded;
};
/** A hub whose encoder is `enc` and records every event it is given. */
function hubWith(enc: (ev: ServerEvent) => Buffer = serialize): { hub: DeviceHub; seen: ServerEvent[] } {
  const hub = new DeviceHub();
  const seen: ServerEvent[] = [];
  hub.encoder = (ev) => {
    seen.push(ev);
    return enc(ev);
  };
  return { hub, seen };
}

const pathOf = (index: number): Buffer[] => [Buffer.alloc(32, index % 256)];
const ref = { runId: "run-m", round: 3 };
const adv = [1, 2, 3, 4, 5, 6];
const keyOf = (index: number): AdvertisedKeys => ({ index, cPk: Buffer.alloc(32, index), sPk: Buffer.alloc(32, index + 100), selfMaskCommitment: Buffer.alloc(32, index + 50), signature: Buffer.alloc(64, index + 7) });
const keysFor = (index: number): AdvertisedKeys[] => [index, (index % 6) + 1].sort((a, b) => a - b).map(keyOf);
const memberOf = (index: number) => ({ index, identityPublicKey: Buffer.alloc(32, index + 1), path: [Buffer.alloc(32, index + 2)] });
const sigOf = (index: number) => ({ index, signature: Buffer.alloc(64, index + 9) });
const signatures = [1, 2, 3, 4, 5].map(sigOf); // 6 dropped out
const signersFor = (index: number): number[] => [index, (index % 6) + 1, 6];

describe("spliced invitations", () => {
  it("are the shared body then the device's own fields, under a length prefix of the right size (127, 128, 129 … bytes)", () => {
    const totals = new Set<number>();
    for (let size = 0; size < 120; size++) {
      const shared = { configJson: "x".repeat(size), configSignature: Buffer.alloc(8, 1), checkpoint: Buffer.alloc(4, 2) };
      const { hub } = hubWith();
      const invites = hub.encodeInvites(shared, pathOf);
      const got = encodedOf(invites(9));
      const want = splice(INVITE, { invite: shared }, [{ invite: { index: 9, cohortPath: pathOf(9) } }]);
      expect(got.equals(want)).toBe(true);
      totals.add(fieldBody(want, INVITE).length);
      const inv = (subscribe.responseDeserialize(got) as ServerEvent).invite!;
      expect([inv.configJson, inv.index]).toEqual(["x".repeat(size), 9]);
    }
    expect(totals.has(127) && totals.has(128) && totals.has(129)).toBe(true);
  });

  it("serialize the shared part once and each device's own fields when asked, never kept (each device gets one)", () => {
    let paths = 0;
    const { hub, seen } = hubWith();
    const shared = { configJson: "{}", configSignature: Buffer.alloc(8, 1), checkpoint: Buffer.alloc(16, 2) };
    const invites = hub.encodeInvites(shared, (i) => (paths++, pathOf(i)));
    expect(seen).toEqual([{ invite: shared }]);
    const first = encodedOf(invites(5));
    const again = encodedOf(invites(5));
    expect(first.equals(again)).toBe(true);
    expect(paths).toBe(2);
    expect(seen.length).toBe(3);
    expect(seen.slice(1)).toEqual([{ invite: { index: 5, cohortPath: pathOf(5) } }, { invite: { index: 5, cohortPath: pathOf(5) } }]);
  });

  it("refuse a device piece that does not serialize as one bare field", () => {
    const shared = { configJson: "{}", configSignature: Buffer.alloc(8, 1), checkpoint: Buffer.alloc(16, 2) };
    const { hub } = hubWith((ev) => (ev.invite?.index !== undefined ? Buffer.concat([serialize(ev), serialize({ heartbeat: { timeMs: 1 } })]) : serialize(ev)));
    const invites = hub.encodeInvites(shared, pathOf);
    expect(() => invites(4)).toThrow("a per-device piece did not serialize as one field");
  });

  describe("fall back to the serializer's own bytes per device when its output is not one bare field", () => {
    const shared = { configJson: "{}", configSignature: Buffer.alloc(8, 1), checkpoint: Buffer.alloc(16, 2) };
    const full = { invite: { ...shared, index: 7, cohortPath: pathOf(7) } };
    const cases: [string, (ev: ServerEvent) => Buffer][] = [
      // Another length-delimited field number (3) with an otherwise exact layout.
      ["another tag", (ev) => Buffer.concat([Buffer.from([0x1a]), serialize(ev).subarray(1)])],
      // The field followed by something else.
      ["trailing bytes", (ev) => Buffer.concat([serialize(ev), serialize({ heartbeat: { timeMs: 1 } })])],
      // The shared part's length as a six-byte varint (more than the five the hub reads): no split.
      ["an over-long length", (ev) => (ev.invite?.index === undefined ? Buffer.from([INVITE, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]) : serialize(ev))],
    ];
    for (const [name, enc] of cases) {
      it(name, () => {
        const { hub } = hubWith(enc);
        const got = encodedOf(hub.encodeInvites(shared, pathOf)(7));
        expect(got.equals(enc(full))).toBe(true);
      });
    }
  });
});

describe("spliced rosters", () => {
  it("are the shared roster body then each neighbour's key and proof, each piece serialized once for all devices", () => {
    const { hub, seen } = hubWith();
    const rosters = hub.encodeRosters(ref, adv, keysFor, memberOf);
    const piece = (k: AdvertisedKeys): ServerEvent => ({ roster: { keys: [wireAdvertisedKeys(k)], members: [memberOf(k.index)] } });
    for (const index of [1, 2, 6]) {
      const got = encodedOf(rosters(index));
      expect(got.equals(splice(ROSTER, { roster: { ref, advertised: adv, keys: [] } }, keysFor(index).map(piece)))).toBe(true);
    }
    // Shared part, then keys 1, 2 (device 1), 3 (device 2), 6 (device 6 with 1): four pieces.
    expect(seen.length).toBe(1 + 4);
    expect(seen.slice(1).map((ev) => ev.roster?.keys?.[0]?.index)).toEqual([1, 2, 3, 6]);
  });

  it("fall back to the serializer's own bytes per device when its output is not one bare field", () => {
    const enc = (ev: ServerEvent) => Buffer.concat([serialize(ev), serialize({ heartbeat: { timeMs: 1 } })]);
    const { hub } = hubWith(enc);
    const got = encodedOf(hub.encodeRosters(ref, adv, keysFor, memberOf)(3));
    const keys = keysFor(3);
    expect(got.equals(enc({ roster: { ref, advertised: adv, keys: keys.map(wireAdvertisedKeys), members: keys.map((k) => memberOf(k.index)) } }))).toBe(true);
  });
});

describe("spliced unmasking requests", () => {
  const survivors = [1, 2, 3, 4, 5];
  const dropouts = [6];

  it("are the sets then each neighbour's signature, each signature serialized once for all devices", () => {
    const { hub, seen } = hubWith();
    const requests = hub.encodeUnmaskRequests(ref, survivors, dropouts, signatures, signersFor);
    for (const index of [1, 2]) {
      const mine = signersFor(index).filter((i) => i !== 6).map(sigOf);
      expect(encodedOf(requests(index)).equals(splice(UNMASK, { unmask: { ref, survivors, dropouts, signatures: [] } }, mine.map((s) => ({ unmask: { signatures: [s] } }))))).toBe(true);
    }
    // Shared part, then signatures 1, 2 (device 1) and 3 (device 2).
    expect(seen.length).toBe(1 + 3);
    expect(seen.slice(1).map((ev) => ev.unmask?.signatures?.[0]?.index)).toEqual([1, 2, 3]);
  });

  it("are the plain event without an encoder, the serializer's bytes when it does not give one bare field", () => {
    const plain = new DeviceHub().encodeUnmaskRequests(ref, survivors, dropouts, signatures, signersFor)(2) as ServerEvent;
    expect(plain).toEqual({ unmask: { ref, survivors, dropouts, signatures: [sigOf(2), sigOf(3)] } });
    const enc = (ev: ServerEvent) => Buffer.concat([serialize(ev), serialize({ heartbeat: { timeMs: 1 } })]);
    const { hub } = hubWith(enc);
    const got = encodedOf(hub.encodeUnmaskRequests(ref, survivors, dropouts, signatures, signersFor)(2));
    expect(got.equals(enc({ unmask: { ref, survivors, dropouts, signatures: [sigOf(2), sigOf(3)] } }))).toBe(true);
  });
});

describe("connections", () => {
  const recording = () => {
    const ends: (Record<string, string> | undefined)[] = [];
    return { ends, stream: { write: () => true, end: (t?: Record<string, string>) => void ends.push(t) } };
  };

  it("a connect announces the device; the same stream connecting again is not ended", () => {
    const hub = new DeviceHub();
    const joined: string[] = [];
    hub.on("connect", (id) => joined.push(id));
    const a = recording();
    hub.connect("dev-a", a.stream, true);
    hub.connect("dev-a", a.stream, false);
    expect(a.ends).toEqual([]);
    expect(joined).toEqual(["dev-a", "dev-a"]);
    expect(hub.eligibleDevices()).toEqual([]);
  });

  it("remove ends the device's stream, forgets it and announces it; an unknown device is a no-op", () => {
    const hub = new DeviceHub();
    const lost: string[] = [];
    hub.on("disconnect", (id) => lost.push(id));
    const a = recording();
    hub.connect("dev-a", a.stream, true);
    hub.remove("dev-b");
    expect(lost).toEqual([]);
    expect(hub.isConnected("dev-a")).toBe(true);
    hub.remove("dev-a");
    expect(a.ends).toEqual([undefined]);
    expect(hub.isConnected("dev-a")).toBe(false);
    expect(hub.send("dev-a", { heartbeat: { timeMs: 1 } })).toBe(false);
    expect(lost).toEqual(["dev-a"]);
  });

  it("closeAll ends every stream with the retry window sized to the fleet (or the one given) and forgets them", () => {
    const hub = new DeviceHub();
    const a = recording();
    const b = recording();
    hub.connect("dev-a", a.stream, true);
    hub.connect("dev-b", b.stream, true);
    hub.closeAll();
    expect(a.ends).toEqual([{ "tacit-retry-window-ms": "2000-10000" }]);
    expect(b.ends).toEqual([{ "tacit-retry-window-ms": "2000-10000" }]);
    expect(hub.isConnected("dev-a") || hub.isConnected("dev-b")).toBe(false);
    const c = recording();
    hub.connect("dev-c", c.stream, true);
    hub.closeAll({ minMs: 1500, maxMs: 4000 });
    expect(c.ends).toEqual([{ "tacit-retry-window-ms": "1500-4000" }]);
  });
});
