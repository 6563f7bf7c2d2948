/**
 * Carves a held-out split out of a directory of per-user files, so a run can be judged on data
 * it never trained on: the first (1 − f) of each user's events (time order) go to OUT/train, the
 * last f to OUT/eval, with the same file names. The cut is `splitHoldout`'s, the one the
 * experiment scripts use in memory, so `tacit simulate --dataset OUT/train --eval-dir OUT/eval`
 * sees exactly their split.
 *
 *   npx tsx scripts/carve-holdout.ts --dataset ../shared/datasets/devactions-large --out DIR [--eval-fraction 0.3]
 */
import { mkdirSync, writeFileSync, existsSync, readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import { readDevactionsDir, splitHoldout, type ActionEvent } from "../shared/data/index.ts";

const { values } = parseArgs({
  options: {
    dataset: { type: "string" },
    out: { type: "string" },
    "eval-fraction": { type: "string", default: "0.3" },
  },
});
if (!values.dataset || !values.out) {
  console.error("usage: carve-holdout --dataset DIR --out DIR [--eval-fraction 0.3]");
  process.exit(2);
}
const fraction = Number(values["eval-fraction"]);
if (!(fraction > 0 && fraction < 1)) {
  console.error(`carve-holdout: --eval-fraction must be in (0, 1), got ${values["eval-fraction"]}`);
  process.exit(2);
}
for (const part of ["train", "eval"]) {
  const dir = join(values.out, part);
  // Refuse to mix a new carve into an old one: a stale file would silently join the run.
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    console.error(`carve-holdout: ${dir} is not empty; choose a new --out`);
    process.exit(2);
  }
  mkdirSync(dir, { recursive: true });
}

const tsv = (events: ActionEvent[]) => events.map((e) => `${e.time}\t${e.token}\n`).join("");
let trainEvents = 0;
let evalEvents = 0;
const users = await readDevactionsDir(values.dataset);
for (const u of users) {
  const { train, eval: held } = splitHoldout(u, fraction);
  const name = basename(u.source);
  writeFileSync(join(values.out, "train", name), tsv(train.events));
  // A one-event user has nothing held out, and an empty file is not a valid dataset file.
  if (held.events.length > 0) writeFileSync(join(values.out, "eval", name), tsv(held.events));
  trainEvents += train.events.length;
  evalEvents += held.events.length;
}
console.log(`${users.length} users: ${trainEvents} training events in ${join(values.out, "train")}, ${evalEvents} held-out events in ${join(values.out, "eval")}`);
