/**
 * On-device personalization: the device predicts with the global model combined with what only
 * it knows — its own action history. Nothing here ever leaves the device; the global model stays
 * the same for everyone. Pure functions.
 *
 * The device counts, on its own training windows, which action followed each recent context
 * (the last action, the last two, … up to `maxOrder`), in a suffix trie. Prediction is a chain of
 * Dirichlet priors (hierarchical / interpolated backoff, as in Kneser–Ney-style n-gram models):
 *   p₀ = p_global
 *   p_k(y) = (c_k(y) + β_k · p_{k−1}(y)) / (n_k + β_k)      for each context order k the device has seen
 * where c_k(y) counts y after the last-k-actions context, n_k = Σ c_k, and the prior strength
 *   β_k = alpha + distinctWeight · (distinct successors of that context).
 * A context with many different successors is less predictable from its counts alone, so it
 * leans on the lower order more (Witten–Bell's idea); a context the device never saw falls back
 * to the lower order unchanged. Optionally a recency cache mixes in the actions of the current
 * window (people repeat what they just did): p = (1 − λ) p + λ · q_recent.
 *
 * Every step is "scale the previous distribution, add a few counts", so the result is kept as
 *   p(y) = scale · p_global(y) + add(y)      (add is sparse)
 * which lets the evaluation rank 1,000 outputs without touching most of them.
 */
import type { Examples } from "./examples.ts";
import { PAD_ID, SESSION_START_ID, SPECIAL_IDS } from "./spec.ts";

export class PersonalizationError extends Error {
  override name = "PersonalizationError";
}

/** How the device mixes its own counts with the global model. */
export interface PersonalizationConfig {
  /** Longest local context in actions: 1 = bigram (previous action), 2 = trigram, … */
  readonly maxOrder: number;
  /** Base prior strength of the lower order (the global model at order 1). */
  readonly alpha: number;
  /** Extra prior strength per distinct successor of the context (0 = a fixed strength). */
  readonly distinctWeight: number;
  /** Weight λ of the recency cache over the window's actions (0 = off). */
  readonly cacheWeight: number;
  /** Each older action in the window counts this factor less in the cache (1 = all equal). */
  readonly cacheDecay: number;
}

/**
 * The previous default: the global model as a fixed Dirichlet prior (α = 8) over the device's
 * bigram counts. Kept for comparison (bench/RESULTS.md, issue 13 item 4).
 */
export const DIRICHLET_BIGRAM: PersonalizationConfig = { maxOrder: 1, alpha: 8, distinctWeight: 0, cacheWeight: 0, cacheDecay: 1 };

/**
 * The default: counts of the last two actions backing off to the last action and then to the
 * global model (α 2 each), plus a recency cache over the window (λ 0.25, each older action
 * counting 0.55× less). Chosen on a validation carve of devactions-large (the newest 20 % of each
 * device's training events, the held-out 30 % untouched) by the mean of top-3 micro and macro;
 * the neighbours (order 2–3, α 1–4, λ 0.15–0.3) were within 0.3 points. On the held-out 30 % with
 * the public-only model: top-3 micro 69.42 % → 71.44 % (bench/RESULTS.md, issue 13 item 4).
 * The cache carries most of the gain: people repeat what they just did.
 */
export const DEFAULT_PERSONALIZATION: PersonalizationConfig = { maxOrder: 2, alpha: 2, distinctWeight: 0, cacheWeight: 0.25, cacheDecay: 0.55 };

/** Deepest context the counts support; longer contexts are too sparse on one device to help. */
export const MAX_PERSONALIZATION_ORDER = 8;

export function validatePersonalization(c: PersonalizationConfig): PersonalizationConfig {
  const bad = (what: string, v: unknown): never => {
    throw new PersonalizationError(`personalization ${what}, got ${String(v)}`);
  };
  if (!Number.isInteger(c.maxOrder) || c.maxOrder < 1 || c.maxOrder > MAX_PERSONALIZATION_ORDER) bad(`maxOrder must be an integer in [1, ${MAX_PERSONALIZATION_ORDER}]`, c.maxOrder);
  if (!(c.alpha >= 0) || !Number.isFinite(c.alpha)) bad("alpha must be a finite number ≥ 0", c.alpha);
  if (!(c.distinctWeight >= 0) || !Number.isFinite(c.distinctWeight)) bad("distinctWeight must be a finite number ≥ 0", c.distinctWeight);
  // β must be > 0 or an unseen action would get probability 0 after a context the device has seen.
  if (!(c.alpha + c.distinctWeight > 0)) bad("strength alpha + distinctWeight must be > 0", c.alpha + c.distinctWeight);
  if (!(c.cacheWeight >= 0 && c.cacheWeight < 1)) bad("cacheWeight must be in [0, 1)", c.cacheWeight);
  if (!(c.cacheDecay > 0 && c.cacheDecay <= 1)) bad("cacheDecay must be in (0, 1]", c.cacheDecay);
  return c;
}

/** One context (a suffix of the window) and what followed it on this device. */
export interface ContextNode {
  total: number;
  readonly next: Map<number, number>;
  /** The same context extended one action further back: older id → node. */
  readonly children: Map<number, ContextNode>;
}

/** The device's own context counts, up to `maxOrder` previous actions. */
export interface LocalCounts {
  readonly maxOrder: number;
  readonly window: number;
  /** The empty context (its counts are the device's unigram; not used for prediction). */
  readonly root: ContextNode;
}

const node = (): ContextNode => ({ total: 0, next: new Map(), children: new Map() });

