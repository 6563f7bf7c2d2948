/**
 * Invitations serialized once per round (DeviceHub.encodeInvites): every device's bytes decode,
 * with the real tacit.proto deserializer, to exactly the invitation a per-device encoding gives —
 * the shared body with the device's own index and cohort proof — for indexes across varint
 * lengths; without an encoder, or with one whose output is not a bare invite, each device gets
 * its own full encoding.
 */
import { describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { DeviceHub } from "../coordinator/rounds/device-hub.ts";
import { loadTacitProto } from "../shared/transport/proto.ts";
import type { ServerEvent } from "../shared/proto-gen/tacit/v1/ServerEvent.ts";

const subscribe = loadTacitProto().tacit.v1.Rounds.service.Subscribe;
const serialize = (ev: ServerEvent): Buffer => subscribe.responseSerialize(ev);
/** The decoded invitation, with its byte fields as hex (cheap to compare). */
function decodeInvite(b: Buffer): { configJson: string; configSignature: string; checkpoint: string; index: number; cohortPath: string[] } {
  const inv = (subscribe.responseDeserialize(b) as ServerEvent).invite as { configJson: string; configSignature: Buffer; checkpoint: Buffer; index: number; cohortPath: Buffer[] };
  return { configJson: inv.configJson, configSignature: Buffer.from(inv.configSignature).toString("hex"), checkpoint: Buffer.from(inv.checkpoint).toString("hex"), index: inv.index, cohortPath: inv.cohortPath.map((h) => h.toString("hex")) };
}

const shared = { configJson: JSON.stringify({ cohort: { size: 3000, root: "ab".repeat(32) } }), configSignature: randomBytes(64), checkpoint: randomBytes(20_000) };
/** A stand-in proof per index: distinct per device, of a length that varies with the index. */
const pathOf = (index: number): Buffer[] => Array.from({ length: 1 + (index % 12) }, (_, l) => Buffer.alloc(32, (index + l) % 251));

function bytesOf(ev: ServerEvent | { encoded: Buffer }): Buffer {
  return "encoded" in ev ? (ev as { encoded: Buffer }).encoded : serialize(ev as ServerEvent);
}

describe("invitations serialized once per round", () => {
  it("each device's bytes decode to its own full invitation", () => {
    const hub = new DeviceHub();
    hub.encoder = serialize;
    const invites = hub.encodeInvites(shared, pathOf);
    for (const index of [0, 1, 127, 128, 999, 16_383, 16_384, 2 ** 21 + 5]) {
      const ev = invites(index);
      expect("encoded" in ev).toBe(true);
      const got = decodeInvite(bytesOf(ev));
      const want = decodeInvite(serialize({ invite: { ...shared, index, cohortPath: pathOf(index) } }));
      expect(got.index).toBe(index);
      expect(got.cohortPath).toEqual(pathOf(index).map((h) => h.toString("hex")));
      expect(got.configJson === want.configJson && got.configSignature === want.configSignature && got.checkpoint === want.checkpoint).toBe(true);
    }
  });

  it("falls back to one encoding per device without an encoder or with an unexpected layout", () => {
    const plain = new DeviceHub().encodeInvites(shared, pathOf)(42) as ServerEvent;
    expect(plain.invite?.index).toBe(42);
    expect(plain.invite?.cohortPath).toEqual(pathOf(42));
    const odd = new DeviceHub();
    // A serializer that puts another field first: the shared body cannot be split off.
    odd.encoder = (ev) => Buffer.concat([serialize({ heartbeat: { timeMs: 1 } }), serialize(ev)]);
    const ev = odd.encodeInvites(shared, pathOf)(42);
    const bytes = bytesOf(ev);
    expect(bytes.subarray(serialize({ heartbeat: { timeMs: 1 } }).length).equals(serialize({ invite: { ...shared, index: 42, cohortPath: pathOf(42) } }))).toBe(true);
  });
});

describe("a device's stream ending", () => {
  it("forgets the device only for its current stream, and says whether it did (the coordinator logs only then)", () => {
    const hub = new DeviceHub();
    let ended = 0;
    const stream = () => ({ write: () => true, end: () => void (ended += 1) });
    const lost: string[] = [];
    hub.on("disconnect", (id) => lost.push(id));
    const first = stream();
    const second = stream();
    hub.connect("dev-1", first, true);
    hub.connect("dev-1", second, true); // a reconnect: the old stream is ended
    expect(ended).toBe(1);
    expect(hub.disconnect("dev-1", first)).toBe(false); // the replaced stream closing
    expect(hub.isConnected("dev-1")).toBe(true);
    expect(lost).toEqual([]);
    expect(hub.disconnect("dev-1", second)).toBe(true);
    expect(hub.isConnected("dev-1")).toBe(false);
    expect(hub.disconnect("dev-1", second)).toBe(false); // 'cancelled' then 'close': once
    expect(lost).toEqual(["dev-1"]);
  });
});
