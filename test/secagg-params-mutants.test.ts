/**
 * The SecAgg parameter finder (params.ts) and the SecAgg+ neighbour graph (graph.ts) where
 * mutation testing found them unpinned (issue #16; `npm run test:mutation`): the device's floors
 * and its refusals, the input checks, the hypergeometric tails and the connectivity bound (pinned
 * floors and small exact cases), the memo's bound, and the graph's ring (a pinned known-answer
 * vector), its rejection sampling and its edge cases.
 *
 * The rejection sampling of the ring shuffle is reached through a wrapper around `expandMask`
 * that is off unless a test hands it words: a real keystream word is rejected with probability
 * below n·2^-32, and a word exactly at the limit, or a keystream running out, cannot be found by
 * searching seeds.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { chooseParams, checkSecAggFloors, maximumThreshold, minimumThreshold, neighbourGraph, neighboursOf, secaggFloors, type GraphConfig } from "../shared/secagg/index.ts";

const prg = vi.hoisted(() => ({ words: undefined as number[] | undefined, requested: [] as number[] }));

vi.mock("../shared/secagg/prg.ts", async (importOriginal) => {
  const real = await importOriginal<typeof import("../shared/secagg/prg.ts")>();
  const expandMask = (keyAndIv: Uint8Array, words: number): Uint32Array => {
    if (prg.words === undefined) return real.expandMask(keyAndIv, words);
    prg.requested.push(words);
    return Uint32Array.from(prg.words);
  };
  return { ...real, expandMask };
});

afterEach(() => {
  prg.words = undefined;
  prg.requested = [];
});

const SEED = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const graphCfg = (degree: number): GraphConfig => ({ runId: "graph-kat", round: 3, degree, roundSeed: SEED });
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const entries = (g: Map<number, number[]>): [number, number[]][] => [...g.entries()];

describe("the neighbour graph", () => {
  it("is the pinned ring for a fixed seed (known answer: it pins the wire format, so peers of different versions agree)", () => {
    // Computed once from the current code. The map is filled in ring order, so its key order is
    // the permutation; every list is sorted. It pins the HKDF label "graph", the run, round, seed
    // and cohort size in the derivation, and the Fisher–Yates shuffle over the keystream.
    const ring = [4, 5, 3, 1, 9, 6, 8, 0, 7, 2];
    const expected: [number, number[]][] = [
      [4, [2, 3, 5, 7]], [5, [1, 2, 3, 4]], [3, [1, 4, 5, 9]], [1, [3, 5, 6, 9]], [9, [1, 3, 6, 8]],
      [6, [0, 1, 8, 9]], [8, [0, 6, 7, 9]], [0, [2, 6, 7, 8]], [7, [0, 2, 4, 8]], [2, [0, 4, 5, 7]],
    ];
    const g = neighbourGraph(graphCfg(4), range(10));
    expect(entries(g)).toEqual(expected);
    expect([...g.keys()]).toEqual(ring);
    // Each device's list is its two ring neighbours on either side, in ascending order.
    ring.forEach((u, p) => {
      const around = [ring[(p + 1) % 10]!, ring[(p + 2) % 10]!, ring[(p + 9) % 10]!, ring[(p + 8) % 10]!].sort((a, b) => a - b);
      expect(g.get(u)).toEqual(around);
      expect(neighboursOf(graphCfg(4), range(10), u)).toEqual(around);
    });
    // The order participants are given in does not matter: both sort them first.
    const shuffled = [7, 2, 9, 0, 4, 1, 8, 3, 6, 5];
    expect(entries(neighbourGraph(graphCfg(4), shuffled))).toEqual(expected);
    for (const [u, nb] of expected) expect(neighboursOf(graphCfg(4), shuffled, u)).toEqual(nb);
  });

  it("lists neighbours in ascending numeric order, also for indices ≥ 10", () => {
    const parts = range(10).map((i) => i * 7 + 3);
    const g = neighbourGraph(graphCfg(4), [...parts].reverse());
    expect(g.size).toBe(10);
    for (const u of parts) {
      const nb = g.get(u)!;
      expect(nb).toHaveLength(4);
      expect(nb).toEqual([...nb].sort((a, b) => a - b));
      expect(neighboursOf(graphCfg(4), parts, u)).toEqual(nb);
    }
  });

  it("the full graph: everyone else, keys in index order, no self loops even when the degree exceeds the cohort", () => {
    for (const degree of [4, 5, 9]) {
      const g = neighbourGraph(graphCfg(degree), [4, 0, 3, 1, 2]);
      expect(entries(g)).toEqual([[0, [1, 2, 3, 4]], [1, [0, 2, 3, 4]], [2, [0, 1, 3, 4]], [3, [0, 1, 2, 4]], [4, [0, 1, 2, 3]]]);
      expect(neighboursOf(graphCfg(degree), [4, 0, 3, 1, 2], 3)).toEqual([0, 1, 2, 4]);
    }
    // Two devices at degree 1: the full graph, listed in index order.
    expect(entries(neighbourGraph(graphCfg(1), [9, 2]))).toEqual([[2, [9]], [9, [2]]]);
    // A cohort of one (degree 1 ≥ n − 1 = 0): no neighbours, not itself.
    expect(entries(neighbourGraph(graphCfg(1), [5]))).toEqual([[5, []]]);
    expect(neighboursOf(graphCfg(1), [5], 5)).toEqual([]);
  });

  it("a sparse graph has exactly one entry per participant", () => {
    const g = neighbourGraph(graphCfg(2), range(7));
    expect([...g.keys()].sort((a, b) => a - b)).toEqual(range(7));
    expect(g.has(undefined as unknown as number)).toBe(false);
  });

  it("neighboursOf is undefined for a device that is not a participant", () => {
    expect(neighboursOf(graphCfg(4), range(10), 10)).toBeUndefined();
    expect(neighboursOf(graphCfg(20), range(10), 10)).toBeUndefined();
  });
});

describe("the ring shuffle's rejection sampling (keystream words supplied by the test)", () => {
  // Five participants at degree 2 (a ring). Draws run i = 4, 3, 2, 1 with bounds 5, 4, 3, 2; a word
  // w is accepted if w < ⌊2^32/bound⌋·bound, which is 2^32 − 1 for the bounds 5 and 3.
  const MAX = 0xffffffff;

  it("rejects a word at the limit and uses the next; needs exactly one word per position", () => {
    // i = 4: MAX rejected, 1 → j = 1: [0,4,2,3,1]; i = 3: 2 → j = 2: [0,4,3,2,1];
    // i = 2: 1 → j = 1: [0,3,4,2,1]; i = 1: 0 → j = 0: [3,0,4,2,1].
    prg.words = [MAX, 1, 2, 1, 0];
    const g = neighbourGraph(graphCfg(2), range(5));
    expect([...g.keys()]).toEqual([3, 0, 4, 2, 1]);
    expect(entries(g)).toEqual([[3, [0, 1]], [0, [3, 4]], [4, [0, 2]], [2, [1, 4]], [1, [2, 3]]]);
    expect(neighboursOf(graphCfg(2), range(5), 4)).toEqual([0, 2]);
    // The keystream asked for: 2n + 16 words.
    expect(prg.requested).toEqual([26, 26]);
  });

  it("the largest word below the limit is accepted", () => {
    // i = 4: MAX − 1 → j = (2^32 − 2) mod 5 = 4 (no swap); i = 3: 2 → [0,1,3,2,4];
    // i = 2: 1 → [0,3,1,2,4]; i = 1: 0 → [3,0,1,2,4].
    prg.words = [MAX - 1, 2, 1, 0];
    expect([...neighbourGraph(graphCfg(2), range(5)).keys()]).toEqual([3, 0, 1, 2, 4]);
  });

  it("runs out of words with a specific error instead of reading past the keystream", () => {
    prg.words = [MAX, MAX, MAX];
    expect(() => neighbourGraph(graphCfg(2), range(5))).toThrow(/^graph permutation ran out of PRG words$/);
    expect(() => neighboursOf(graphCfg(2), range(5), 0)).toThrow(/^graph permutation ran out of PRG words$/);
    // Three positions' words for four positions.
    prg.words = [1, 2, 1];
    expect(() => neighbourGraph(graphCfg(2), range(5))).toThrow(/ran out of PRG words/);
  });
});

describe("the input checks of chooseParams, secaggFloors and checkSecAggFloors", () => {
  const ok = { dropoutFraction: 0.1, corruptFraction: 0.1 };
  const all = (n: number, r: { dropoutFraction: number; corruptFraction: number }): (() => unknown)[] => [
    () => chooseParams({ cohortSize: n, ...r, minSurvivors: 2 }),
    () => secaggFloors(n, r),
    () => checkSecAggFloors({ cohortSize: n, threshold: 2, degree: 2 }, r),
  ];

  it("refuses a cohort that is not an integer ≥ 2", () => {
    for (const [n, text] of [[1, "1"], [0, "0"], [-3, "-3"], [2.5, "2.5"], [40.5, "40.5"], [NaN, "NaN"]] as const) {
      for (const f of all(n, ok)) expect(f).toThrow(new RegExp(`^cohort of ${text} is too small for secure aggregation$`));
    }
    // Two devices are enough (the full graph, t = 2).
    expect(chooseParams({ cohortSize: 2, ...ok, minSurvivors: 2 })).toMatchObject({ mode: "full", degree: 1, threshold: 1, colluders: 1 });
    expect(secaggFloors(2, ok)).toEqual({ minDegree: 1, minThreshold: 1 });
  });

  it("refuses a dropout fraction outside [0, 1)", () => {
    for (const [d, text] of [[-0.1, "-0.1"], [1, "1"], [1.5, "1.5"], [NaN, "NaN"]] as const) {
      for (const f of all(50, { dropoutFraction: d, corruptFraction: 0.1 })) expect(f).toThrow(new RegExp(`^dropout fraction must be in \\[0, 1\\), got ${text}$`));
    }
    for (const d of [0, 0.99]) for (const f of all(50, { dropoutFraction: d, corruptFraction: 0.1 })) expect(f).not.toThrow();
  });

  it("refuses a corrupt fraction outside [0, 0.5]", () => {
    for (const [g, text] of [[-0.1, "-0.1"], [0.51, "0.51"], [1, "1"], [NaN, "NaN"]] as const) {
      for (const f of all(50, { dropoutFraction: 0.1, corruptFraction: g })) expect(f).toThrow(new RegExp(`^corrupt fraction must be in \\[0, 0\\.5\\], got ${text}$`));
    }
    for (const g of [0, 0.5]) for (const f of all(50, { dropoutFraction: 0.1, corruptFraction: g })) expect(f).not.toThrow();
  });
});

/**
 * [n, δ, γ, minDegree, minThreshold], computed once from the current code: the floors every
 * device enforces. γn and δn are integers in every row, so the rows do not depend on how a
 * fractional count is rounded.
 */
