import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatasetError, parseDevactions, readDevactionsDir, splitHoldout } from "../shared/data/index.ts";

describe("devactions dataset reader", () => {
  it("reads the shipped dataset: 51 users, time-ordered", async () => {
    const users = await readDevactionsDir("data/devactions");
    expect(users).toHaveLength(51);
    expect(users.reduce((a, u) => a + u.events.length, 0)).toBe(90_007);
    for (const u of users) for (let i = 1; i < u.events.length; i++) expect(u.events[i]!.time).toBeGreaterThanOrEqual(u.events[i - 1]!.time);
  });

  it.each([
    ["1\ta\n2\n", /user\.tsv line 2: expected '<unix seconds>\\t<token>'/],
    ["1\ta\nx\tb\n", /line 2: time 'x' is not unix seconds/],
    ["5\ta\n4\tb\n", /line 2: time 4 goes backwards/],
    ["1\ta\tb\n", /exactly one tab/],
    ["1\t\n", /token is empty/],
    ["", /no actions/],
    ["1\ta\n\n2\tb\n", /line 2: empty line/],
  ])("names the file and line of a malformed input %#", (text, re) => {
    expect(() => parseDevactions(text, "/x/user.tsv")).toThrow(DatasetError);
    expect(() => parseDevactions(text, "/x/user.tsv")).toThrow(re);
  });

  it("refuses a missing directory, an empty one, and a bad file inside one", async () => {
    await expect(readDevactionsDir("/nonexistent/dir")).rejects.toThrow(/cannot read dataset directory/);
    const empty = mkdtempSync(join(tmpdir(), "tacit-data-"));
    await expect(readDevactionsDir(empty)).rejects.toThrow(/no \.tsv user files/);
    writeFileSync(join(empty, "user-1.tsv"), "1\tok\nbad line\n");
    await expect(readDevactionsDir(empty)).rejects.toThrow(/user-1\.tsv line 2/);
  });

  it("holds back the last fraction of each sequence, by time", () => {
    const seq = parseDevactions(Array.from({ length: 100 }, (_, i) => `${i}\tt${i}`).join("\n") + "\n", "u.tsv");
    const { train, eval: ev } = splitHoldout(seq, 0.1);
    expect(train.events).toHaveLength(90);
    expect(ev.events).toHaveLength(10);
    expect(ev.events[0]!.time).toBe(90);
    expect(() => splitHoldout(seq, 1.5)).toThrow(DatasetError);
  });
});
