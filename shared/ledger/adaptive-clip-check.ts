/**
 * `verify` for adaptive-clip runs (shared/dp/adaptive-clip.ts): each completed round records
 * (C, b̄, next C). The chain must hold — the first round clips at the spec's clip, each later
 * one at the C the previous completed round computed, and next C = C·exp(−η(b̄ − γ)) recomputed
 * here — and the devices' attestations must name the round's C. The privacy cost needs no
 * check of its own: the round's event (which the devices computed and attested) already
 * describes the clip count, and the accountant composes it like any other.
 */
import { AdaptiveClipError, nextClip } from "../dp/index.ts";
import type { RunSpec } from "../run/index.ts";

/** Tracks one run's clip chain through its completed rounds, in ledger order. */
export class ClipChain {
  private expected: number | undefined;

  constructor(private readonly spec: RunSpec | undefined) {
    this.expected = spec?.clip;
  }

  /** The C a completed round's attestations must name (the spec's clip for fixed-clip runs). */
  clipOf(privacy: unknown): number | undefined {
    if (!this.spec) return undefined;
    if (!this.spec.adaptiveClip) return this.spec.clip;
    const c = (privacy as { adaptiveClip?: { clip?: unknown } } | undefined)?.adaptiveClip?.clip;
    return typeof c === "number" ? c : undefined;
  }

  /** Problems with one completed round's record; advances the chain. */
  completed(round: number, privacy: unknown): string[] {
    const p = this.spec?.adaptiveClip;
    if (!p) return [];
    const rec = (privacy as { adaptiveClip?: { clip?: unknown; unclippedFraction?: unknown; nextClip?: unknown } } | undefined)?.adaptiveClip;
    if (!rec || typeof rec.clip !== "number" || typeof rec.unclippedFraction !== "number" || typeof rec.nextClip !== "number") {
      this.expected = undefined;
      return [`round ${round}: the run clips adaptively, but the round records no (clip, unclippedFraction, nextClip)`];
    }
    const out: string[] = [];
    if (this.expected !== undefined && !close(rec.clip, this.expected)) out.push(`round ${round}: clipped at ${rec.clip}, but the chain gives ${this.expected}`);
    if (!(rec.unclippedFraction >= 0 && rec.unclippedFraction <= 1)) out.push(`round ${round}: unclippedFraction ${rec.unclippedFraction} is not in [0, 1]`);
    else {
      // nextClip refuses a C that is not positive: a forged ledger must yield a violation, not a crash.
      let want: number | undefined;
      try {
        want = nextClip(rec.clip, rec.unclippedFraction, p);
      } catch (err) {
        if (!(err instanceof AdaptiveClipError)) throw err;
        out.push(`round ${round}: ${err.message}`);
      }
      if (want !== undefined && !close(rec.nextClip, want)) out.push(`round ${round}: nextClip ${rec.nextClip} ≠ ${rec.clip}·exp(−${p.learningRate}·(${rec.unclippedFraction} − ${p.targetQuantile})) = ${want}`);
    }
    this.expected = rec.nextClip;
    return out;
  }
}

/** Equal up to float64 rounding (the coordinator computes with the same function). */
function close(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-12 * Math.max(Math.abs(a), Math.abs(b));
}
