/**
 * Issue 18: coordinators sharing one store share one policy. The policy in force is the ledger's
 * latest policy entry, not a file in one coordinator's state dir, so a policy a reviewer installs
 * through the active coordinator binds a standby that takes over later.
 */
import { describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateEd25519 } from "../shared/crypto/index.ts";
import { signPolicy, verifyPolicy } from "../shared/dp/index.ts";
import { PrivacyLedger } from "../coordinator/ledger/privacy-ledger.ts";
import { DirectoryStore } from "../coordinator/store/directory-store.ts";

describe("the policy in force", () => {
  it("is the ledger's latest policy entry, seen by every coordinator on the store", async () => {
    const root = mkdtempSync(join(tmpdir(), "tacit-policy-"));
    const store = new DirectoryStore(join(root, "store"));
    const key = generateEd25519();
    // Two coordinators, each with its own state dir, on one store.
    const a = await PrivacyLedger.open(store, { ledger: join(root, "a", "ledger.jsonl") }, key);
    const b = await PrivacyLedger.open(store, { ledger: join(root, "b", "ledger.jsonl") }, key);
    expect(await b.policyInForce()).toBeUndefined();

    const reviewer = generateEd25519();
    const body = { version: 1 as const, minNoiseMultiplier: 0.8, maxDeviceEpsilon: 12, delta: 1e-8, minSurvivors: 5, allowedSignals: ["commit"] };
    const first = signPolicy(body, reviewer.privateKey, reviewer.publicKey);
    await a.policy(first, JSON.stringify(first));
    expect(verifyPolicy(await b.policyInForce()).body).toEqual(body);

    // A later policy replaces it, for both.
    const stricter = signPolicy({ ...body, maxDeviceEpsilon: 4 }, reviewer.privateKey, reviewer.publicKey);
    await b.policy(stricter, JSON.stringify(stricter));
    expect(verifyPolicy(await a.policyInForce()).body.maxDeviceEpsilon).toBe(4);
  });
});
