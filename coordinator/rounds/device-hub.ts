/**
 * Devices currently connected through their Subscribe stream. The engine selects cohorts
 * among the eligible ones and pushes phase messages; a closed stream is reported so that the
 * active round can drop the device at once instead of waiting for the phase deadline.
 */
import { EventEmitter } from "node:events";
import type { ServerEvent } from "../../shared/proto-gen/tacit/v1/ServerEvent.ts";
import { encodeRetryWindow, RETRY_WINDOW_KEY, retryWindowFor, type RetryWindow } from "../../shared/transport/retry-window.ts";
import type { RoundInvite } from "../../shared/proto-gen/tacit/v1/RoundInvite.ts";
import type { RoundRef } from "../../shared/proto-gen/tacit/v1/RoundRef.ts";
import type { CohortProof } from "../../shared/proto-gen/tacit/v1/CohortProof.ts";
import { wireAdvertisedKeys, type AdvertisedKeys } from "../../shared/secagg/index.ts";

/** ServerEvent.invite, .roster and .unmask are fields 1, 2 and 4 (all length-delimited). */
const INVITE_TAG = (1 << 3) | 2;
const ROSTER_TAG = (2 << 3) | 2;
const UNMASK_TAG = (4 << 3) | 2;

function varint(n: number): number[] {
  const out: number[] = [];
  let v = n >>> 0;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return out;
}

/** Reads a varint at `pos`; returns [value, next position] or undefined past the end. */
function readVarint(b: Buffer, pos: number): [number, number] | undefined {
  let v = 0;
  for (let shift = 0; pos < b.length && shift < 35; shift += 7) {
    const byte = b[pos++]!;
    v += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [v, pos];
  }
  return undefined;
}

export interface DeviceStream {
  /** A ServerEvent, or one already serialized (see `encodeOnce`). */
  write(ev: ServerEvent | Buffer): boolean;
  /** Ends the stream; `trailers` travel with its status (e.g. the retry window). */
  end(trailers?: Record<string, string>): void;
}

/** A ServerEvent serialized once to be sent to many devices (a roster, an unmasking request). */
export interface EncodedEvent {
  readonly encoded: Buffer;
}

interface Connection {
  stream: DeviceStream;
  eligible: boolean;
  connectedAt: number;
}

export class DeviceHub extends EventEmitter<{ disconnect: [deviceId: string]; connect: [deviceId: string] }> {
  private readonly connections = new Map<string, Connection>();
  /**
   * Serializes a ServerEvent as the Subscribe stream would (set by the gRPC layer). A message
   * every device of a large cohort receives is then encoded once, not once per device.
   */
  encoder: ((ev: ServerEvent) => Buffer) | undefined;

  encodeOnce(ev: ServerEvent): ServerEvent | EncodedEvent {
    return this.encoder ? { encoded: this.encoder(ev) } : ev;
  }

  /**
   * The invitations of one round, which differ only in the device's cohort index and the proof
   * of its membership (O(log n)): the shared part (config JSON, signature, checkpoint) is
   * serialized once and each device's message is that body with its own fields appended
   * (protobuf fields may come in any order), one memory copy instead of one protobuf encoding of
   * the checkpoint per device.
   */
  encodeInvites(shared: Omit<RoundInvite, "index" | "cohortPath">, cohortPath: (index: number) => Buffer[]): (index: number) => ServerEvent | EncodedEvent {
    const own = (index: number): RoundInvite => ({ index, cohortPath: cohortPath(index) });
    const perDevice = (index: number): ServerEvent => ({ invite: { ...shared, ...own(index) } });
    const spliced = this.spliced(INVITE_TAG, { invite: { ...shared } }, (index: number) => ({ invite: own(index) }), (index) => index, false);
    if (spliced) return (index) => spliced([index]);
    return this.encoder ? (index) => this.encodeOnce(perDevice(index)) : perDevice;
  }

  /**
   * Per-device messages made of one shared part and a few of many pieces (each device's own
   * selection): the shared part is serialized once and each piece once; a device's message is
   * the shared body followed by its pieces' fields (protobuf repeated fields may come in several
   * runs). `tag` is the ServerEvent field (length-delimited). A piece shared by many devices is
   * serialized once (`reuse`); one only its own device gets is not kept. Undefined without an
   * encoder or when the serializer's output is not the bare field we expect.
   */
  private spliced<P>(tag: number, shared: ServerEvent, piece: (p: P) => ServerEvent, keyOf: (p: P) => number, reuse = true): ((pieces: P[]) => EncodedEvent) | undefined {
    if (!this.encoder) return undefined;
    const body = (ev: ServerEvent): Buffer | undefined => {
      const whole = this.encoder!(ev);
      const len = whole[0] === tag ? readVarint(whole, 1) : undefined;
      return len && len[1] + len[0] === whole.length ? whole.subarray(len[1]) : undefined;
    };
    const head = body(shared);
    if (!head) return undefined;
    const fields = new Map<number, Buffer>();
    const fieldOf = (p: P): Buffer => {
      let f = fields.get(keyOf(p));
      if (!f) {
        f = body(piece(p));
        if (!f) throw new Error("a per-device piece did not serialize as one field");
        if (reuse) fields.set(keyOf(p), f);
      }
      return f;
    };
    return (pieces) => {
      const parts = [head, ...pieces.map(fieldOf)];
      const length = parts.reduce((a, p) => a + p.length, 0);
      return { encoded: Buffer.concat([Buffer.from([tag, ...varint(length)]), ...parts]) };
    };
  }

