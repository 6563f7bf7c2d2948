/**
 * `npm run bench:limits [-- --json] [-- --quick]`: every crypto/DP hot path against the bare
 * primitive it is built on, both measured in this run on this machine. Times are CPU time of
 * this (single-threaded) process, the median of several batches, so that other processes on
 * a shared machine slow the wall clock but not the figures. How each limit is composed is
 * printed with it and written up in bench/RESULTS.md ("Limits").
 */
import { createCipheriv, diffieHellman, generateKeyPairSync, randomBytes, sign, verify } from "node:crypto";
import { calibrateDistributedDp, discreteGaussianSampler, encodeClientUpdate, RandomSource } from "../shared/dp/index.ts";
import { DEFAULT_MODEL_SPEC, parameterCount } from "../shared/model/spec.ts";
import { generateEd25519, publicKeyFromRaw, verifyBytes } from "../shared/crypto/index.ts";
import { addWordsInPlace } from "../shared/modular/index.ts";
import { advertisePayload } from "../shared/secagg/index.ts";
import { agree, generateX25519, x25519Public } from "../shared/secagg/x25519.ts";
import { expandMask, pairMaskKey } from "../shared/secagg/prg.ts";
import { cpuMs, runRound, type RoundResult } from "./secagg-round.ts";

const json = process.argv.includes("--json");
const quick = process.argv.includes("--quick");
const log = (s: string): void => {
  if (!json) console.log(s);
};

const BATCHES = quick ? 5 : 11;

