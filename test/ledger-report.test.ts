/**
 * The reviewer's HTML report (shared/ledger/report.ts), rendered in process from findings: the
 * verdict, the policy table, one row per run, the violations, every string escaped, and the ε plot
 * (vega's SVG: which points it draws, in which order, with which titles). `ledger-verify.test.ts`
 * views a report in Chromium, but from a child-process cluster that mutation testing cannot see.
 */
import { describe, expect, it } from "vitest";
import type { PolicyFile } from "../shared/dp/index.ts";
import { verifyLedger, type Findings, type RoundFigures, type RunFigures } from "../shared/ledger/index.ts";
import { renderReport } from "../shared/ledger/report.ts";
import { signedLedgerKit } from "./support/ledger-text.ts";

const round = (r: number, status: string, worst: number, median: number, population: number): RoundFigures => ({ round: r, delta: 1e-6, attempt: 0, status, cohort: 3, survivors: 3, worstDeviceEpsilon: worst, medianDeviceEpsilon: median, populationEpsilon: population });

const run = (runId: string, rounds: RoundFigures[], over: Partial<RunFigures> = {}): RunFigures => ({ runId, launchedAtLine: 3, spec: undefined, policyLine: undefined, rounds, state: "completed", ...over });

const findings = (over: Partial<Findings> = {}): Findings => ({ ok: true, entries: 7, delta: 1e-6, coordinatorPublicKey: "k", runs: [], devices: [], offences: [], enrollments: [], violations: [], ...over });

const POLICY: PolicyFile = {
  body: { version: 1, minNoiseMultiplier: 0.8, maxDeviceEpsilon: 12.5, delta: 1e-7, minSurvivors: 4, allowedSignals: ["commit", "file-change"] },
  reviewerPublicKey: "rk<&>",
  signature: "sig",
};

/** The figure element's content. */
const figure = (html: string): string => html.slice(html.indexOf('<figure id="epsilon-plot">') + '<figure id="epsilon-plot">'.length, html.indexOf("</figure>"));