  /**
   * The rosters of one round's ShareKeys phase. Each device gets the list of every advertiser
   * (the neighbour graph is built over it) and only the advertisements it uses, `keysFor(index)`
   * — its own and its neighbours' — instead of all n (at n = 3,000 the full roster was ≈ 0.4 MB
   * per device, 1.2 GB per round), each with the identity key the signed cohort commits to for
   * its index and the proof of it, `memberOf(index)`.
   */
  encodeRosters(ref: RoundRef, advertised: number[], keysFor: (index: number) => AdvertisedKeys[], memberOf: (index: number) => CohortProof): (index: number) => ServerEvent | EncodedEvent {
    const wire = wireAdvertisedKeys;
    const perDevice = (index: number): ServerEvent => {
      const keys = keysFor(index);
      return { roster: { ref, advertised, keys: keys.map(wire), members: keys.map((k) => memberOf(k.index)) } };
    };
    const piece = (k: AdvertisedKeys): ServerEvent => ({ roster: { keys: [wire(k)], members: [memberOf(k.index)] } });
    const spliced = this.spliced(ROSTER_TAG, { roster: { ref, advertised, keys: [] } }, piece, (k) => k.index);
    if (spliced) return (index) => spliced(keysFor(index));
    return this.encoder ? (index) => this.encodeOnce(perDevice(index)) : perDevice;
  }

  /**
   * The unmasking requests: the survivor and dropout sets for everyone, and for each device only
   * the survivor-set signatures it checks — those of its neighbourhood, `signersFor(index)` —
   * instead of all n (≈ 0.2 MB per device at n = 3,000).
   */
  encodeUnmaskRequests(ref: RoundRef, survivors: number[], dropouts: number[], signatures: { index: number; signature: Uint8Array }[], signersFor: (index: number) => number[]): (index: number) => ServerEvent | EncodedEvent {
    const byIndex = new Map(signatures.map((s) => [s.index, { index: s.index, signature: Buffer.from(s.signature) }]));
    const mine = (index: number): { index: number; signature: Buffer }[] => signersFor(index).flatMap((i) => (byIndex.has(i) ? [byIndex.get(i)!] : []));
    const perDevice = (index: number): ServerEvent => ({ unmask: { ref, survivors, dropouts, signatures: mine(index) } });
    const spliced = this.spliced(UNMASK_TAG, { unmask: { ref, survivors, dropouts, signatures: [] } }, (s: { index: number; signature: Buffer }) => ({ unmask: { signatures: [s] } }), (s) => s.index);
    if (spliced) return (index) => spliced(mine(index));
    return this.encoder ? (index) => this.encodeOnce(perDevice(index)) : perDevice;
  }

  connect(deviceId: string, stream: DeviceStream, eligible: boolean): void {
    const previous = this.connections.get(deviceId);
    // A device reconnecting replaces its old stream (e.g. after a network blip).
    if (previous && previous.stream !== stream) previous.stream.end();
    this.connections.set(deviceId, { stream, eligible, connectedAt: Date.now() });
    this.emit("connect", deviceId);
  }

  /** Forgets the device if `stream` is still its current one; true if it did (false: already gone, or replaced by a reconnect). */
  disconnect(deviceId: string, stream: DeviceStream): boolean {
    const current = this.connections.get(deviceId);
    if (current?.stream !== stream) return false;
    this.connections.delete(deviceId);
    this.emit("disconnect", deviceId);
    return true;
  }

  /** Ends the device's stream and forgets it: a deregistered device is never sampled again. */
  remove(deviceId: string): void {
    const c = this.connections.get(deviceId);
    if (!c) return;
    this.connections.delete(deviceId);
    c.stream.end();
    this.emit("disconnect", deviceId);
  }

  isConnected(deviceId: string): boolean {
    return this.connections.has(deviceId);
  }

  eligibleDevices(): string[] {
    return [...this.connections].filter(([, c]) => c.eligible).map(([id]) => id);
  }

  /** False when the device is not connected, or its stream refused the message (a slow reader, dropped). */
  send(deviceId: string, ev: ServerEvent | EncodedEvent): boolean {
    const c = this.connections.get(deviceId);
    if (!c) return false;
    return c.stream.write("encoded" in ev ? ev.encoded : ev);
  }

  /**
   * Ends every stream (the coordinator is stopping or handing over) and asks the devices to come
   * back spread over a window sized to how many they are, not all at once.
   */
  closeAll(window: RetryWindow = retryWindowFor(this.connections.size)): void {
    const trailers = { [RETRY_WINDOW_KEY]: encodeRetryWindow(window) };
    for (const c of this.connections.values()) c.stream.end(trailers);
    this.connections.clear();
  }
}