type Pinned = readonly [number, number, number, number, number];

describe("the floors at pinned configurations", () => {
  // Without dropouts (t may equal k) the threshold conditions alone would allow a smaller even
  // degree (kFeas); Bell et al.'s connectivity condition (a cut needs k/2 consecutive bad devices
  // in two places) is what sets the degree here.
  const connectivityDecides: Pinned[] = [
    [70, 0, 0.2, 16, 16], // kFeas = 14
    [300, 0, 0.2, 24, 24], // kFeas = 20
    // One dropout in 5,000 and 45 % colluders: the dropped device counts among the bad ones
    // (kFeas = 56 with t = 55; the graph of degree 56 minus 2,264 bad devices may fall apart).
    [5000, 0.0002, 0.4526, 58, 57],
  ];
  // Here the smallest degree with a feasible threshold is also connected.
  const thresholdsDecide: Pinned[] = [
    [115, 0, 0.2, 18, 18],
    [175, 0, 0.2, 20, 20],
    [200, 0.1, 0.33, 98, 78],
    [500, 0.2, 0.33, 322, 234],
    [1000, 0.1, 0.05, 78, 52],
  ];

  it.each([...connectivityDecides, ...thresholdsDecide])("n=%s, δ=%s, γ=%s: degree ≥ %s, threshold ≥ %s", (n, d, g, minDegree, minThreshold) => {
    const r = { dropoutFraction: d, corruptFraction: g };
    expect(secaggFloors(n, r)).toEqual({ minDegree, minThreshold });
    expect(chooseParams({ cohortSize: n, ...r, minSurvivors: 2 })).toMatchObject({ mode: "secagg+", degree: minDegree, threshold: minThreshold, colluders: Math.ceil(g * n - 1e-12) });
    expect(checkSecAggFloors({ cohortSize: n, threshold: minThreshold, degree: minDegree }, r)).toBeUndefined();
    expect(checkSecAggFloors({ cohortSize: n, threshold: minThreshold, degree: minDegree - 2 }, r)).toBe(`degree ${minDegree - 2} is below the minimum ${minDegree} for ${n} devices at ${d} dropouts and ${g} colluders`);
    expect(checkSecAggFloors({ cohortSize: n, threshold: minThreshold - 1, degree: minDegree }, r)).toMatch(new RegExp(`^threshold ${minThreshold - 1} is below the minimum ${minThreshold} for degree ${minDegree} `));
  });

  it("the threshold conditions at the degree below the floor of a connectivity-bound cohort", () => {
    // n = 300, γ = 0.2, no dropouts: at k = 20 the thresholds are feasible (t = 20 = k), so only
    // connectivity excludes it.
    const r = { dropoutFraction: 0, corruptFraction: 0.2 };
    expect(minimumThreshold(300, 20, r)).toBe(20);
    expect(maximumThreshold(300, 20, r)).toBe(20);
    expect(secaggFloors(300, r).minDegree).toBe(24);
  });

  it("connectivity counts a fractional γn of colluders rounded up, as the thresholds and `colluders` do", () => {
    // n = 51, γ = 0.5: 25.5 colluders means 26 may be present (the round advertises 26). Counted
    // as 25, degree 26 looked connected for certain (k > bad); with 26 its union bound is
    // 2^−38.6, above the 2^−41 per-event bound, and the smallest safe even degree is 28.
    const r = { dropoutFraction: 0, corruptFraction: 0.5 };
    expect(chooseParams({ cohortSize: 51, ...r, minSurvivors: 2 })).toMatchObject({ degree: 28, threshold: 28, colluders: 26 });
    expect(checkSecAggFloors({ cohortSize: 51, threshold: 26, degree: 26 }, r)).toBe("degree 26 is below the minimum 28 for 51 devices at 0 dropouts and 0.5 colluders");
  });

  it("up to FULL_GRAPH_MAX = 40 devices use the full graph; from 41 on the sparse one", () => {
    const r = { dropoutFraction: 0.3, corruptFraction: 0.05 };
    expect(secaggFloors(40, r)).toEqual({ minDegree: 39, minThreshold: 21 });
    expect(chooseParams({ cohortSize: 40, ...r, minSurvivors: 2 })).toMatchObject({ mode: "full", degree: 39, threshold: 21, colluders: 2 });
    expect(checkSecAggFloors({ cohortSize: 40, threshold: 21, degree: 38 }, r)).toBe("degree 38 is below the minimum 39 for 40 devices at 0.3 dropouts and 0.05 colluders");
    // Without dropouts or colluders, a ring (k = 2, t = 2) is safe from 41 devices on.
    const none = { dropoutFraction: 0, corruptFraction: 0 };
    expect(secaggFloors(40, none)).toEqual({ minDegree: 39, minThreshold: 20 });
    expect(secaggFloors(41, none)).toEqual({ minDegree: 2, minThreshold: 2 });
    // The full graph's floors for small cohorts: t = max(2, ⌊(n − 1 + c)/2⌋ + 1, c + 1), at most n − 1.
    expect(secaggFloors(10, { dropoutFraction: 0.1, corruptFraction: 0.1 })).toEqual({ minDegree: 9, minThreshold: 6 });
    expect(secaggFloors(10, { dropoutFraction: 0.1, corruptFraction: 0.5 })).toEqual({ minDegree: 9, minThreshold: 8 });
  });

  it("the full graph when no sparse degree below n − 1 is feasible (fullGraphBelow lowered)", () => {
    const p = chooseParams({ cohortSize: 11, dropoutFraction: 0.3, corruptFraction: 0, minSurvivors: 8, fullGraphBelow: 10 });
    // colluders is ⌈0 − 1e-12⌉ = −0 (JSON writes 0).
    expect(p.colluders === 0).toBe(true);
    expect(p).toEqual({
      threshold: 6,
      degree: 10,
      mode: "full",
      colluders: p.colluders,
      guarantee: "full graph (k=10, t=6): a malicious coordinator colluding with up to 0 devices learns nothing beyond the sum of at least 8 inputs; the sum is recovered while at least t of each device's peers survive",
    });
    expect(secaggFloors(11, { dropoutFraction: 0.3, corruptFraction: 0 }, 10)).toEqual({ minDegree: 10, minThreshold: 6 });
  });
});

