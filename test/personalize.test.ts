import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { parseDevactions } from "../shared/data/index.ts";
import {
  addEvent, applyMixture, buildExamples, DEFAULT_PERSONALIZATION, describePersonalization, DIRICHLET_BIGRAM, emptyCounts, localCounts,
  PersonalizationError, personalizeInPlace, personalMixture, SESSION_START_ID, validatePersonalization, type ModelSpec, type PersonalizationConfig,
} from "../shared/model/index.ts";

const SPEC: ModelSpec = { version: 1, vocabBuckets: 30, window: 4, embedDim: 4, hidden: 6, sessionGapSeconds: 100, output: "tied" };
const T = SPEC.window;
const V = SPEC.vocabBuckets + 2;

/** Tokens one second apart (one session), or with a gap after every `sessionEvery` actions. */
function seq(tokens: string[], sessionEvery = Infinity): ReturnType<typeof parseDevactions> {
  let t = 0;
  const lines = tokens.map((tok, i) => `${(t += i > 0 && i % sessionEvery === 0 ? 1000 : 1)}\t${tok}`);
  return parseDevactions(lines.join("\n") + "\n", "u.tsv");
}

const cycle = (n: number, pattern: string[]): string[] => Array.from({ length: n }, (_, i) => pattern[i % pattern.length]!);

function randomDistribution(rand: () => number): Float64Array {
  const g = Float64Array.from({ length: V }, () => rand() + 1e-6);
  const s = g.reduce((a, b) => a + b, 0);
  return g.map((v) => v / s);
}

const configArb: fc.Arbitrary<PersonalizationConfig> = fc.record({
  maxOrder: fc.integer({ min: 1, max: T }),
  alpha: fc.double({ min: 0.01, max: 50, noNaN: true }),
  distinctWeight: fc.double({ min: 0, max: 8, noNaN: true }),
  cacheWeight: fc.double({ min: 0, max: 0.9, noNaN: true }),
  cacheDecay: fc.double({ min: 0.05, max: 1, noNaN: true }),
});

describe("device-local context counts", () => {
  it("counts each context order, and stops at the session start", () => {
    const ex = buildExamples(seq(cycle(12, ["a", "b", "c"])), SPEC);
    const c = localCounts(ex, T, 3);
    expect(c.root.total).toBe(12);
    // The row predicting the 5th action has context […, a, b, c, a]; its last action is "a".
    const a = ex.x[4 * T + T - 1]!;
    const b = ex.y[4]!;
    const afterA = c.root.children.get(a)!;
    expect(afterA.total).toBe(4);
    expect(afterA.next.get(b)).toBe(4);
    expect(afterA.next.size).toBe(1);
    // The first action of the session follows only the session-start marker: nothing deeper.
    const start = c.root.children.get(SESSION_START_ID)!;
    expect(start.total).toBe(1);
    expect(start.children.size).toBe(0);
  });

  it("counting events one by one equals counting the examples at once (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom("a", "b", "c", "d"), { minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: T }), fc.integer({ min: 2, max: 9 }), (tokens, order, every) => {
        const ex = buildExamples(seq(tokens, every), SPEC);
        const incremental = emptyCounts(T, order);
        for (let r = 0; r < ex.count; r++) addEvent(incremental, ex.x, r, ex.y[r]!);
        expect(incremental).toEqual(localCounts(ex, T, order));
      }),
      { numRuns: 60 },
    );
  });

  it("refuses counts that do not fit the window", () => {
    const ex = buildExamples(seq(cycle(6, ["a", "b"])), SPEC);
    expect(() => localCounts(ex, T + 1)).toThrow(PersonalizationError);
    expect(() => localCounts(ex, T, 0)).toThrow(/maxOrder/);
    expect(() => localCounts(ex, T, T + 1)).toThrow(/maxOrder/);
    expect(() => emptyCounts(0, 1)).toThrow(/window/);
  });
});

