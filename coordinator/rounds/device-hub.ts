/**
 * Devices currently connected through their Subscribe stream. The engine selects cohorts
 * among the eligible ones and pushes phase messages; a closed stream is reported so that the
 * active round can drop the device at once instead of waiting for the phase deadline.
 */
import { EventEmitter } from "node:events";
import type { ServerEvent } from "../../shared/proto-gen/tacit/v1/ServerEvent.ts";

export interface DeviceStream {
  write(ev: ServerEvent): boolean;
  end(): void;
}

interface Connection {
  stream: DeviceStream;
  eligible: boolean;
  connectedAt: number;
}

export class DeviceHub extends EventEmitter<{ disconnect: [deviceId: string]; connect: [deviceId: string] }> {
  private readonly connections = new Map<string, Connection>();

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

  isConnected(deviceId: string): boolean {
    return this.connections.has(deviceId);
  }

  eligibleDevices(): string[] {
    return [...this.connections].filter(([, c]) => c.eligible).map(([id]) => id);
  }

  send(deviceId: string, ev: ServerEvent): boolean {
    const c = this.connections.get(deviceId);
    if (!c) return false;
    c.stream.write(ev);
    return true;
  }

  closeAll(): void {
    for (const c of this.connections.values()) c.stream.end();
    this.connections.clear();
  }
}
