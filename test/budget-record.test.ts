/**
 * The device's budget record (client/participant/budget-record.ts) entry by entry: what a charge,
 * a reveal and an outcome change, and what they must leave alone. The record decides the ε the
 * device's guard sees, so a wrong match (another run, round or attempt) is an under-count or a
 * double count; and it must survive a restart exactly as written.
 */
import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BudgetRecord, type BudgetEntry } from "../client/participant/budget-record.ts";
import type { DpEvent } from "../shared/dp/index.ts";

const ev = (z: number): DpEvent => ({ kind: "gaussian", noiseMultiplier: z });
const entry = (runId: string, round: number, attempt: number, z = 1): BudgetEntry => ({ runId, round, attempt, event: ev(z), at: attempt });
const view = (b: BudgetRecord): string[] => b.list().map((e) => `${e.runId}/${e.round}/${e.attempt}:${e.outcome ?? "-"}${e.revealed ? "+r" : ""}`);

describe("charge", () => {
  it("a repeated charge of the same attempt is ignored; another run, round or attempt is a new entry", () => {
    const b = new BudgetRecord();
    b.charge(entry("a", 0, 0, 1));
    b.charge(entry("a", 0, 0, 9));
    b.charge(entry("b", 0, 0, 2));
    b.charge(entry("a", 1, 0, 3));
    expect(view(b)).toEqual(["a/0/0:-", "b/0/0:-", "a/1/0:-"]);
    expect(b.events()).toEqual([ev(1), ev(2), ev(3)]);
  });

  it("a re-run supersedes only the same run and round's earlier, unrevealed, still-open attempts", () => {
    const b = new BudgetRecord();
    b.charge(entry("a", 0, 0)); // same run/round, earlier, unrevealed, open → superseded
    b.charge(entry("a", 0, 1)); // ...this one becomes the re-run
    b.charge(entry("b", 0, 0)); // another run
    b.charge(entry("a", 1, 0)); // another round
    b.charge(entry("a", 2, 0));
    b.markRevealed("a", 2, 0); // revealed: stays charged
    b.charge(entry("a", 3, 0));
    b.markOutcome("a", 3, 0, "aborted"); // has an outcome: stays charged
    b.charge(entry("a", 4, 5)); // a later attempt charged first...
    for (const round of [2, 3]) b.charge(entry("a", round, 1));
    b.charge(entry("a", 4, 3)); // ...an earlier attempt charged after it does not supersede it
    b.charge(entry("a", 0, 2)); // attempt 1 is still open and unrevealed: superseded now
    expect(view(b)).toEqual([
      "a/0/0:superseded", "a/0/1:superseded", "b/0/0:-", "a/1/0:-", "a/2/0:-+r", "a/3/0:aborted",
      "a/4/5:-", "a/2/1:-", "a/3/1:-", "a/4/3:-", "a/0/2:-",
    ]);
    expect(b.events()).toHaveLength(9);
  });
});

describe("markRevealed", () => {
  it("marks exactly the attempt named, and nothing when there is none", () => {
    const b = new BudgetRecord();
    for (const e of [entry("a", 0, 0), entry("a", 0, 1), entry("b", 0, 0), entry("a", 1, 0)]) b.charge(e);
    b.markRevealed("a", 0, 1);
    b.markRevealed("zzz", 0, 0);
    expect(view(b)).toEqual(["a/0/0:superseded", "a/0/1:-+r", "b/0/0:-", "a/1/0:-"]);
  });
});

describe("markOutcome", () => {
  it("sets the attempt's outcome, aborts that round's earlier open attempts, and leaves later attempts, closed entries and other rounds alone", () => {
    const b = new BudgetRecord();
    b.charge(entry("a", 0, 0));
    b.markRevealed("a", 0, 0); // revealed, so attempt 1 does not supersede it
    b.charge(entry("a", 0, 1));
    b.charge(entry("a", 0, 3));
    b.charge(entry("b", 0, 0));
    b.charge(entry("a", 1, 0));
    b.charge(entry("a", 2, 0));
    b.markOutcome("a", 2, 0, "aborted");
    b.markOutcome("a", 0, 1, "completed");
    expect(view(b)).toEqual(["a/0/0:aborted+r", "a/0/1:superseded", "a/0/3:-", "b/0/0:-", "a/1/0:-", "a/2/0:aborted"]);
    b.markOutcome("a", 2, 0, "completed"); // an outcome already recorded is not rewritten
    expect(b.list().at(-1)!.outcome).toBe("aborted");
  });
});

describe("persistence", () => {
  it("every change is on disk (mode 0600) before the call returns, and a new record reads it back exactly", () => {
    const path = join(mkdtempSync(join(tmpdir(), "tacit-budget-")), "budget.json");
    const b = new BudgetRecord(path);
    b.charge(entry("a", 0, 0));
    expect(JSON.parse(readFileSync(path, "utf8"))).toEqual({ entries: [entry("a", 0, 0)] });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    b.markRevealed("a", 0, 0);
    expect(new BudgetRecord(path).list()).toEqual([{ ...entry("a", 0, 0), revealed: true }]);
    b.markOutcome("a", 0, 0, "completed");
    const again = new BudgetRecord(path);
    expect(again.list()).toEqual(b.list());
    expect(again.events()).toEqual([ev(1)]);
  });

  it("a record file without entries reads as empty; a missing file too; no path writes nothing", () => {
    const dir = mkdtempSync(join(tmpdir(), "tacit-budget-"));
    writeFileSync(join(dir, "empty.json"), "{}");
    expect(new BudgetRecord(join(dir, "empty.json")).list()).toEqual([]);
    const fresh = new BudgetRecord(join(dir, "missing.json"));
    expect(fresh.list()).toEqual([]);
    const mem = new BudgetRecord();
    mem.charge(entry("a", 0, 0));
    expect(mem.list()).toHaveLength(1);
  });

  it("a record that cannot be written throws rather than pretend the charge is durable", () => {
    const file = join(mkdtempSync(join(tmpdir(), "tacit-budget-")), "file");
    writeFileSync(file, "");
    const b = new BudgetRecord(join(file, "budget.json"));
    expect(() => b.charge(entry("a", 0, 0))).toThrow();
  });
});
