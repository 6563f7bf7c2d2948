/**
 * One SecAgg / SecAgg+ round in process with real crypto, timing every device's and the
 * coordinator's calls separately, and counting the primitive operations each side performed
 * (so bench:limits can price the same operations at their bare cost). Shared by
 * bench:secagg and bench:limits.
 */
import { randomBytes, randomInt } from "node:crypto";
import { generateEd25519 } from "../shared/crypto/index.ts";
import { addInPlace, fromData, zeros, type ModularVector } from "../shared/modular/index.ts";
import { chooseParams, SecAggDevice, SecAggServer, SHARE_BYTES, type SecAggConfig } from "../shared/secagg/index.ts";

export const BITS = 32;

/** CPU milliseconds of this process (user + system): robust to other processes on a shared machine. */
export function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export interface RoundOptions {
  n: number;
  d: number;
  dropout: number;
  mode: "full" | "secagg+";
  /** "random": a dropout leaves at a random phase; "after-share": after ShareKeys (the costliest for the coordinator). */
  dropAt: "random" | "after-share";
  /** Time with CPU time (bench:limits) or wall time (bench:secagg's historical figures). */
  clock?: () => number;
}

export interface RoundResult {
  k: number;
  t: number;
  /** Mean compute per participating device (ms), over the four phases. */
  deviceMs: number;
  serverMs: number;
  unmaskMs: number;
  plainMs: number;
  bytesRatio: number;
  ok: boolean;
  /**
   * Mean per participating device: neighbours (signature checks, c-agreements, shares sealed),
   * pairwise masks (s-agreements, shares opened) and masks expanded and added (self + pairwise).
   */
  device: { neighbours: number; pairMasks: number; masks: number };
  /** Coordinator: signatures verified, masked inputs summed, self-masks removed, pairwise masks removed. */
  server: { verifies: number; inputs: number; selfMasks: number; pairMasks: number; dropouts: number };
}

function randomVector(d: number): ModularVector {
  const w = new Uint32Array(d);
  new Uint8Array(w.buffer).set(randomBytes(d * 4));
  return fromData(BITS, d, w);
}

