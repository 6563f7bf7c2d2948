/**
 * A worker thread hosting several simulated devices. Each device is a real client: its own
 * ed25519 identity, enrolled with its own single-use token, its own signed gRPC calls and
 * Subscribe stream over loopback. The devices of one thread share one tfjs model instance
 * and train one at a time (the thread has one core's worth of compute anyway).
 */
import { parentPort, workerData } from "node:worker_threads";
import { randomInt } from "node:crypto";
import { generateEd25519 } from "../shared/crypto/index.ts";
import { initBackend, Trainer, type ModelSpec, type Examples } from "../shared/model/index.ts";
import { evaluateLocally, lastExamples, localSplit } from "../shared/eval/index.ts";
import { localTrainOptions, type RoundConfig } from "../shared/run/index.ts";
import { CoordinatorClient } from "../client/transport/coordinator-client.ts";
import { RoundParticipant, type RoundPhase } from "../client/participant/round-participant.ts";
import { BudgetRecord } from "../client/participant/budget-record.ts";
import { RoundSubscription } from "../client/transport/round-subscription.ts";
import type { HostInit, HostMessage } from "./messages.ts";
import { watchEventLoop } from "../shared/transport/loop-watch.ts";
import { turnTaker } from "./turns.ts";
import { serialQueue } from "./serial-queue.ts";

const init = workerData as HostInit;
const post = (m: HostMessage): void => parentPort!.postMessage(m);
const PHASES: RoundPhase[] = ["advertise", "share", "masked-input", "unmask"];

let trainer: Trainer | undefined;
let trainerSpec = "";

/** One device's message handling per turn of the loop, so the thread keeps answering keepalives (turns.ts). */
const nextTurn = turnTaker();

/** Training and evaluation on this thread's single model instance, one device at a time. */
const exclusive = serialQueue();

function trainerFor(spec: ModelSpec): Trainer {
  const key = JSON.stringify(spec);
  if (!trainer || trainerSpec !== key) {
    trainer?.dispose();
    trainer = new Trainer(spec);
    trainerSpec = key;
  }
  return trainer;
}

async function main(): Promise<void> {
  const backend = await initBackend(init.backend);
  // This thread answers the keepalive pings of all its devices' connections: a long stall here
  // drops them together, which the coordinator cannot tell from laptops going offline.
  watchEventLoop({ warnAfterMs: 2000, onStall: (blockedMs) => post({ type: "stalled", hostIndex: init.hostIndex, blockedMs }) });
  const deviceIds: Record<string, string> = {};
  const examplesCache = new Map<string, { spec: string; ex: Examples; heldOut: Examples }>();

  for (const dev of init.devices) {
    const identity = generateEd25519();
    const client = new CoordinatorClient({ address: init.address, caFile: init.caFile });
    const enrolled = await client.unary<object, { deviceId: string; coordinatorPublicKey: Buffer }>("Enrollment", "Enroll", {
      token: dev.token,
      identityPublicKey: Buffer.from(identity.publicRaw),
      deviceLabel: dev.userId,
    });
    client.credentials = { keyId: enrolled.deviceId, privateKey: identity.privateKey };
    deviceIds[dev.userId] = enrolled.deviceId;
    const sequence = { userId: dev.userId, source: dev.userId, events: dev.events.map(([time, token]) => ({ time, token })) };

    /** Training windows without the held-out slice the run's evaluation keeps back, cached per model. */
    const split = (cfg: RoundConfig): { ex: Examples; heldOut: Examples } => {
      const key = JSON.stringify([cfg.model, cfg.training.heldOutFraction]);
      let cached = examplesCache.get(dev.userId);
      if (!cached || cached.spec !== key) {
        const s = localSplit(sequence, cfg.model, cfg.training.heldOutFraction);
        cached = { spec: key, ex: s.train, heldOut: s.heldOut };
        examplesCache.set(dev.userId, cached);
      }
      return cached;
    };
    let subscription: RoundSubscription | undefined;
    const participant = new RoundParticipant({
      deviceId: enrolled.deviceId,
      identity,
      coordinatorPublicKey: new Uint8Array(enrolled.coordinatorPublicKey),
      client,
      limits: init.limits,
      budget: new BudgetRecord(),
      hooks: {
        train: (cfg: RoundConfig, weights: Float32Array, signal?: AbortSignal) =>
          exclusive(async () => {
            const cached = split(cfg);
            const t = trainerFor(cfg.model);
            t.setWeights(weights);
            const res = await t.train(cached.ex, localTrainOptions(cfg));
            const after = t.getWeights();
            const delta = new Float32Array(after.length);
            for (let i = 0; i < after.length; i++) delta[i] = after[i]! - weights[i]!;
            return { delta, loss: res.loss, examples: cached.ex.count };
          }, signal),
        // Counts only leave the device; the held-out slice is never in `split(cfg).ex`.
        evaluate: (cfg: RoundConfig, weights: Float32Array, signal?: AbortSignal) => exclusive(async () => evaluateLocally(trainerFor(cfg.model), weights, lastExamples(split(cfg).heldOut, cfg.evaluation!.maxExamplesPerDevice)), signal),
        dropAt: () => (init.dropout > 0 && Math.random() < init.dropout ? PHASES[randomInt(PHASES.length)] : undefined),
        // The laptop goes offline: the stream closes now and comes back a moment later.
        onDrop: () => subscription?.goOffline(300),
        onEvent: (event) => post({ type: "event", userId: dev.userId, deviceId: enrolled.deviceId, event }),
      },
    });
    subscription = new RoundSubscription({
      client, backend, eligible: () => true, onEvent: (ev) => nextTurn().then(() => participant.handle(ev)), onArrival: (ev) => participant.arrived(ev),
      onStatus: (st) => {
        if (!st.connected) post({ type: "disconnected", userId: dev.userId, detail: st.detail ?? "" });
      },
    });
    subscription.start();
  }
  post({ type: "ready", backend, deviceIds });
}

main().catch((err: unknown) => post({ type: "fatal", message: (err as Error).message }));