/** CPU ms per call of fn: median over BATCHES batches of `per` calls (after one warm-up batch). */
function perOp(fn: () => void, per: number, batches = BATCHES): number {
  for (let i = 0; i < per; i++) fn();
  const ms: number[] = [];
  for (let b = 0; b < batches; b++) {
    const t = cpuMs();
    for (let i = 0; i < per; i++) fn();
    ms.push((cpuMs() - t) / per);
  }
  return median(ms);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/**
 * Project and bare primitive in alternating batches, so that both see the same machine load:
 * medians of each, and the median of the per-pair ratios (the reported ratio).
 */
function paired(project: () => void, bare: () => void, per: number): { project: number; bare: number; ratio: number } {
  for (let i = 0; i < per; i++) (project(), bare());
  const p: number[] = [];
  const b: number[] = [];
  const r: number[] = [];
  for (let k = 0; k < BATCHES; k++) {
    let t = cpuMs();
    for (let i = 0; i < per; i++) project();
    const pm = (cpuMs() - t) / per;
    t = cpuMs();
    for (let i = 0; i < per; i++) bare();
    const bm = (cpuMs() - t) / per;
    p.push(pm);
    b.push(bm);
    r.push(pm / bm);
  }
  return { project: median(p), bare: median(b), ratio: median(r) };
}

interface Path {
  unit: string;
  project: number;
  limit: number;
  ratio: number;
  limitIs: string;
  [extra: string]: unknown;
}
const paths: Record<string, Path> = {};
function report(name: string, unit: string, project: number, limit: number, limitIs: string, extra: Record<string, unknown> = {}, ratio = project / limit): void {
  paths[name] = { unit, project, limit, ratio, limitIs, ...extra };
  log(`| ${name} | ${project.toPrecision(4)} ${unit} | ${limit.toPrecision(4)} ${unit} | ${ratio.toFixed(2)} | ${limitIs} |`);
}

log("## Limits — npm run bench:limits\n");
log("| hot path | project | bare limit | ratio | limit is |");
log("|---|---|---|---|---|");

// --- X25519 agreement -------------------------------------------------------------------
const domain = { runId: "bench", round: 0, roundSeed: randomBytes(32) };
const mine = generateX25519();
const peer = generateX25519();
const peerKeyObject = x25519Public(peer.publicRaw);
// The project's agreement as a device runs it: from the peer's raw advertised key.
const x = paired(() => agree(mine.privateKey, x25519Public(peer.publicRaw)), () => diffieHellman({ privateKey: mine.privateKey, publicKey: peerKeyObject }), 200);
const bareX25519 = x.bare;
report("x25519Agreement", "ms", x.project, x.bare, "node:crypto diffieHellman on ready KeyObjects", {}, x.ratio);

// --- ed25519 verify ---------------------------------------------------------------------
const signer = generateEd25519();
const commitment = randomBytes(32);
const msg = advertisePayload(domain, 7, mine.publicRaw, peer.publicRaw, commitment);
const sig = sign(null, msg, signer.privateKey);
// As a device checks a neighbour's advertisement: raw identity key, payload rebuilt, verified.
const v = paired(
  () => {
    if (!verifyBytes(publicKeyFromRaw(signer.publicRaw), advertisePayload(domain, 7, mine.publicRaw, peer.publicRaw, commitment), sig)) throw new Error("verify failed");
  },
  () => verify(null, msg, signer.publicKey, sig),
  150,
);
const bareVerify = v.bare;
report("ed25519Verify", "ms", v.project, v.bare, "node:crypto verify on a ready KeyObject and payload", {}, v.ratio);

// --- mask expansion, d = 1e5 ------------------------------------------------------------
const D_MASK = 100_000;
const agreed = agree(mine.privateKey, peerKeyObject);
const zerosIn = Buffer.alloc(D_MASK * 4);
const keyIv = randomBytes(32);
const e = paired(
  () => expandMask(pairMaskKey(agreed, domain, 3, 9, "bench-transcript"), D_MASK),
  () => {
    createCipheriv("aes-128-ctr", keyIv.subarray(0, 16), keyIv.subarray(16)).update(zerosIn);
  },
  20,
);
const bareExpand = e.bare;
report("maskExpansion1e5", "ms", e.project, e.bare, "one AES-128-CTR update over 4·d zero bytes (key given)", {}, e.ratio);
// Adding a mask into the running vector: the uint32 add loop alone (used in the SecAgg limits).
const acc = new Uint32Array(D_MASK);
const mask = expandMask(keyIv, D_MASK);
const bareAdd = perOp(() => addWordsInPlace(32, acc, mask, 1), 100);

// --- discrete Gaussian at a production σ -----------------------------------------------
const dimension = parameterCount(DEFAULT_MODEL_SPEC);
const cfg = calibrateDistributedDp({ clip: 5, noiseMultiplier: 1, minSurvivors: 5, expectedSurvivors: 10, bits: 32, dimension, rotationSeed: new Uint8Array(32).fill(7) });
const sigma = Math.sqrt(Number(cfg.perDeviceVariance.num) / Number(cfg.perDeviceVariance.den));
const sampler = discreteGaussianSampler(cfg.perDeviceVariance);
const rng = new RandomSource();
let sink = 0;
const w0 = rng.wordsDrawn;
for (let i = 0; i < 100_000; i++) sink += sampler.sample(rng);
const wordsPerSample = (rng.wordsDrawn - w0) / 100_000;
// The floor of any CKS implementation that makes one random decision per word: draw a word from
// the same buffered source and compare it with a threshold, wordsPerSample times per sample.
const SAMPLES = 20_000;
const WORDS = Math.round(SAMPLES * wordsPerSample);
const g = paired(
  () => {
    for (let i = 0; i < SAMPLES; i++) sink += sampler.sample(rng);
  },
  () => {
    let hits = 0;
    for (let i = 0; i < WORDS; i++) if (rng.nextWord() < 0x5e2d58d8) hits++;
    sink += hits;
  },
  3,
);
const bareWordMs = g.bare / WORDS;
const projRate = SAMPLES / (g.project / 1000);
const limitRate = SAMPLES / (g.bare / 1000);
// Rates: the "ratio" is still project time / limit time (= limit rate / project rate).
paths.discreteGaussian = {
  unit: "samples/s",
  project: projRate,
  limit: limitRate,
  ratio: g.ratio,
  limitIs: `${wordsPerSample.toFixed(2)} random words per sample (measured), each drawn and compared once`,
  sigma,
  wordsPerSample,
};
log(`| discreteGaussian (σ = ${sigma.toExponential(3)}) | ${(projRate / 1e6).toFixed(2)} M samples/s | ${(limitRate / 1e6).toFixed(2)} M samples/s | ${g.ratio.toFixed(2)} | ${paths.discreteGaussian.limitIs} |`);

// --- encodeClientUpdate at d = 198k -------------------------------------------------------
const delta = new Float32Array(dimension);
for (let i = 0; i < dimension; i++) delta[i] = Math.sin(i) * 0.01;
// Floor: the same random decisions as the encoder's exact noise (d'·wordsPerSample) plus one
// per coordinate for the randomized rounding, at the bare word-decision cost.
const encodeWords = Math.round(cfg.paddedDimension * (wordsPerSample + 1));
const enc = paired(
  () => {
    encodeClientUpdate(delta, cfg, rng);
  },
  () => {
    let hits = 0;
    for (let i = 0; i < encodeWords; i++) if (rng.nextWord() < 0x5e2d58d8) hits++;
    sink += hits;
  },
  1,
);
report("encodeClientUpdate", "ms", enc.project, enc.bare, `d'·(wordsPerSample + 1) = ${encodeWords} word decisions (noise + rounding), d' = ${cfg.paddedDimension}`, { dimension, paddedDimension: cfg.paddedDimension, versusProjectSampler: enc.project / ((cfg.paddedDimension / projRate) * 1000) }, enc.ratio);

// --- SecAgg+ rounds ----------------------------------------------------------------------
const keygen = perOp(() => generateKeyPairSync("x25519"), 100);
const bareSign = perOp(() => sign(null, msg, signer.privateKey), 200);

interface Prices {
  sign: number;
  verify: number;
  x25519: number;
  aes: number;
  add: number;
}
/** The bare primitives again, priced just before and just after a round (the round sees that load). */
function prices(): Prices {
  const aesPer = (D_ROUND * 4) / zerosIn.length;
  return {
    sign: perOp(() => sign(null, msg, signer.privateKey), 50, 3),
    verify: perOp(() => verify(null, msg, signer.publicKey, sig), 50, 3),
    x25519: perOp(() => diffieHellman({ privateKey: mine.privateKey, publicKey: peerKeyObject }), 50, 3),
    aes: aesPer * perOp(() => createCipheriv("aes-128-ctr", keyIv.subarray(0, 16), keyIv.subarray(16)).update(zerosIn), 10, 3),
    add: (D_ROUND / D_MASK) * perOp(() => addWordsInPlace(32, acc, mask, 1), 20, 3),
  };
}
const D_ROUND = 100_000;
function mean(a: Prices, b: Prices): Prices {
  return { sign: (a.sign + b.sign) / 2, verify: (a.verify + b.verify) / 2, x25519: (a.x25519 + b.x25519) / 2, aes: (a.aes + b.aes) / 2, add: (a.add + b.add) / 2 };
}
function deviceLimit(r: RoundResult, p: Prices): number {
  const c = r.device;
  return p.sign + c.neighbours * (p.verify + p.x25519) + c.pairMasks * p.x25519 + c.masks * (p.aes + p.add);
}
function serverLimit(r: RoundResult, p: Prices): number {
  const s = r.server;
  return s.verifies * p.verify + s.inputs * p.add + s.selfMasks * (p.aes + p.add) + s.pairMasks * (p.x25519 + p.aes + p.add);
}
const secaggCases = quick
  ? [{ n: 100, d: D_ROUND, dropout: 0.1 }]
  : [
      { n: 100, d: D_ROUND, dropout: 0.1 },
      { n: 1000, d: D_ROUND, dropout: 0.05 },
    ];
for (const c of secaggCases) {
  const before = prices();
  const r = runRound({ ...c, mode: "secagg+", dropAt: "after-share", clock: cpuMs });
  const p = mean(before, prices());
  if (!r.ok) throw new Error(`SecAgg+ round n=${c.n} did not reproduce the plain sum`);
  const tag = `n${c.n}_d${c.d}_drop${Math.round(c.dropout * 100)}`;
  const common = { n: c.n, d: c.d, dropout: c.dropout, k: r.k, t: r.t, prices: p };
  if (c.n === 100) {
    report(`secaggDevice_${tag}`, "ms", r.deviceMs, deviceLimit(r, p), `1 sign + ${r.device.neighbours.toFixed(1)}×(verify + X25519) + ${r.device.pairMasks.toFixed(1)}×X25519 + ${r.device.masks.toFixed(1)}×(AES-CTR d + add d)`, { ...common, counts: r.device });
  }
  report(`secaggCoordinator_${tag}`, "ms", r.serverMs, serverLimit(r, p), `${r.server.verifies}×verify + ${r.server.inputs}×add d + ${r.server.selfMasks}×(AES-CTR d + add d) + ${r.server.pairMasks}×(X25519 + AES-CTR d + add d)`, { ...common, counts: r.server, unmaskMs: r.unmaskMs });
}

const primitives = { x25519Ms: bareX25519, ed25519VerifyMs: bareVerify, ed25519SignMs: bareSign, x25519KeygenMs: keygen, aesCtr1e5Ms: bareExpand, add1e5Ms: bareAdd, wordDecisionNs: bareWordMs * 1e6 };
const worst = Math.max(...Object.values(paths).map((p) => p.ratio));
if (json) {
  console.log(JSON.stringify({ bench: "limits", measuredAt: new Date().toISOString(), clock: "process CPU time, median of batches", node: process.version, primitives, paths, worstRatio: worst }, null, 2));
} else {
  log(`\nworst ratio ${worst.toFixed(2)}; primitives (CPU): ${Object.entries(primitives).map(([k, v]) => `${k} ${v.toPrecision(3)}`).join(", ")}`);
}
if (sink === 0.5) console.log(""); // keeps the sampled values observable