describe("chooseParams's guarantee text", () => {
  it("states k, t, the rates in percent and the colluders for SecAgg+", () => {
    expect(chooseParams({ cohortSize: 1000, dropoutFraction: 0.1, corruptFraction: 0.05, minSurvivors: 2 }).guarantee).toBe(
      "SecAgg+ (k=78 neighbours, t=52): with up to 10% dropouts the sum is recovered except with probability ≤ 2^-20; against a malicious coordinator colluding with up to 5% of devices (50), no input is exposed except with probability ≤ 2^-40",
    );
  });

  it("states the larger of t and minSurvivors as the smallest sum for the full graph", () => {
    const text = (minSurvivors: number) => chooseParams({ cohortSize: 8, dropoutFraction: 0.2, corruptFraction: 0.1, minSurvivors }).guarantee;
    expect(text(6)).toBe("full graph (k=7, t=5): a malicious coordinator colluding with up to 1 devices learns nothing beyond the sum of at least 6 inputs; the sum is recovered while at least t of each device's peers survive");
    expect(text(2)).toBe("full graph (k=7, t=5): a malicious coordinator colluding with up to 1 devices learns nothing beyond the sum of at least 5 inputs; the sum is recovered while at least t of each device's peers survive");
  });
});

describe("checkSecAggFloors's refusals", () => {
  it("refuses a threshold above the degree, counting a degree above n − 1 as n − 1", () => {
    const r = { dropoutFraction: 0.1, corruptFraction: 0.1 };
    expect(checkSecAggFloors({ cohortSize: 10, threshold: 10, degree: 12 }, r)).toBe("threshold 10 exceeds the degree 9");
    expect(checkSecAggFloors({ cohortSize: 10, threshold: 9, degree: 12 }, r)).toBeUndefined();
    expect(checkSecAggFloors({ cohortSize: 2, threshold: 2, degree: 1 }, { dropoutFraction: 0.99, corruptFraction: 0.5 })).toBe("threshold 2 exceeds the degree 1");
  });

  it("the full graph is not subject to the sparse graph's connectivity bound, even with most devices bad", () => {
    // δ = 0.9, γ = 0.5: 14 "bad" devices of 10. The full graph needs t ≥ ⌊(9 + 5)/2⌋ + 1 = 8.
    const r = { dropoutFraction: 0.9, corruptFraction: 0.5 };
    expect(checkSecAggFloors({ cohortSize: 10, threshold: 8, degree: 9 }, r)).toBeUndefined();
    expect(checkSecAggFloors({ cohortSize: 10, threshold: 8, degree: 30 }, r)).toBeUndefined();
    expect(checkSecAggFloors({ cohortSize: 10, threshold: 7, degree: 9 }, r)).toBe("threshold 7 is below the minimum 8 for degree 9 (a coordinator with 5 colluders could unmask one input)");
  });
});

