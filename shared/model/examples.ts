/**
 * Training windows: for every action, the previous `window` actions of the same session (cut at
 * idle gaps) predict it. Short contexts are left-padded: [pad…, session-start, a1, …].
 */
import type { UserSequence } from "../data/index.ts";
import { PAD_ID, SESSION_START_ID, tokenBucket, type ModelSpec } from "./spec.ts";

export interface Examples {
  /** count × window token ids, row-major. */
  x: Int32Array;
  /** count target ids. */
  y: Int32Array;
  count: number;
}

export function buildExamples(seq: UserSequence, spec: ModelSpec, opts: { contextFrom?: UserSequence } = {}): Examples {
  const ctx = opts.contextFrom?.events ?? [];
  const events = [...ctx, ...seq.events];
  const first = ctx.length;
  const cache = new Map<string, number>();
  const ids = events.map((e) => {
    let b = cache.get(e.token);
    if (b === undefined) {
      b = tokenBucket(e.token, spec);
      cache.set(e.token, b);
    }
    return b;
  });
  const count = events.length - first;
  const T = spec.window;
  const x = new Int32Array(count * T);
  const y = new Int32Array(count);
  let sessionStart = 0;
  for (let i = 0; i < events.length; i++) {
    if (i > 0 && events[i]!.time - events[i - 1]!.time > spec.sessionGapSeconds) sessionStart = i;
    if (i < first) continue;
    const row = i - first;
    y[row] = ids[i]!;
    // Fill the window right-aligned: the most recent context token sits in the last slot.
    let slot = T - 1;
    for (let j = i - 1; j >= sessionStart && slot >= 0; j--, slot--) x[row * T + slot] = ids[j]!;
    if (slot >= 0) {
      x[row * T + slot] = SESSION_START_ID;
      for (let s = slot - 1; s >= 0; s--) x[row * T + s] = PAD_ID;
    }
  }
  return { x, y, count };
}