export function runRound(o: RoundOptions): RoundResult {
  const { n, d, dropout, mode } = o;
  const clock = o.clock ?? ((): number => performance.now());
  const p = mode === "full" ? { threshold: Math.floor((n - 1) / 2) + 1, degree: n - 1, mode } : chooseParams({ cohortSize: n, dropoutFraction: Math.max(dropout, 0.1), corruptFraction: 0.1, minSurvivors: 2, fullGraphBelow: 0 });
  const cfg: SecAggConfig = { runId: "bench", round: 0, bits: BITS, vectorLength: d, threshold: p.threshold, degree: p.degree, roundSeed: randomBytes(32), minSurvivors: 2 };
  const ids = Array.from({ length: n }, () => generateEd25519());
  const inputs = Array.from({ length: n }, () => randomVector(d));
  const dropPhase = new Map<number, number>();
  for (let i = 0; i < n; i++) if (Math.random() < dropout) dropPhase.set(i, o.dropAt === "random" ? randomInt(4) : 2);
  const alive = (i: number, phase: number): boolean => !(dropPhase.has(i) && dropPhase.get(i)! <= phase);

  // Plain summation baseline of the same survivors' vectors.
  const t0 = clock();
  const plain = zeros(BITS, d);
  for (let i = 0; i < n; i++) if (alive(i, 2)) addInPlace(plain, inputs[i]!);
  const plainMs = clock() - t0;

  const devMs = new Float64Array(n);
  const bytes = new Float64Array(n);
  const neighbours = new Float64Array(n);
  const opened = new Float64Array(n);
  const masks = new Float64Array(n);
  let serverMs = 0;
  const timeDev = <T>(i: number, f: () => T): T => {
    const s = clock();
    const r = f();
    devMs[i]! += clock() - s;
    return r;
  };
  const timeSrv = <T>(f: () => T): T => {
    const s = clock();
    const r = f();
    serverMs += clock() - s;
    return r;
  };
  const devices = ids.map((k, i) => new SecAggDevice(cfg, i, { privateKey: k.privateKey }));
  const server = new SecAggServer(cfg, devices.map((_, i) => i), new Map(ids.map((k, i) => [i, k.publicKey])));
  let verifies = 0;
  for (let i = 0; i < n; i++) {
    if (!alive(i, 0)) continue;
    const a = timeDev(i, () => devices[i]!.advertiseKeys());
    bytes[i]! += 96;
    timeSrv(() => server.receiveKeys(a));
    verifies++;
  }
  const roster = timeSrv(() => server.closeAdvertise()).map((k) => ({ ...k, identityPublicKey: ids[k.index]!.publicRaw }));
  for (let i = 0; i < n; i++) {
    if (!alive(i, 1)) continue;
    const s = timeDev(i, () => devices[i]!.shareKeys(roster));
    neighbours[i] = s.length;
    bytes[i]! += s.reduce((a, x) => a + x.ciphertext.length + 8, 0);
    timeSrv(() => server.receiveShares(i, s));
  }
  const inboxes = timeSrv(() => server.closeShareKeys());
  let inputsSummed = 0;
  for (let i = 0; i < n; i++) {
    if (!alive(i, 2)) continue;
    const inbox = inboxes.get(i) ?? [];
    opened[i] = inbox.length;
    masks[i] = 1 + inbox.length;
    const y = timeDev(i, () => devices[i]!.maskInput(inputs[i]!, inbox));
    bytes[i]! += d * 4;
    timeSrv(() => server.receiveMaskedInput(i, y));
    inputsSummed++;
  }
  const shown = timeSrv(() => server.closeMaskedInput());
  // ConsistencyCheck: every survivor signs the survivor set it was shown (Bonawitz et al. CCS'17).
  for (const i of shown.survivors) {
    const sig = timeDev(i, () => devices[i]!.signSurvivors(shown.survivors));
    bytes[i]! += 64;
    timeSrv(() => server.receiveConsistency(sig));
  }
  const req = timeSrv(() => server.closeConsistency());
  for (let i = 0; i < n; i++) {
    if (!alive(i, 3)) continue;
    const u = timeDev(i, () => devices[i]!.unmask(req));
    bytes[i]! += (u.selfMaskShares.length + u.secretKeyShares.length) * (SHARE_BYTES + 4);
    timeSrv(() => server.receiveUnmask(u));
  }
  const u0 = clock();
  const sum = server.finish();
  const unmaskMs = clock() - u0;
  serverMs += unmaskMs;
  const participants = [...Array(n).keys()].filter((i) => alive(i, 1));
  const mean = (a: Float64Array): number => participants.reduce((s, i) => s + a[i]!, 0) / participants.length;
  // Pairwise masks the coordinator regenerates: for each dropout v, one per surviving neighbour.
  const survivorSet = new Set(req.survivors);
  let serverPairMasks = 0;
  for (const v of req.dropouts) {
    const box = inboxes.get(v) ?? [];
    // v's neighbours that shared keys sent v a share; those that survived masked with v.
    for (const s of box) if (survivorSet.has(s.from)) serverPairMasks++;
  }
  return {
    k: p.degree,
    t: p.threshold,
    deviceMs: mean(devMs),
    serverMs,
    unmaskMs,
    plainMs,
    bytesRatio: mean(bytes) / ((d * BITS) / 8),
    ok: sum.data.every((w, i) => w === plain.data[i]),
    device: { neighbours: mean(neighbours), pairMasks: mean(opened), masks: mean(masks) },
    server: { verifies, inputs: inputsSummed, selfMasks: req.survivors.length, pairMasks: serverPairMasks, dropouts: req.dropouts.length },
  };
}
