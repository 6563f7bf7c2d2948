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

/** CPU ms per call of fn: median over `batches` batches of `per` calls (after one warm-up batch). */
function perOp(fn: () => void, per: number, batches = quick ? 3 : 7): number {
  for (let i = 0; i < per; i++) fn();
  const ms: number[] = [];
  for (let b = 0; b < batches; b++) {
    const t = cpuMs();
    for (let i = 0; i < per; i++) fn();
    ms.push((cpuMs() - t) / per);
  }
  ms.sort((a, b) => a - b);
  return ms[ms.length >> 1]!;
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
function report(name: string, unit: string, project: number, limit: number, limitIs: string, extra: Record<string, unknown> = {}): void {
  paths[name] = { unit, project, limit, ratio: project / limit, limitIs, ...extra };
  log(`| ${name} | ${project.toPrecision(4)} ${unit} | ${limit.toPrecision(4)} ${unit} | ${(project / limit).toFixed(2)} | ${limitIs} |`);
}

log("## Limits — npm run bench:limits\n");
log("| hot path | project | bare limit | ratio | limit is |");
log("|---|---|---|---|---|");

// --- X25519 agreement -------------------------------------------------------------------
const domain = { runId: "bench", round: 0, roundSeed: randomBytes(32) };
const mine = generateX25519();
const peer = generateX25519();
const peerKeyObject = x25519Public(peer.publicRaw);
const bareX25519 = perOp(() => diffieHellman({ privateKey: mine.privateKey, publicKey: peerKeyObject }), 400);
// The project's agreement as a device runs it: from the peer's raw advertised key.
const projX25519 = perOp(() => agree(mine.privateKey, x25519Public(peer.publicRaw)), 400);
report("x25519Agreement", "ms", projX25519, bareX25519, "node:crypto diffieHellman on ready KeyObjects");

// --- ed25519 verify ---------------------------------------------------------------------
const signer = generateEd25519();
const msg = advertisePayload(domain, 7, mine.publicRaw, peer.publicRaw);
const sig = sign(null, msg, signer.privateKey);
const bareVerify = perOp(() => verify(null, msg, signer.publicKey, sig), 300);
// As a device checks a neighbour's advertisement: raw identity key, payload rebuilt, verified.
const projVerify = perOp(() => {
  if (!verifyBytes(publicKeyFromRaw(signer.publicRaw), advertisePayload(domain, 7, mine.publicRaw, peer.publicRaw), sig)) throw new Error("verify failed");
}, 300);
report("ed25519Verify", "ms", projVerify, bareVerify, "node:crypto verify on a ready KeyObject and payload");

// --- mask expansion, d = 1e5 ------------------------------------------------------------
const D_MASK = 100_000;
const agreed = agree(mine.privateKey, peerKeyObject);
const zerosIn = Buffer.alloc(D_MASK * 4);
const keyIv = randomBytes(32);
const bareExpand = perOp(() => {
  createCipheriv("aes-128-ctr", keyIv.subarray(0, 16), keyIv.subarray(16)).update(zerosIn);
}, 40);
const projExpand = perOp(() => expandMask(pairMaskKey(agreed, domain, 3, 9), D_MASK), 40);
report("maskExpansion1e5", "ms", projExpand, bareExpand, "one AES-128-CTR update over 4·d zero bytes (key given)");
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
const SAMPLES = 20_000;
let sink = 0;
const w0 = rng.wordsDrawn;
const projSampleMs = perOp(() => {
  for (let i = 0; i < SAMPLES; i++) sink += sampler.sample(rng);
}, 5);
const wordsPerSample = (rng.wordsDrawn - w0) / (SAMPLES * 5 * ((quick ? 3 : 7) + 1));
// The floor of any CKS implementation that makes one random decision per word: draw a word from
// the same buffered source and compare it with a threshold, wordsPerSample times per sample.
const WORDS = 200_000;
const bareWordMs = perOp(() => {
  let hits = 0;
  for (let i = 0; i < WORDS; i++) if (rng.nextWord() < 0x5e2d58d8) hits++;
  sink += hits;
}, 5);
const projRate = SAMPLES / (projSampleMs / 1000);
const limitRate = WORDS / (bareWordMs / 1000) / wordsPerSample;
// Rates: the "ratio" is still project time / limit time (= limit rate / project rate).
paths.discreteGaussian = {
  unit: "samples/s",
  project: projRate,
  limit: limitRate,
  ratio: limitRate / projRate,
  limitIs: `${wordsPerSample.toFixed(2)} random words per sample (measured), each drawn and compared once`,
  sigma,
  wordsPerSample,
};
log(`| discreteGaussian (σ = ${sigma.toExponential(3)}) | ${(projRate / 1e6).toFixed(2)} M samples/s | ${(limitRate / 1e6).toFixed(2)} M samples/s | ${(limitRate / projRate).toFixed(2)} | ${paths.discreteGaussian.limitIs} |`);

// --- encodeClientUpdate at d = 198k -------------------------------------------------------
const delta = new Float32Array(dimension);
for (let i = 0; i < dimension; i++) delta[i] = Math.sin(i) * 0.01;
const projEncode = perOp(() => {
  encodeClientUpdate(delta, cfg, rng);
}, 1, quick ? 3 : 5);
const samplerLimitMs = (cfg.paddedDimension / limitRate) * 1000;
report("encodeClientUpdate", "ms", projEncode, samplerLimitMs, `d' = ${cfg.paddedDimension} exact noise samples at the sampler limit above`, { dimension, paddedDimension: cfg.paddedDimension });

// --- SecAgg+ rounds ----------------------------------------------------------------------
const keygen = perOp(() => generateKeyPairSync("x25519"), 100);
const bareSign = perOp(() => sign(null, msg, signer.privateKey), 200);
const maskCost = bareExpand + bareAdd;
function deviceLimit(r: RoundResult): number {
  const c = r.device;
  return bareSign + c.neighbours * (bareVerify + bareX25519) + c.pairMasks * bareX25519 + c.masks * maskCost;
}
function serverLimit(r: RoundResult): number {
  const s = r.server;
  return s.verifies * bareVerify + s.inputs * bareAdd + s.selfMasks * maskCost + s.pairMasks * (bareX25519 + maskCost);
}
const secaggCases = quick
  ? [{ n: 100, d: 1e5, dropout: 0.1 }]
  : [
      { n: 100, d: 1e5, dropout: 0.1 },
      { n: 1000, d: 1e5, dropout: 0.05 },
    ];
for (const c of secaggCases) {
  const r = runRound({ ...c, mode: "secagg+", dropAt: "after-share", clock: cpuMs });
  if (!r.ok) throw new Error(`SecAgg+ round n=${c.n} did not reproduce the plain sum`);
  const tag = `n${c.n}_d${c.d}_drop${Math.round(c.dropout * 100)}`;
  const common = { n: c.n, d: c.d, dropout: c.dropout, k: r.k, t: r.t };
  if (c.n === 100) {
    report(`secaggDevice_${tag}`, "ms", r.deviceMs, deviceLimit(r), `1 sign + ${r.device.neighbours.toFixed(1)}×(verify + X25519) + ${r.device.pairMasks.toFixed(1)}×X25519 + ${r.device.masks.toFixed(1)}×(AES-CTR d + add d)`, { ...common, counts: r.device });
  }
  report(`secaggCoordinator_${tag}`, "ms", r.serverMs, serverLimit(r), `${r.server.verifies}×verify + ${r.server.inputs}×add d + ${r.server.selfMasks}×(AES-CTR d + add d) + ${r.server.pairMasks}×(X25519 + AES-CTR d + add d)`, { ...common, counts: r.server, unmaskMs: r.unmaskMs });
}

const primitives = { x25519Ms: bareX25519, ed25519VerifyMs: bareVerify, ed25519SignMs: bareSign, x25519KeygenMs: keygen, aesCtr1e5Ms: bareExpand, add1e5Ms: bareAdd, wordDecisionNs: (bareWordMs / WORDS) * 1e6 };
const worst = Math.max(...Object.values(paths).map((p) => p.ratio));
if (json) {
  console.log(JSON.stringify({ bench: "limits", measuredAt: new Date().toISOString(), clock: "process CPU time, median of batches", node: process.version, primitives, paths, worstRatio: worst }, null, 2));
} else {
  log(`\nworst ratio ${worst.toFixed(2)}; primitives (CPU): ${Object.entries(primitives).map(([k, v]) => `${k} ${v.toPrecision(3)}`).join(", ")}`);
}
if (sink === 0.5) console.log(""); // keeps the sampled values observable
