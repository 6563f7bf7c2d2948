/** How `tacit run status` / `run watch` show a run's federated evaluations, one line each. */
export interface EvaluationView {
  afterRound: number;
  status: string;
  survivors: number;
  cohort: number;
  noiseMultiplier: number;
  metrics?: { top1Micro: number; top3Micro: number; top1Macro: number; top3Macro: number; loss: number; events: number; users: number };
  errorBound?: { counts: number; failureProbability: number };
  detail: string;
}

export function parseEvaluations(json: string | undefined): EvaluationView[] {
  if (!json) return [];
  try {
    const v = JSON.parse(json) as unknown;
    return Array.isArray(v) ? (v as EvaluationView[]) : [];
  } catch {
    return [];
  }
}

export function evaluationLine(e: EvaluationView): string {
  if (e.status !== "completed" || !e.metrics) return `  evaluation after round ${e.afterRound} ${e.status}: ${e.detail}`;
  const m = e.metrics;
  const pct = (x: number): string => (100 * x).toFixed(1) + "%";
  // With noise, the counts are exact only to ± the stated bound; shown in accuracy units.
  const noise = e.noiseMultiplier > 0 && e.errorBound && m.events > 0 ? `  (noised z=${e.noiseMultiplier}: counts ±${e.errorBound.counts.toFixed(0)}, ≈ ±${pct(e.errorBound.counts / m.events)} accuracy)` : "  (exact counts, no DP noise)";
  return `  evaluation after round ${e.afterRound}: federated top-1 ${pct(m.top1Micro)}  top-3 ${pct(m.top3Micro)}  (per-user ${pct(m.top1Macro)} / ${pct(m.top3Macro)})  loss ${m.loss.toFixed(3)}  on ${m.events} held-out examples of ${m.users} devices${noise}`;
}
