/**
 * The SecAgg+ neighbour graph (Bell et al., CCS 2020): a random Harary-style graph. Devices are
 * placed on a ring in an order derived from the public round seed; each is connected to the
 * k/2 nearest on either side, so every device has exactly k neighbours and the graph is the
 * same for everyone who knows the seed. k ≥ n − 1 gives the full graph of Bonawitz et al.
 */
import { deriveKey, expandMask } from "./prg.ts";

export interface GraphConfig {
  runId: string;
  round: number;
  degree: number;
  roundSeed: Uint8Array;
}

function permutation(cfg: GraphConfig, items: readonly number[]): number[] {
  const key = deriveKey(cfg.roundSeed, 32, "graph", cfg, items.length);
  const words = expandMask(key, items.length * 2 + 16);
  const out = [...items];
  let w = 0;
  for (let i = out.length - 1; i > 0; i--) {
    // Rejection sampling keeps the shuffle unbiased.
    const bound = i + 1;
    const limit = Math.floor(0x100000000 / bound) * bound;
    let r: number;
    do {
      if (w >= words.length) throw new Error("graph permutation ran out of PRG words"); // probability < n·2^-32 per draw
      r = words[w++]!;
    } while (r >= limit);
    const j = r % bound;
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** The k/2 nearest on either side of ring position p, sorted. */
function ringNeighbours(ring: readonly number[], p: number, half: number): number[] {
  const n = ring.length;
  const set = new Set<number>();
  for (let s = 1; s <= half; s++) {
    set.add(ring[(p + s) % n]!);
    set.add(ring[(p - s + n) % n]!);
  }
  return [...set].sort((a, b) => a - b);
}

/** The neighbour map for `participants` (sorted indices); symmetric, no self loops. */
export function neighbourGraph(cfg: GraphConfig, participants: readonly number[]): Map<number, number[]> {
  const sorted = [...participants].sort((a, b) => a - b);
  const g = new Map<number, number[]>();
  if (cfg.degree >= sorted.length - 1) {
    for (const u of sorted) g.set(u, sorted.filter((v) => v !== u));
    return g;
  }
  const ring = permutation(cfg, sorted);
  for (let p = 0; p < ring.length; p++) g.set(ring[p]!, ringNeighbours(ring, p, Math.ceil(cfg.degree / 2)));
  return g;
}

/**
 * The neighbours of one participant in the graph `neighbourGraph` builds — the same list —
 * without building every participant's list: what a device needs in a cohort of thousands.
 * Undefined if `self` is not a participant.
 */
export function neighboursOf(cfg: GraphConfig, participants: readonly number[], self: number): number[] | undefined {
  const sorted = [...participants].sort((a, b) => a - b);
  if (!sorted.includes(self)) return undefined;
  if (cfg.degree >= sorted.length - 1) return sorted.filter((v) => v !== self);
  const ring = permutation(cfg, sorted);
  return ringNeighbours(ring, ring.indexOf(self), Math.ceil(cfg.degree / 2));
}
