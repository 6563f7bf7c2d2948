/**
 * A run launched from a public initial model (real coordinator, Redis, gRPC over TLS): the
 * coordinator starts from the pinned checkpoint, the ledger's run-launch entry records its hash
 * and public provenance, and a checkpoint whose weights differ from the pinned hash is refused.
 */
import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initialWeights, saveCheckpoint, weightsHash } from "../shared/model/index.ts";
import { TINY_MODEL, tinyRunSpec } from "./support/cluster.ts";
import { useSuiteCluster } from "./support/suite-cluster.ts";
import { ledgerText } from "./support/ledger-text.ts";

describe("run launch with a public initial model", () => {
  const cluster = useSuiteCluster();

  it("starts from the pinned checkpoint and records its hash and public source in the ledger", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tacit-public-cp-"));
    const weights = initialWeights(TINY_MODEL, 99);
    const sha256 = await saveCheckpoint(join(dir, "cp"), TINY_MODEL, weights, { source: "public" });
    const initialModel = { checkpoint: join(dir, "cp"), sha256, source: "public" as const, dataset: "public-test-set" };
    const runId = await cluster().launch(tinyRunSpec({ initialModel }));
    const cp = await cluster().coordinator.checkpoints.latest(runId);
    expect(weightsHash(cp!.weights)).toBe(sha256); // no device joined yet: the latest checkpoint is the initial one
    const entries = ledgerText(cluster().stateDir).trim().split("\n").map((l) => JSON.parse(l) as { type: string; body: { runId?: string; initialModelHash?: string; spec?: { initialModel?: { source: string; sha256: string } } } });
    const launch = entries.find((e) => e.type === "run-launch" && e.body.runId === runId)!;
    expect(launch.body.initialModelHash).toBe(sha256);
    expect(launch.body.spec?.initialModel).toMatchObject({ source: "public", sha256 });

    // The same checkpoint under a different pinned hash: refused before anything is written.
    await expect(cluster().launch(tinyRunSpec({ initialModel: { ...initialModel, sha256: "f".repeat(64) } }))).rejects.toThrow(/SHA-256/);
  }, 60_000);
});
