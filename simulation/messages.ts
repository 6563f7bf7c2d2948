/** Messages between the simulation's main thread and its device-host worker threads. */
import type { DeviceLimits } from "../client/participant/device-guard.ts";
import type { ParticipantEvent } from "../client/participant/round-participant.ts";

export interface SimDeviceSpec {
  userId: string;
  token: string;
  /** Training sequence of this user (already split), as [time, token] pairs. */
  events: [number, string][];
}

export interface HostInit {
  address: string;
  caFile: string;
  devices: SimDeviceSpec[];
  limits: DeviceLimits;
  dropout: number;
  backend?: "tensorflow" | "wasm" | "cpu";
  hostIndex: number;
}

export type HostMessage =
  | { type: "ready"; backend: string; deviceIds: Record<string, string> }
  | { type: "event"; userId: string; deviceId: string; event: ParticipantEvent }
  | { type: "fatal"; message: string };
