/**
 * The reviewer's report: one self-contained HTML file (verdict, policy, runs, ε over rounds,
 * violations). The plot is rendered to SVG here with vega-lite → vega's headless renderer, so
 * the page needs no network and no script to view. Every string is HTML-escaped.
 */
import type { Findings } from "./verify.ts";
import type { PolicyFile } from "../dp/index.ts";

const esc = (s: unknown): string => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
const num = (x: number): string => (Number.isFinite(x) ? x.toFixed(3) : "∞");

async function epsilonPlotSvg(f: Findings): Promise<string> {
  const vega = await import("vega");
  const vl = await import("vega-lite");
  const values: { x: string; epsilon: number; series: string }[] = [];
  for (const run of f.runs) {
    for (const r of run.rounds) {
      if (r.status !== "completed") continue;
      const x = `${run.runId.slice(-8)}·${r.round}`;
      for (const [series, eps] of [["worst device", r.worstDeviceEpsilon], ["median device", r.medianDeviceEpsilon], ["population (claimed sampling)", r.populationEpsilon]] as const) {
        if (Number.isFinite(eps)) values.push({ x, epsilon: eps, series });
      }
    }
  }
  if (values.length === 0) return `<p class="muted">No finite ε to plot (no noised rounds completed).</p>`;
  const spec = vl.compile({
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    width: 640,
    height: 260,
    data: { values },
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "x", type: "ordinal", title: "run · round", sort: null },
      y: { field: "epsilon", type: "quantitative", title: `ε at δ = ${f.delta}` },
      color: { field: "series", type: "nominal", title: null },
    },
  }).spec;
  const view = new vega.View(vega.parse(spec), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

export async function renderReport(f: Findings, policy?: PolicyFile): Promise<string> {
  const svg = await epsilonPlotSvg(f);
  const verdict = f.ok ? `<div class="verdict ok" id="verdict">VERIFIED — chain, signatures and every recomputed budget hold</div>` : `<div class="verdict bad" id="verdict">NOT VERIFIED — ${f.violations.length} violation(s)</div>`;
  const pol = policy
    ? `<table><tr><th>minimum noise multiplier</th><td>${esc(policy.body.minNoiseMultiplier)}</td></tr><tr><th>maximum device ε</th><td>${esc(policy.body.maxDeviceEpsilon)} at δ = ${esc(policy.body.delta)}</td></tr><tr><th>minimum survivors</th><td>${esc(policy.body.minSurvivors)}</td></tr><tr><th>allowed signals</th><td>${esc(policy.body.allowedSignals.join(", "))}</td></tr><tr><th>reviewer key</th><td><code>${esc(policy.reviewerPublicKey)}</code></td></tr></table>`
    : `<p class="muted">No policy file was given.</p>`;
  const runs = f.runs
    .map((r) => {
      const last = r.rounds.filter((x) => x.status === "completed").at(-1);
      return `<tr><td><code>${esc(r.runId)}</code></td><td>${esc(r.state)}</td><td>${r.rounds.filter((x) => x.status === "completed").length}/${esc(r.spec?.rounds ?? "?")}</td><td>${esc(r.spec?.noiseMultiplier ?? "?")}</td><td>${esc(r.spec?.minSurvivors ?? "?")}</td><td>${last ? num(last.worstDeviceEpsilon) : "—"}</td><td>${last ? num(last.populationEpsilon) : "—"}</td></tr>`;
    })
    .join("");
  const violations = f.violations.length
    ? `<table id="violations"><tr><th>rule</th><th>line</th><th>what</th></tr>${f.violations.map((v) => `<tr><td>${esc(v.code)}</td><td>${esc(v.line ?? "")}</td><td>${esc(v.message)}</td></tr>`).join("")}</table>`
    : `<p id="violations">No violations.</p>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tacit privacy ledger report</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<style>body{font:15px/1.45 system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#1b1b1b}
.verdict{padding:.8em 1em;border-radius:6px;font-weight:600;margin:1em 0}.ok{background:#e3f6e7;color:#0b5d1e}.bad{background:#fde4e1;color:#8a1c0c}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border-bottom:1px solid #ddd;padding:.3em .7em;text-align:left;vertical-align:top}.muted{color:#666}code{font-size:.85em}</style></head>
<body><h1>Tacit privacy ledger report</h1>
${verdict}
<p>${f.entries} ledger entries checked (hash chain, coordinator signatures, device attestations). Every ε below was recomputed from the ledger's events with Tacit's RDP accountant at the policy's δ = ${esc(f.delta)}${f.requestedDelta !== undefined ? ` (the δ = ${esc(f.requestedDelta)} you asked for is shown as an extra column only)` : ""}; none is read from the coordinator's own figures, and every charged mechanism is one each surviving device signed. <b>Device ε</b> composes the rounds a device survived, with no amplification: it needs no trust in the coordinator. <b>Population ε</b> adds amplification by sampling and rests on the coordinator having drawn each cohort honestly at random from the eligible devices it recorded; it gives no protection against the coordinator itself, which picks the cohort, nor against anyone reading the ledger, which names it.</p>
<h2>Policy</h2>${pol}
<h2>Runs</h2><table><tr><th>run</th><th>state</th><th>rounds</th><th>noise multiplier</th><th>min survivors</th><th>worst device ε</th><th>population ε</th></tr>${runs}</table>
<h2>ε over rounds</h2><figure id="epsilon-plot">${svg}</figure>
<h2>Violations</h2>${violations}
</body></html>
`;
}
