/**
 * Test support: a device in its own process (`node --import tsx test/support/device-process.ts
 * '<FleetDeviceOptions JSON>'`), so a test can SIGKILL it mid-round. Prints one line
 * `{"deviceId": …}` on stdout once enrolled and subscribed.
 */
import { startFleetDevice, type FleetDeviceOptions } from "./fleet-device.ts";

const opts = JSON.parse(process.argv[2] ?? "{}") as FleetDeviceOptions;
const dev = await startFleetDevice(opts);
process.stdout.write(JSON.stringify({ deviceId: dev.deviceId }) + "\n");
process.on("SIGTERM", () => {
  dev.stop();
  process.exit(0);
});
