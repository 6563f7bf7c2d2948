/**
 * On-device personalization methods compared on held-out data carved from devactions-large
 * (issue 13 item 4): the last 30 % of each device's events are held out; the device personalizes
 * with its first 70 % only (its training data) and the global model. No federated rounds: the
 * global model is the public-only one (pretrained on data/devactions, cached) or a checkpoint
 * (e.g. the final model of scripts/dp-recipe-experiment.ts --save-weights DIR).
 *
 * One forward pass per device serves every method: a personalized distribution is
 * scale · p_global + a sparse part (shared/model/personalize.ts), so ranking it only needs the
 * global top few and the sparse entries.
 *
 * "tuned": each device picks its own configuration from a candidate family by top-3 hits on its
 * most recent training events (the last --val-fraction of its 70 %, counted from the rest), then
 * uses it with counts from all of its training events. --on-validation drops the held-out 30 % and
 * evaluates on the newest --eval-fraction of the rest, for choosing settings without the test data. "online": counts also grow with each
 * held-out event after it has been predicted (what a device in use does; its training data stays
 * the first 70 %).
 *
 *   npx tsx scripts/personalization-experiment.ts [--checkpoint DIR | --pretrain data/devactions]
 *     [--dataset DIR] [--eval-fraction 0.3] [--val-fraction 0.2] [--devices N] [--grid final|alpha|lean|refine|focus|full|small] [--on-validation] [--out FILE]
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { HELD_OUT_OPTIONS } from "./lib/held-out-options.ts";
import { readDevactionsDir, splitHoldout } from "../shared/data/index.ts";
import {
  addEvent, buildExamples, DEFAULT_MODEL_SPEC, DEFAULT_PERSONALIZATION, DIRICHLET_BIGRAM, initBackend, loadCheckpoint, localCounts, personalMixture, pretrainCached, Trainer,
  type Examples, type LocalCounts, type Mixture, type PersonalizationConfig,
} from "../shared/model/index.ts";

const { values } = parseArgs({
  options: {
    ...HELD_OUT_OPTIONS,
    "val-fraction": { type: "string", default: "0.2" },
    devices: { type: "string" },
    grid: { type: "string", default: "lean" },
    out: { type: "string" },
    // Choose settings without touching the held-out 30 %: drop it, and evaluate on the last
    // --eval-fraction of each device's remaining (training) events instead.
    "on-validation": { type: "boolean", default: false },
  },
});

const t0 = Date.now();
const cfg = (maxOrder: number, alpha: number, distinctWeight = 0, cacheWeight = 0, cacheDecay = 1): PersonalizationConfig => ({ maxOrder, alpha, distinctWeight, cacheWeight, cacheDecay });
const nameOf = (c: PersonalizationConfig): string => `o${c.maxOrder} a${c.alpha} d${c.distinctWeight}${c.cacheWeight ? ` c${c.cacheWeight}/${c.cacheDecay}` : ""}`;

function grid(kind: string): PersonalizationConfig[] {
  const out: PersonalizationConfig[] = [];
  if (kind === "lean") {
    out.push(cfg(1, 8), cfg(1, 2), cfg(2, 2), cfg(3, 2), cfg(2, 1, 1), cfg(3, 1, 1), cfg(3, 1, 2));
    for (const l of [0.2, 0.3]) out.push(cfg(1, 8, 0, l, 0.7));
    for (const base of [cfg(2, 2), cfg(3, 1, 1)]) for (const l of [0.1, 0.2, 0.3, 0.4]) out.push({ ...base, cacheWeight: l, cacheDecay: 0.7 });
    out.push(cfg(2, 2, 0, 0.3, 1), cfg(2, 2, 0, 0.3, 0.4));
    return out;
  }
  if (kind === "final") {
    // The old default, the new one, and each of its two changes alone (ablation).
    const d = DEFAULT_PERSONALIZATION;
    return [DIRICHLET_BIGRAM, d, { ...d, cacheWeight: 0 }, { ...DIRICHLET_BIGRAM, cacheWeight: d.cacheWeight, cacheDecay: d.cacheDecay }, { ...d, maxOrder: 1 }];
  }
  if (kind === "alpha") {
    // Does a different global model (e.g. after DP rounds) want a different prior strength or cache weight?
    for (const a of [1, 2, 4, 8, 16]) out.push(cfg(2, a, 0, 0.25, 0.55));
    out.push(cfg(2, 2, 0, 0.15, 0.55), cfg(2, 2, 0, 0.35, 0.55), cfg(1, 8));
    return out;
  }
  if (kind === "refine") {
    for (const [o, a, d] of [[2, 2, 0], [3, 1, 1], [2, 1, 1], [3, 2, 0], [2, 4, 0], [3, 0.5, 1], [3, 1, 0.5], [4, 1, 1]] as const) {
      for (const [l, dec] of [[0.2, 0.7], [0.25, 0.55], [0.15, 0.7], [0.2, 0.4], [0.3, 0.55]] as const) out.push(cfg(o, a, d, l, dec));
    }
    return out;
  }
  if (kind === "focus") {
    const bases = [cfg(1, 8), cfg(1, 2), cfg(2, 2), cfg(3, 2), cfg(2, 1, 1), cfg(3, 1, 1), cfg(3, 1, 2), cfg(2, 4), cfg(4, 2)];
    out.push(...bases);
    for (const base of [cfg(1, 8), cfg(2, 2), cfg(3, 2), cfg(2, 1, 1), cfg(3, 1, 1)]) {
      for (const l of [0.1, 0.2, 0.3, 0.4, 0.5]) for (const dec of [1, 0.7, 0.4]) out.push({ ...base, cacheWeight: l, cacheDecay: dec });
    }
    return out;
  }
  const orders = kind === "small" ? [1, 2, 3] : [1, 2, 3, 4, 6];
  const alphas = kind === "small" ? [2, 8] : [0.5, 1, 2, 4, 8, 16];
  const dws = kind === "small" ? [0, 1] : [0, 0.5, 1, 2, 4];
  for (const o of orders) for (const a of alphas) for (const d of dws) out.push(cfg(o, a, d));
  for (const base of [cfg(1, 8), cfg(2, 1, 1), cfg(3, 1, 1), cfg(3, 0.5, 1), cfg(3, 1, 2), cfg(4, 1, 1)]) {
    for (const l of [0.02, 0.05, 0.1, 0.2]) for (const dec of [1, 0.7, 0.4]) out.push({ ...base, cacheWeight: l, cacheDecay: dec });
  }
  return out;
}

/** Per-device choice families: each device picks one member on its own validation slice. */
function families(kind: string): Record<string, PersonalizationConfig[]> {
  const alphas = [0.5, 1, 2, 4, 8, 16, 32];
  if (kind === "refine" || kind === "final" || kind === "alpha") return {};
  if (kind === "lean") {
    return {
      "tuned α, bigram": alphas.map((a) => cfg(1, a)),
      "tuned cache, order 2 α 2": [0, 0.1, 0.2, 0.3, 0.4, 0.5].map((l) => cfg(2, 2, 0, l, 0.7)),
    };
  }
  return {
    "tuned α, bigram": alphas.map((a) => cfg(1, a)),
    "tuned α, order 3 + distinct 1": alphas.map((a) => cfg(3, a, 1)),
    "tuned distinct, order 3 α 1": [0, 0.5, 1, 2, 4, 8].map((d) => cfg(3, 1, d)),
    "tuned order, α 1 distinct 1": [1, 2, 3, 4, 6].map((o) => cfg(o, 1, 1)),
    "tuned cache, order 3 α 1 distinct 1": [0, 0.02, 0.05, 0.1, 0.2, 0.3].map((l) => cfg(3, 1, 1, l, 0.7)),
    "tuned cache, order 2 α 2": [0, 0.1, 0.2, 0.3, 0.4, 0.5].map((l) => cfg(2, 2, 0, l, 0.7)),
    "tuned cache+α, order 2": [1, 2, 4, 8].flatMap((a) => [0, 0.1, 0.2, 0.3, 0.5].map((l) => cfg(2, a, 0, l, 0.7))),
  };
}

