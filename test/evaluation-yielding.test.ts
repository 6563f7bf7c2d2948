/**
 * The simulation evaluates each round's model on the coordinator's own thread while the next
 * round runs. At 934 devices (110k held-out events) a synchronous evaluation blocked that thread
 * for tens of seconds: the devices' keepalive pings went unanswered, their connections dropped,
 * and rounds aborted in ShareKeys with a hundred devices missing, three attempts in a row.
 * evaluateModelYielding gives the same figures and lets the event loop turn after every forward pass.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { parseDevactions } from "../shared/data/index.ts";
import { buildExamples, initBackend, initialWeights, localCounts, Trainer, type ModelSpec } from "../shared/model/index.ts";
import { evaluateModel, evaluateModelYielding, type EvalSet } from "../simulation/evaluation.ts";

const SPEC: ModelSpec = { version: 1, vocabBuckets: 30, window: 3, embedDim: 4, hidden: 6, sessionGapSeconds: 100, output: "tied" };
const TOKENS = ["a", "b", "c", "d", "e", "f", "g"];

function user(id: string, n: number, shift: number): EvalSet {
  const seq = parseDevactions(Array.from({ length: n }, (_, i) => `${i}\t${TOKENS[(i * (shift + 1) + shift) % TOKENS.length]}`).join("\n") + "\n", `${id}.tsv`);
  const cut = Math.floor(n * 0.7);
  const train = { ...seq, events: seq.events.slice(0, cut) };
  const held = { ...seq, events: seq.events.slice(cut) };
  return { userId: id, examples: buildExamples(held, SPEC, { contextFrom: train }), local: localCounts(buildExamples(train, SPEC), SPEC.window) };
}

describe("evaluation on a thread that also serves gRPC", () => {
  beforeAll(async () => {
    await initBackend();
  });

  it("gives evaluateModel's figures while timers keep firing between forward passes", async () => {
    // 3,000 held-out rows of one user: three forward passes of 1,024; one more user.
    const sets = [user("heavy", 10_000, 1), user("light", 40, 2)];
    expect(sets[0]!.examples.count).toBeGreaterThan(2 * 1024);
    const t = new Trainer(SPEC);
    const w = initialWeights(SPEC, 7);
    const expected = evaluateModel(t, w, sets);

    // A 1 ms timer fires only when the event loop turns. Had the evaluation run in one go, the
    // promise would be settled before the first turn and no tick would be counted.
    let ticks = 0;
    const timer = setInterval(() => (ticks += 1), 1);
    const got = await evaluateModelYielding(t, w, sets);
    const ticksDuring = ticks;
    clearInterval(timer);
    t.dispose();

    expect(got).toEqual(expected);
    expect(got.eval.events).toBe(sets[0]!.examples.count + sets[1]!.examples.count);
    expect(got.eval.users).toBe(2);
    expect(ticksDuring).toBeGreaterThanOrEqual(2); // one turn after each of the three passes, the last may not reach a timer
  });
});