describe("personalized distribution", () => {
  const ex = buildExamples(seq(cycle(60, ["a", "b", "c", "b", "d"]), 7), SPEC);
  const counts = localCounts(ex, T, T);

  it("stays a probability distribution, and its sparse form equals the dense one (property)", () => {
    fc.assert(
      fc.property(configArb, fc.integer({ min: 0, max: ex.count - 1 }), fc.integer(), (config, row, seed) => {
        let s = seed;
        const g = randomDistribution(() => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff));
        const dense = personalizeInPlace(Float64Array.from(g), counts, ex.x, row, config);
        expect(dense.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 10);
        for (const v of dense) expect(v).toBeGreaterThan(0);
        const m = personalMixture(counts, ex.x, row, config);
        g.forEach((gv, v) => expect(dense[v]).toBeCloseTo(gv * m.scale + (m.add.get(v) ?? 0), 12));
        expect(Array.from(applyMixture(Float64Array.from(g), m))).toEqual(Array.from(dense));
      }),
      { numRuns: 150 },
    );
  });

  it("is the Dirichlet-prior bigram formula (c + α·g) / (n + α) at order 1 without a cache (property)", () => {
    fc.assert(
      fc.property(fc.double({ min: 0.01, max: 100, noNaN: true }), fc.integer({ min: 0, max: ex.count - 1 }), (alpha, row) => {
        const g = randomDistribution(Math.random);
        const p = personalizeInPlace(Float64Array.from(g), counts, ex.x, row, { ...DIRICHLET_BIGRAM, alpha });
        const ctx = counts.root.children.get(ex.x[row * T + T - 1]!)!;
        g.forEach((gv, v) => expect(p[v]).toBeCloseTo(((ctx.next.get(v) ?? 0) + alpha * gv) / (ctx.total + alpha), 12));
      }),
      { numRuns: 50 },
    );
  });

  it("tends to the global model as the prior strength grows, and leaves a context the device never saw alone", () => {
    const g = randomDistribution(Math.random);
    const far = personalizeInPlace(Float64Array.from(g), counts, ex.x, 10, { ...DIRICHLET_BIGRAM, maxOrder: 3, alpha: 1e9 });
    far.forEach((v, i) => expect(v).toBeCloseTo(g[i]!, 6));
    const unseenId = Array.from({ length: V - 2 }, (_, i) => i + 2).find((id) => !counts.root.children.has(id))!;
    const unseen = Int32Array.from([unseenId, unseenId, unseenId, unseenId]);
    expect(Array.from(personalizeInPlace(Float64Array.from(g), counts, unseen, 0, { ...DIRICHLET_BIGRAM, maxOrder: 3 }))).toEqual(Array.from(g));
  });

  it("a longer context separates what the last action alone cannot (a b a c …: after 'a' comes b or c)", () => {
    const ab = buildExamples(seq(cycle(80, ["a", "b", "a", "c"])), SPEC);
    const c = localCounts(ab, T, 2);
    const g = Float64Array.from({ length: V }, () => 1 / V);
    // Rows whose last action is "a": its successor alternates, the action before "a" decides it.
    let checked = 0;
    for (let row = 10; row < 20; row++) {
      if (ab.x[row * T + T - 1] !== ab.x[1 * T + T - 1]) continue; // rows after an "a"
      const bigram = personalizeInPlace(Float64Array.from(g), c, ab.x, row, { ...DIRICHLET_BIGRAM, alpha: 1 });
      const trigram = personalizeInPlace(Float64Array.from(g), c, ab.x, row, { ...DIRICHLET_BIGRAM, maxOrder: 2, alpha: 1 });
      expect(bigram[ab.y[row]!]).toBeLessThan(0.6);
      expect(trigram[ab.y[row]!]).toBeGreaterThan(0.9);
      checked += 1;
    }
    expect(checked).toBe(5);
  });

  it("a context with many distinct successors leans more on the lower order (Witten–Bell-style strength)", () => {
    const many = buildExamples(seq(["x", "a", "x", "b", "x", "c", "x", "d", "x", "e", "x", "a"]), SPEC);
    const c = localCounts(many, T, 1);
    const row = many.count - 1; // last action "x", target "a"
    const g = Float64Array.from({ length: V }, () => 1 / V);
    const fixed = personalizeInPlace(Float64Array.from(g), c, many.x, row, { ...DIRICHLET_BIGRAM, alpha: 1 });
    const wb = personalizeInPlace(Float64Array.from(g), c, many.x, row, { ...DIRICHLET_BIGRAM, alpha: 1, distinctWeight: 1 });
    const ctx = c.root.children.get(many.x[row * T + T - 1]!)!;
    expect(ctx.next.size).toBeGreaterThanOrEqual(4); // several successors (tokens may share a hash bucket)
    const beta = 1 + ctx.next.size;
    expect(personalMixture(c, many.x, row, { ...DIRICHLET_BIGRAM, alpha: 1, distinctWeight: 1 }).scale).toBeCloseTo(beta / (ctx.total + beta), 12);
    expect(wb[many.y[row]!]).toBeLessThan(fixed[many.y[row]!]!);
  });

  it("the recency cache lifts the actions of the current window, newest most", () => {
    const w = buildExamples(seq(["p", "q", "r", "s"]), SPEC);
    const empty = emptyCounts(T, 1);
    const g = Float64Array.from({ length: V }, () => 1 / V);
    const row = w.count - 1; // window [session start, p, q, r]
    const p = personalizeInPlace(Float64Array.from(g), empty, w.x, row, { ...DIRICHLET_BIGRAM, cacheWeight: 0.3, cacheDecay: 0.5 });
    const [, pId, qId, rId] = Array.from(w.x.subarray(row * T, row * T + T));
    expect(p[rId!]).toBeGreaterThan(p[qId!]!);
    expect(p[qId!]).toBeGreaterThan(p[pId!]!);
    expect(p[pId!]).toBeGreaterThan(g[pId!]!);
    expect(p[SESSION_START_ID]).toBeCloseTo(0.7 / V, 12);
  });
});