describe("the exported threshold functions on small exact cases", () => {
  it("counts the case where every neighbour is corrupt (or dropped)", () => {
    // n = 4, k = 2, two colluders among the 3 others: both neighbours are corrupt with probability
    // C(2,2)·C(1,0)/C(3,2) = 1/3, so t1 = 2 and t = ⌊(2 + 2)/2⌋ + 1 = 3 (more than k: infeasible).
    expect(minimumThreshold(4, 2, { dropoutFraction: 0, corruptFraction: 0.5 })).toBe(3);
    // n = 3, k = 1, one of the 2 others drops: the single neighbour is lost with probability 1/2.
    expect(maximumThreshold(3, 1, { dropoutFraction: 1 / 3, corruptFraction: 0 })).toBe(0);
    expect(maximumThreshold(3, 1, { dropoutFraction: 0, corruptFraction: 0 })).toBe(1);
  });


  it("degree 0 or 1 gives the floor t = 2 and a maximum of 0, without throwing", () => {
    const r = { dropoutFraction: 0, corruptFraction: 0.1 };
    expect(minimumThreshold(10, 1, r)).toBe(2);
    expect(minimumThreshold(10, 0, r)).toBe(2);
    expect(maximumThreshold(3, 0, { dropoutFraction: 0, corruptFraction: 0 })).toBe(0);
    expect(maximumThreshold(10, 0, { dropoutFraction: 0.1, corruptFraction: 0 })).toBe(0);
  });
});