/** Each data point vega drew, from its accessible label (lines label their first point too: deduplicated). */
const points = (svg: string): string[] => [...new Set([...svg.matchAll(/aria-label="(run · round: [^"]*)"/g)].map((m) => m[1]!))];

const texts = (svg: string): string[] => [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!);

const NO_PLOT = `<p class="muted">No finite ε to plot (no noised rounds completed).</p>`;

describe("renderReport: the page", () => {
  it("a verified ledger with a policy: verdict, policy table, the δ paragraph, no violations", async () => {
    const html = await renderReport(findings({ entries: 42, delta: 1e-7 }), POLICY);
    expect(html.startsWith(`<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Tacit privacy ledger report</title>\n`)).toBe(true);
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`);
    expect(html).toContain(`.verdict{padding:.8em 1em;border-radius:6px;font-weight:600;margin:1em 0}.ok{background:#e3f6e7;color:#0b5d1e}.bad{background:#fde4e1;color:#8a1c0c}`);
    expect(html).toContain(`<body><h1>Tacit privacy ledger report</h1>\n<div class="verdict ok" id="verdict">VERIFIED — chain, signatures and every recomputed budget hold</div>\n<p>42 ledger entries checked (hash chain, coordinator signatures, device attestations). Every ε below was recomputed from the ledger's events with Tacit's RDP accountant at the policy's δ = 1e-7; none is read from the coordinator's own figures,`);
    expect(html).toContain(
      `<h2>Policy</h2><table><tr><th>minimum noise multiplier</th><td>0.8</td></tr><tr><th>maximum device ε</th><td>12.5 at δ = 1e-7</td></tr><tr><th>minimum survivors</th><td>4</td></tr><tr><th>allowed signals</th><td>commit, file-change</td></tr><tr><th>reviewer key</th><td><code>rk&lt;&amp;&gt;</code></td></tr></table>\n`,
    );
    expect(html).toContain(`<h2>Runs</h2><table><tr><th>run</th><th>state</th><th>rounds</th><th>noise multiplier</th><th>min survivors</th><th>worst device ε</th><th>population ε</th></tr></table>\n`);
    expect(html).toContain(`<h2>ε over rounds</h2><figure id="epsilon-plot">${NO_PLOT}</figure>\n<h2>Violations</h2><p id="violations">No violations.</p>\n</body></html>\n`);
    expect(html).not.toContain("you asked for");
    expect(html).not.toContain("NOT VERIFIED");
  });

  it("not verified: the count, and every violation with its rule, line (blank when none) and escaped message", async () => {
    const html = await renderReport(findings({ ok: false, violations: [{ code: "HASH", line: 4, message: "edited" }, { code: "TRUNCATED", message: `cut <b>"here"</b> & 'there'` }] }));
    expect(html).toContain(`<div class="verdict bad" id="verdict">NOT VERIFIED — 2 violation(s)</div>`);
    expect(html).not.toContain(">VERIFIED");
    expect(html).toContain(`<h2>Violations</h2><table id="violations"><tr><th>rule</th><th>line</th><th>what</th></tr><tr><td>HASH</td><td>4</td><td>edited</td></tr><tr><td>TRUNCATED</td><td></td><td>cut &lt;b&gt;&quot;here&quot;&lt;/b&gt; &amp; &#39;there&#39;</td></tr></table>\n`);
    expect(html).not.toContain("No violations.");
    expect(html).toContain(`<p class="muted">No policy file was given.</p>`);
  });

  it("names a requested δ as an extra column only", async () => {
    const html = await renderReport(findings({ delta: 1e-6, requestedDelta: 1e-5 }));
    expect(html).toContain(`at the policy's δ = 0.000001 (the δ = 0.00001 you asked for is shown as an extra column only); none is read`);
  });

  it("one row per run: completed rounds of the spec's, its noise and floor, the last completed round's ε (∞ when unbounded)", async () => {
    const spec = signedLedgerKit({ devices: 0 }).SPEC;
    const runs = [
      run("run-<1>", [round(0, "completed", 1.23456, 1, 0.5), round(1, "completed", 2.5, 2, 0.75), round(2, "completed", 3.5, 3, Infinity), round(3, "aborted", 9, 9, 9)], { spec, state: "cancel'led" }),
      run("run-2", [round(0, "aborted", 1, 1, 1)], { state: "launched" }),
    ];
    const html = await renderReport(findings({ runs }));
    expect(html).toContain(
      `<tr><td><code>run-&lt;1&gt;</code></td><td>cancel&#39;led</td><td>3/${spec.rounds}</td><td>${spec.noiseMultiplier}</td><td>${spec.minSurvivors}</td><td>3.500</td><td>∞</td></tr>` +
        `<tr><td><code>run-2</code></td><td>launched</td><td>0/?</td><td>?</td><td>?</td><td>—</td><td>—</td></tr></table>`,
    );
  });
});

describe("renderReport: the ε plot", () => {
  it("draws every finite ε of every completed round, in ledger order, labelled by the run id's last 8 characters", async () => {
    const runs = [
      run("run-2026-zzzzzzzz", [round(0, "completed", 1.5, 1.25, 0.75), round(1, "aborted", 9, 9, 9), round(1, "completed", 2.5, 2, Infinity)]),
      run("run-2026-aaaaaaaa", [round(0, "completed", 0.5, 0.5, 0.25)]),
    ];
    const svg = figure(await renderReport(findings({ runs })));
    expect(svg.startsWith("<svg")).toBe(true);
    const p = (x: string, eps: number, series: string): string => `run · round: ${x}; ε at δ = 0.000001: ${eps}; series: ${series}`;
    expect(points(svg).sort()).toEqual(
      [
        p("zzzzzzzz·0", 1.5, "worst device"),
        p("zzzzzzzz·0", 1.25, "median device"),
        p("zzzzzzzz·0", 0.75, "population (claimed sampling)"),
        p("zzzzzzzz·1", 2.5, "worst device"),
        p("zzzzzzzz·1", 2, "median device"),
        p("aaaaaaaa·0", 0.5, "worst device"),
        p("aaaaaaaa·0", 0.5, "median device"),
        p("aaaaaaaa·0", 0.25, "population (claimed sampling)"),
      ].sort(),
    );
    // The x axis keeps the ledger's order (not sorted), the y axis is ε at the findings' δ.
    expect(svg).toContain(`aria-label="X-axis titled 'run · round' for a discrete scale with 3 values: zzzzzzzz·0, zzzzzzzz·1, aaaaaaaa·0"`);
    expect(svg).toContain(`aria-label="Y-axis titled 'ε at δ = 0.000001' for a linear scale with values from 0.0 to 2.6"`);
    expect(svg).toContain(`aria-label="Symbol legend for fill color and stroke color with 3 values: median device, population (claimed sampling), worst device"`);
    expect(texts(svg)).toEqual(["zzzzzzzz·0", "zzzzzzzz·1", "aaaaaaaa·0", "run · round", "0.0", "0.5", "1.0", "1.5", "2.0", "2.5", "ε at δ = 0.000001", "median device", "population (claime…", "worst device"]);
    // A 640 × 260 plot of lines with a point per value; no legend title.
    expect(svg).toContain(`d="M0.5,0.5h640v260h-640Z"`);
    expect(svg.match(/class="mark-line role-mark/g)).toHaveLength(3);
    expect(svg).toContain(`class="mark-symbol role-mark`);
    expect(svg).not.toContain("role-legend-title");
  });

  it("draws nothing when no completed round has a finite ε", async () => {
    const onlyAborted = [run("r", [round(0, "aborted", 1, 1, 1), round(1, "failed", 2, 2, 2)])];
    expect(figure(await renderReport(findings({ runs: onlyAborted })))).toBe(NO_PLOT);
    const unbounded = [run("r", [round(0, "completed", Infinity, Infinity, Infinity)])];
    expect(figure(await renderReport(findings({ runs: unbounded })))).toBe(NO_PLOT);
    expect(figure(await renderReport(findings()))).toBe(NO_PLOT);
  });

  it("renders a verified ledger's findings end to end", async () => {
    const kit = signedLedgerKit();
    const f = verifyLedger(kit.ledger(kit.honestRun("run-e2e")), { policy: kit.POLICY });
    expect(f.ok).toBe(true);
    const html = await renderReport(f, kit.POLICY);
    const last = f.runs[0]!.rounds[1]!;
    expect(html).toContain(`<tr><td><code>run-e2e</code></td><td>completed</td><td>2/2</td><td>1</td><td>4</td><td>${last.worstDeviceEpsilon.toFixed(3)}</td><td>${last.populationEpsilon.toFixed(3)}</td></tr>`);
    expect(points(figure(html))).toHaveLength(6);
    expect(html).toContain(`<p>${f.entries} ledger entries checked`);
  });
});