class Tally {
  hit1 = 0; hit3 = 0; loss = 0; n = 0; macro1 = 0; macro3 = 0; users = 0;
  private u = { n: 0, hit1: 0, hit3: 0 };
  add(rank: number, p: number): void {
    this.u.n += 1;
    if (rank === 0) this.u.hit1 += 1;
    if (rank < 3) this.u.hit3 += 1;
    this.loss += -Math.log(Math.max(p, 1e-30));
  }
  endUser(): void {
    if (this.u.n === 0) return;
    this.n += this.u.n; this.hit1 += this.u.hit1; this.hit3 += this.u.hit3;
    this.macro1 += this.u.hit1 / this.u.n; this.macro3 += this.u.hit3 / this.u.n; this.users += 1;
    this.u = { n: 0, hit1: 0, hit3: 0 };
  }
  metrics(): { top1Micro: number; top3Micro: number; top1Macro: number; top3Macro: number; loss: number; events: number; users: number } {
    return { top1Micro: this.hit1 / this.n, top3Micro: this.hit3 / this.n, top1Macro: this.macro1 / this.users, top3Macro: this.macro3 / this.users, loss: this.loss / this.n, events: this.n, users: this.users };
  }
}

/** Indices of the K largest entries of g, largest first, ties to the lower index. */
function topIndices(g: Float64Array, K: number): Int32Array {
  const idx = new Int32Array(K).fill(-1);
  let filled = 0;
  for (let v = 0; v < g.length; v++) {
    const gv = g[v]!;
    if (filled === K && gv <= g[idx[K - 1]!]!) continue;
    let i = Math.min(filled, K - 1);
    while (i > 0 && gv > g[idx[i - 1]!]!) { idx[i] = idx[i - 1]!; i--; }
    idx[i] = v;
    if (filled < K) filled++;
  }
  return idx;
}

