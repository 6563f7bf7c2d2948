/**
 * Test support: one real device (own ed25519 identity, single-use enrollment, signed gRPC over
 * TLS, Subscribe stream that reconnects after a coordinator restart) with its budget record
 * persisted to a file, and a fixed local update after a short "training" delay. Used in-process
 * and by test/support/device-process.ts (a device in its own process, to be SIGKILLed).
 */
import { generateEd25519, privateKeyFromPem } from "../../shared/crypto/index.ts";
import { readFileSync } from "node:fs";
import { CoordinatorClient } from "../../client/transport/coordinator-client.ts";
import { RoundParticipant, type ParticipantEvent } from "../../client/participant/round-participant.ts";
import { BudgetRecord } from "../../client/participant/budget-record.ts";
import { RoundSubscription } from "../../client/transport/round-subscription.ts";

/** A device on a slow link: its round messages leave after `delayMs`. */
class SlowClient extends CoordinatorClient {
  constructor(
    opts: ConstructorParameters<typeof CoordinatorClient>[0],
    private readonly delayMs: number,
  ) {
    super(opts);
  }

  override async unary<Req, Res>(service: "Enrollment" | "Rounds" | "RunControl" | "Ledger", name: string, req: Req, timeoutMs?: number): Promise<Res> {
    if (service === "Rounds" && this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    return super.unary<Req, Res>(service, name, req, timeoutMs);
  }
}

export interface FleetDeviceOptions {
  address: string;
  caFile: string;
  /** Admin key file and id, to create this device's enrollment token. */
  adminKeyFile: string;
  name: string;
  budgetFile: string;
  trainDelayMs?: number;
  /** Latency added before each round message the device sends (keeps every phase observable). */
  rpcDelayMs?: number;
  value?: number;
  onEvent?: (e: ParticipantEvent) => void;
}

export interface FleetDevice {
  name: string;
  deviceId: string;
  budget: BudgetRecord;
  stop(): void;
}

export async function startFleetDevice(o: FleetDeviceOptions): Promise<FleetDevice> {
  const admin = new CoordinatorClient({ address: o.address, caFile: o.caFile, credentials: { keyId: "admin-1", privateKey: privateKeyFromPem(readFileSync(o.adminKeyFile, "utf8")).privateKey } });
  const { token } = await admin.unary<object, { token: string }>("Enrollment", "CreateToken", { ttlSeconds: 600, label: o.name });
  admin.close();
  const identity = generateEd25519();
  const client = new SlowClient({ address: o.address, caFile: o.caFile }, o.rpcDelayMs ?? 0);
  const e = await client.unary<object, { deviceId: string; coordinatorPublicKey: Buffer }>("Enrollment", "Enroll", { token, identityPublicKey: Buffer.from(identity.publicRaw), deviceLabel: o.name });
  client.credentials = { keyId: e.deviceId, privateKey: identity.privateKey };
  const budget = new BudgetRecord(o.budgetFile);
  const participant = new RoundParticipant({
    deviceId: e.deviceId,
    identity,
    coordinatorPublicKey: new Uint8Array(e.coordinatorPublicKey),
    client,
    limits: { maxDeviceEpsilon: Infinity, delta: 1e-5, minNoiseMultiplier: 0, minSurvivors: 2 },
    budget,
    hooks: {
      train: async (cfg) => {
        await new Promise((r) => setTimeout(r, o.trainDelayMs ?? 0));
        return { delta: new Float32Array(cfg.parameterCount).fill(o.value ?? 0.01), loss: 1, examples: 1 };
      },
      ...(o.onEvent ? { onEvent: o.onEvent } : {}),
    },
  });
  const sub = new RoundSubscription({ client, backend: "test", eligible: () => true, onEvent: (ev) => participant.handle(ev), maxBackoffMs: 500 });
  sub.start();
  return {
    name: o.name,
    deviceId: e.deviceId,
    budget,
    stop: () => {
      sub.stop();
      client.close();
    },
  };
}