export function emptyCounts(window: number, maxOrder: number): LocalCounts {
  if (!Number.isInteger(window) || window < 1) throw new PersonalizationError(`window must be a positive integer, got ${window}`);
  if (!Number.isInteger(maxOrder) || maxOrder < 1 || maxOrder > Math.min(window, MAX_PERSONALIZATION_ORDER)) {
    throw new PersonalizationError(`maxOrder must be an integer in [1, min(window ${window}, ${MAX_PERSONALIZATION_ORDER})], got ${maxOrder}`);
  }
  return { maxOrder, window, root: node() };
}

/**
 * Counts target `y` after row `row` of the window matrix `x` (row-major, `counts.window` wide), in
 * place. The context stops at the session start: everything before it is padding.
 */
export function addEvent(counts: LocalCounts, x: Int32Array, row: number, y: number): void {
  const T = counts.window;
  let cur = counts.root;
  countTarget(cur, y);
  for (let k = 1; k <= counts.maxOrder; k++) {
    const id = x[row * T + T - k]!;
    if (id === PAD_ID) break;
    let child = cur.children.get(id);
    if (!child) {
      child = node();
      cur.children.set(id, child);
    }
    cur = child;
    countTarget(cur, y);
    if (id === SESSION_START_ID) break;
  }
}

function countTarget(n: ContextNode, y: number): void {
  n.total += 1;
  n.next.set(y, (n.next.get(y) ?? 0) + 1);
}

/** Counts every window of a device's own training examples. */
export function localCounts(ex: Examples, window: number, maxOrder: number = DEFAULT_PERSONALIZATION.maxOrder): LocalCounts {
  if (ex.x.length !== ex.count * window) throw new PersonalizationError(`examples have ${ex.x.length} context ids, ${ex.count} rows × window ${window} needs ${ex.count * window}`);
  const c = emptyCounts(window, maxOrder);
  for (let r = 0; r < ex.count; r++) addEvent(c, ex.x, r, ex.y[r]!);
  return c;
}

/** p(y) = scale · p_global(y) + add(y). */
export interface Mixture {
  scale: number;
  readonly add: Map<number, number>;
}

/**
 * The personalized distribution for row `row` of `x`, relative to the global one. `config` must
 * have passed validatePersonalization (callers check it once, not per row).
 */
export function personalMixture(counts: LocalCounts, x: Int32Array, row: number, config: PersonalizationConfig): Mixture {
  const T = counts.window;
  const m: Mixture = { scale: 1, add: new Map() };
  const order = Math.min(config.maxOrder, counts.maxOrder);
  let cur: ContextNode | undefined = counts.root;
  for (let k = 1; k <= order && cur; k++) {
    const id = x[row * T + T - k]!;
    if (id === PAD_ID) break;
    cur = cur.children.get(id);
    if (!cur || cur.total === 0) break;
    const beta = config.alpha + config.distinctWeight * cur.next.size;
    const keep = beta / (cur.total + beta);
    scaleMixture(m, keep);
    for (const [y, c] of cur.next) m.add.set(y, (m.add.get(y) ?? 0) + c / (cur.total + beta));
    if (id === SESSION_START_ID) break;
  }
  if (config.cacheWeight > 0) mixRecent(m, x, row, T, config);
  return m;
}

function scaleMixture(m: Mixture, f: number): void {
  m.scale *= f;
  for (const [y, v] of m.add) m.add.set(y, v * f);
}

/** p ← (1 − λ) p + λ · q, q = the window's own actions, newest weighted most. */
function mixRecent(m: Mixture, x: Int32Array, row: number, T: number, config: PersonalizationConfig): void {
  const q = new Map<number, number>();
  let w = 1;
  let sum = 0;
  for (let k = 1; k <= T; k++, w *= config.cacheDecay) {
    const id = x[row * T + T - k]!;
    if (id < SPECIAL_IDS) break;
    q.set(id, (q.get(id) ?? 0) + w);
    sum += w;
  }
  if (sum === 0) return;
  scaleMixture(m, 1 - config.cacheWeight);
  for (const [y, v] of q) m.add.set(y, (m.add.get(y) ?? 0) + (config.cacheWeight * v) / sum);
}

/** For metrics.json: what the personalized evaluation did, in words, and the exact configuration. */
export function describePersonalization(c: PersonalizationConfig): { method: string; strength: number; config: PersonalizationConfig } {
  const order = c.maxOrder === 1 ? "bigram counts" : `context counts (up to the last ${c.maxOrder} actions, backing off to shorter contexts)`;
  const strength = c.distinctWeight > 0 ? `strength ${c.alpha} + ${c.distinctWeight} per distinct successor` : `strength ${c.alpha}`;
  const cache = c.cacheWeight > 0 ? `, mixed with the current window's actions (weight ${c.cacheWeight}, decay ${c.cacheDecay})` : "";
  return { method: `global model as a Dirichlet prior (${strength}) over the device's own ${order}${cache}`, strength: c.alpha, config: c };
}

/** Applies a mixture to the global distribution, in place. */
export function applyMixture(probs: Float64Array, m: Mixture): Float64Array {
  if (m.scale !== 1) for (let v = 0; v < probs.length; v++) probs[v] = probs[v]! * m.scale;
  for (const [y, a] of m.add) if (y < probs.length) probs[y] = probs[y]! + a;
  return probs;
}

/**
 * Personalizes the global distribution for row `row` of the window matrix `x`, in place.
 * `config` defaults to DEFAULT_PERSONALIZATION.
 */
export function personalizeInPlace(probs: Float64Array, counts: LocalCounts, x: Int32Array, row: number, config: PersonalizationConfig = DEFAULT_PERSONALIZATION): Float64Array {
  validatePersonalization(config);
  if (x.length < (row + 1) * counts.window) throw new PersonalizationError(`row ${row} is outside the ${x.length / counts.window} context windows`);
  return applyMixture(probs, personalMixture(counts, x, row, config));
}
