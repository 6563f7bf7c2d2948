/**
 * The per-user most-frequent guess, the floor a next-action model must clear (issue 13 item 7):
 * each user predicts the three actions it did most often in its own training file, every time.
 * Scored like the simulation's eval (hashed buckets, top-3 micro over events and macro over users)
 * on the held-out files of a carve (scripts/carve-holdout.ts).
 *
 *   npx tsx scripts/frequency-baseline.ts --train CARVE/train --eval CARVE/eval [--users N]
 */
import { join } from "node:path";
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { readDevactionsDir } from "../shared/data/index.ts";
import { buildExamples, DEFAULT_MODEL_SPEC } from "../shared/model/index.ts";

const { values } = parseArgs({ options: { train: { type: "string" }, eval: { type: "string" }, users: { type: "string" } } });
if (!values.train || !values.eval || !existsSync(values.train) || !existsSync(values.eval)) throw new Error("--train DIR and --eval DIR: a carve's two halves");
const spec = DEFAULT_MODEL_SPEC;
const train = new Map((await readDevactionsDir(values.train)).map((u) => [u.userId, u]));
let evalUsers = await readDevactionsDir(values.eval);
if (values.users) evalUsers = evalUsers.slice(0, Number(values.users));
let hits = 0;
let events = 0;
let macro = 0;
for (const u of evalUsers) {
  const own = train.get(u.userId);
  const counts = new Map<number, number>();
  if (own) for (const y of buildExamples(own, spec).y) counts.set(y, (counts.get(y) ?? 0) + 1);
  const top = new Set([...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, 3).map(([y]) => y));
  const ex = buildExamples(u, spec, own ? { contextFrom: own } : undefined);
  let h = 0;
  for (const y of ex.y.subarray(0, ex.count)) if (top.has(y)) h += 1;
  hits += h;
  events += ex.count;
  if (ex.count > 0) macro += h / ex.count;
}
console.log(JSON.stringify({ train: join(values.train), eval: join(values.eval), users: evalUsers.length, events, top3Micro: hits / events, top3Macro: macro / evalUsers.length }));
