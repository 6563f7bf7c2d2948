/**
 * Uniform random cohort selection with crypto randomness. Population ε rests on this being a
 * uniform sample of the eligible population, so the sampler is kept small and auditable.
 */
import { randomInt } from "node:crypto";

export function sampleCohort<T>(eligible: readonly T[], size: number): T[] {
  const pool = [...eligible];
  const k = Math.min(size, pool.length);
  // Partial Fisher–Yates: the first k positions are a uniform k-subset in uniform order.
  for (let i = 0; i < k; i++) {
    const j = i + randomInt(pool.length - i);
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, k);
}