describe("personalization settings", () => {
  it("accepts the defaults and refuses settings that would break the distribution, with the reason", () => {
    expect(validatePersonalization(DEFAULT_PERSONALIZATION)).toBe(DEFAULT_PERSONALIZATION);
    const bad: [Partial<PersonalizationConfig>, RegExp][] = [
      [{ maxOrder: 0 }, /maxOrder/], [{ maxOrder: 1.5 }, /maxOrder/], [{ maxOrder: 9 }, /maxOrder/],
      [{ alpha: -1 }, /alpha/], [{ alpha: NaN }, /alpha/], [{ alpha: Infinity }, /alpha/],
      [{ alpha: 0, distinctWeight: 0 }, /> 0/], [{ distinctWeight: -0.5 }, /distinctWeight/],
      [{ cacheWeight: 1 }, /cacheWeight/], [{ cacheWeight: -0.1 }, /cacheWeight/], [{ cacheDecay: 0 }, /cacheDecay/], [{ cacheDecay: 1.5 }, /cacheDecay/],
    ];
    for (const [patch, msg] of bad) expect(() => validatePersonalization({ ...DEFAULT_PERSONALIZATION, ...patch })).toThrow(msg);
    const c = localCounts(buildExamples(seq(["a", "b", "c"]), SPEC), T, 1);
    expect(() => personalizeInPlace(new Float64Array(V), c, new Int32Array(T), 1)).toThrow(/outside/);
    expect(() => personalizeInPlace(new Float64Array(V), c, new Int32Array(T), 0, { ...DIRICHLET_BIGRAM, alpha: 0 })).toThrow(PersonalizationError);
  });

  it("describes itself for metrics.json", () => {
    const d = describePersonalization({ maxOrder: 3, alpha: 2, distinctWeight: 1, cacheWeight: 0.2, cacheDecay: 0.7 });
    expect(d.method).toMatch(/last 3 actions/);
    expect(d.method).toMatch(/weight 0.2/);
    expect(d.strength).toBe(2);
    expect(describePersonalization(DIRICHLET_BIGRAM).method).toBe("global model as a Dirichlet prior (strength 8) over the device's own bigram counts");
  });
});
