/**
 * Devices currently connected through their Subscribe stream. The engine selects cohorts
 * among the eligible ones and pushes phase messages; a closed stream is reported so that the
 * active round can drop the device at once instead of waiting for the phase deadline.
 */
import { EventEmitter } from "node:events";
import type { ServerEvent } from "../../shared/proto-gen/tacit/v1/ServerEvent.ts";

export interface DeviceStream {
  /** A ServerEvent, or one already serialized (see `encodeOnce`). */
  write(ev: ServerEvent | Buffer): boolean;
  end(): void;
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

  connect(deviceId: string, stream: DeviceStream, eligible: boolean): void {
    const previous = this.connections.get(deviceId);
    // A device reconnecting replaces its old stream (e.g. after a network blip).
    if (previous && previous.stream !== stream) previous.stream.end();
    this.connections.set(deviceId, { stream, eligible, connectedAt: Date.now() });
    this.emit("connect", deviceId);
  }

  disconnect(deviceId: string, stream: DeviceStream): void {
    const current = this.connections.get(deviceId);
    if (current?.stream !== stream) return;
    this.connections.delete(deviceId);
    this.emit("disconnect", deviceId);
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

  send(deviceId: string, ev: ServerEvent | EncodedEvent): boolean {
    const c = this.connections.get(deviceId);
    if (!c) return false;
    c.stream.write("encoded" in ev ? ev.encoded : ev);
    return true;
  }

  closeAll(): void {
    for (const c of this.connections.values()) c.stream.end();
    this.connections.clear();
  }
}
