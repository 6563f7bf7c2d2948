/**
 * Computes Tacit's PLD ε for every Poisson record of test/fixtures/dp-accounting-vectors.json
 * (the dp_accounting reference grid) and prints one JSON line per record:
 *   {"index": i, "epsilon": ε, "seconds": s}
 * `node --import tsx scripts/dp-reference/pld-grid.ts [fixture]`. test/dp-pld-grid.test.ts runs it as
 * a child process, so that minutes of FFT work at the grid's extreme corners do not block the
 * test worker.
 */
import { readReferenceVectors } from "./reference-vectors.ts";
import { epsilonFor } from "../../cli/commands/privacy.ts";


const file = process.argv[2] ?? "test/fixtures/dp-accounting-vectors.json";
const vectors = readReferenceVectors(file);
vectors.forEach((v, index) => {
  if (v.sampling !== "poisson") return;
  const t0 = performance.now();
  const epsilon = epsilonFor({ noiseMultiplier: v.z, sampleRate: v.q, steps: v.steps, delta: v.delta, accountant: "pld", sampling: "poisson", population: 1_000_000 });
  process.stdout.write(JSON.stringify({ index, epsilon, seconds: (performance.now() - t0) / 1000 }) + "\n");
});
