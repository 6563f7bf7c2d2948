/**
 * Sends one phase's message to each expected device of the round; a device that is not
 * connected is settled (dropped from the phase) at once instead of holding the gate until its
 * deadline. Resolves when the phase's gate is done.
 */
import type { DeviceHub } from "./device-hub.ts";
import type { ActiveRound } from "./active-round.ts";

export type PhaseMessage = Parameters<DeviceHub["send"]>[1];

export async function fanOut(hub: DeviceHub, active: ActiveRound, indices: readonly number[], message: (index: number) => PhaseMessage): Promise<void> {
  const gate = active.gate!;
  for (const [n, index] of indices.entries()) {
    if (!hub.send(active.deviceByIndex.get(index)!, message(index))) gate.settle(index);
    // Lets the event loop turn every 64 sends, so that a phase fanning out to a thousand devices
    // never starves their RPCs, the HTTP/2 keepalive pings or the BullMQ lock renewal.
    if (n % 64 === 63) await new Promise((r) => setImmediate(r));
  }
  await gate.done;
}
