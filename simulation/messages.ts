/** Messages between the simulation's main thread and its device-host worker threads. */
import type { DeviceLimits } from "../client/participant/device-guard.ts";
import type { ParticipantEvent } from "../client/participant/round-participant.ts";

export interface SimDeviceSpec {
  userId: string;
  token: string;
  /**
   * This user's sequence as [time, token] pairs: the training part only, or — when the run
   * evaluates federatedly — the whole sequence, of which the device holds out the most recent
   * part itself (shared/eval/held-out.ts).
   */
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
  /** A device's Subscribe stream failed or ended (it reconnects by itself). */
  | { type: "disconnected"; userId: string; detail: string }
  /** The host thread's event loop was blocked this long (its devices' keepalives waited meanwhile). */
  | { type: "stalled"; hostIndex: number; blockedMs: number }
  | { type: "fatal"; message: string };