describe("the memo of the floors and thresholds (bounded at 256 argument lists)", () => {
  // Remembered values are returned without recomputing: a recomputation of a sparse threshold
  // calls Math.log (its tail budget), a remembered one does not. A fresh module instance starts
  // with an empty memo.
  async function fresh() {
    vi.resetModules();
    return await import("../shared/secagg/params.ts");
  }
  const r = { dropoutFraction: 0.1, corruptFraction: 0.1 };
  /** Whether minimumThreshold(50, 4, r) is computed (true) or remembered (false); the value is 5 either way. */
  function computes(m: Awaited<ReturnType<typeof fresh>>): boolean {
    const log = vi.spyOn(Math, "log");
    try {
      expect(m.minimumThreshold(50, 4, r)).toBe(5);
      return log.mock.calls.length > 0;
    } finally {
      log.mockRestore();
    }
  }
  /** `count` new entries (full-graph thresholds, which need no logarithm). */
  const fill = (m: Awaited<ReturnType<typeof fresh>>, from: number, count: number) => {
    for (let n = from; n < from + count; n++) m.minimumThreshold(n, n - 1, r);
  };

  it("remembers a value across other calls", async () => {
    const m = await fresh();
    expect(computes(m)).toBe(true);
    expect(computes(m)).toBe(false);
    fill(m, 1000, 10);
    expect(computes(m)).toBe(false);
  });

  it("forgets everything when a 257th entry would be added, not before", async () => {
    const m = await fresh();
    expect(computes(m)).toBe(true); // entry 1
    fill(m, 1000, 255); // entries 2..256: full
    expect(computes(m)).toBe(false);
    fill(m, 2000, 1); // the memo is cleared, then holds this one
    expect(computes(m)).toBe(true);
    expect(computes(m)).toBe(false);
  });
});