/** Rank (capped at 3) of y under scale · g + add, the same order as rankOf on the dense vector. */
function mixtureRank(g: Float64Array, top: Int32Array, m: Mixture, y: number): { rank: number; p: number } {
  const py = g[y]! * m.scale + (m.add.get(y) ?? 0);
  const beats = (pv: number, v: number): boolean => pv > py || (pv === py && v < y);
  let above = 0;
  for (const [v, a] of m.add) if (v !== y && beats(g[v]! * m.scale + a, v)) above++;
  if (above >= 3) return { rank: 3, p: py };
  for (let i = 0; i < top.length; i++) {
    const v = top[i]!;
    if (v === y || m.add.has(v)) continue;
    const pv = g[v]! * m.scale;
    if (beats(pv, v)) { if (++above >= 3) return { rank: 3, p: py }; } else if (pv < py) return { rank: above, p: py };
  }
  for (let v = 0; v < g.length; v++) if (v !== y && !m.add.has(v) && !top.includes(v) && beats(g[v]! * m.scale, v) && ++above >= 3) break;
  return { rank: Math.min(above, 3), p: py };
}

const spec = DEFAULT_MODEL_SPEC;
const T = spec.window;
const MAX_ORDER = 6;
await initBackend();
const weights = values.checkpoint ? (await loadCheckpoint(values.checkpoint)).weights : (await pretrainCached(values.pretrain, spec)).weights;
const trainer = new Trainer(spec);
trainer.setWeights(weights);
let users = await readDevactionsDir(values.dataset);
if (values.devices) users = users.slice(0, Number(values.devices));
if (values["on-validation"]) users = users.map((u) => splitHoldout(u, 0.3).train);
const configs = grid(values.grid);
const fams = families(values.grid);
const famNames = Object.keys(fams);
const ONLINE: [string, PersonalizationConfig][] = [[`${nameOf(DIRICHLET_BIGRAM)}, online`, DIRICHLET_BIGRAM], [`${nameOf(DEFAULT_PERSONALIZATION)}, online`, DEFAULT_PERSONALIZATION], ["o3 a1 d1, online", cfg(3, 1, 1)]];
const names = [...new Set(["global", ...configs.map(nameOf), ...famNames, ...(values.grid === "lean" ? [] : famNames.map((f) => `${f}, online`)), ...ONLINE.map(([n]) => n)])];
const tallies = new Map(names.map((n) => [n, new Tally()]));
const tally = (n: string): Tally => tallies.get(n)!;
const choices: Record<string, number[]> = Object.fromEntries(famNames.map((f) => [f, fams[f]!.map(() => 0)]));

/** Per-device: each family's best member on the device's validation slice (top-3 hits, then likelihood). */
function chooseOnValidation(val: Examples, fitCounts: LocalCounts): Record<string, PersonalizationConfig> {
  const score = Object.fromEntries(famNames.map((f) => [f, fams[f]!.map(() => ({ hits: 0, ll: 0 }))]));
  trainer.forEachDistribution(val, (row, g) => {
    const top = topIndices(g, 32);
    const y = val.y[row]!;
    for (const f of famNames) fams[f]!.forEach((c, i) => {
      const r = mixtureRank(g, top, personalMixture(fitCounts, val.x, row, c), y);
      const s = score[f]![i]!;
      if (r.rank < 3) s.hits += 1;
      s.ll += Math.log(Math.max(r.p, 1e-30));
    });
  });
  const chosen: Record<string, PersonalizationConfig> = {};
  for (const f of famNames) {
    let best = 0;
    score[f]!.forEach((s, i) => { const b = score[f]![best]!; if (s.hits > b.hits || (s.hits === b.hits && s.ll > b.ll)) best = i; });
    choices[f]![best]! += 1;
    chosen[f] = fams[f]![best]!;
  }
  return chosen;
}

const VAL = Number(values["val-fraction"]);
let evalEvents = 0;
let done = 0;
for (const u of users) {
  const { train, eval: held } = splitHoldout(u, Number(values["eval-fraction"]));
  const trainEx = buildExamples(train, spec);
  const ex = buildExamples(held, spec, { contextFrom: train });
  if (ex.count === 0) continue;
  const counts = localCounts(trainEx, T, MAX_ORDER);
  // The device's own validation slice: its most recent training events, counted from the rest.
  let chosen: Record<string, PersonalizationConfig>;
  if (train.events.length >= 4) {
    const { train: fit, eval: val } = splitHoldout(train, VAL);
    chosen = chooseOnValidation(buildExamples(val, spec, { contextFrom: fit }), localCounts(buildExamples(fit, spec), T, MAX_ORDER));
  } else chosen = Object.fromEntries(famNames.map((f) => [f, fams[f]![0]!]));
  const online = localCounts(trainEx, T, MAX_ORDER);
  trainer.forEachDistribution(ex, (row, g) => {
    const y = ex.y[row]!;
    const top = topIndices(g, 32);
    tally("global").add(top[0] === y ? 0 : top[1] === y ? 1 : top[2] === y ? 2 : 3, g[y]!);
    for (const c of configs) { const r = mixtureRank(g, top, personalMixture(counts, ex.x, row, c), y); tally(nameOf(c)).add(r.rank, r.p); }
    for (const f of famNames) {
      const r = mixtureRank(g, top, personalMixture(counts, ex.x, row, chosen[f]!), y);
      tally(f).add(r.rank, r.p);
      if (values.grid !== "lean") {
        const o = mixtureRank(g, top, personalMixture(online, ex.x, row, chosen[f]!), y);
        tally(`${f}, online`).add(o.rank, o.p);
      }
    }
    for (const [n, c] of ONLINE) { const r = mixtureRank(g, top, personalMixture(online, ex.x, row, c), y); tally(n).add(r.rank, r.p); }
    // Only after predicting: the device has now seen this action.
    addEvent(online, ex.x, row, y);
  });
  for (const t of tallies.values()) t.endUser();
  evalEvents += ex.count;
  if (++done % 100 === 0) process.stderr.write(`${done} devices, ${evalEvents} events, ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
}

const results = names.map((n) => ({ method: n, ...tally(n).metrics() }));
const ranked = [...results].sort((a, b) => b.top3Micro - a.top3Micro);
const pct = (x: number): string => (100 * x).toFixed(2);
for (const r of ranked) process.stderr.write(`${pct(r.top3Micro)}  ${pct(r.top3Macro)}  ${pct(r.top1Micro)}  ${pct(r.top1Macro)}  ${r.loss.toFixed(3)}  ${r.method}\n`);
const famChoices = Object.fromEntries(famNames.map((f) => [f, Object.fromEntries(fams[f]!.map((c, i) => [nameOf(c), choices[f]![i]]))]));
const out = { onValidation: values["on-validation"], model: values.checkpoint ?? `public-only (${values.pretrain})`, devices: users.length, evalEvents, valFraction: VAL, wallSeconds: (Date.now() - t0) / 1000, familyChoices: famChoices, results };
if (values.out) writeFileSync(values.out, JSON.stringify(out, null, 2));
process.stderr.write(`${evalEvents} held-out events, ${users.length} devices, ${out.wallSeconds.toFixed(0)} s\n`);
