/**
 * What a device or privacy reviewer relies on in shared/ledger's member commitment, model
 * releases, initial-model check and local copy, pinned where run `ledger-rest` (issue #16) found
 * no test that noticed a change:
 *
 *  - the member commitment against an independent computation (salt = HMAC-SHA256 over the
 *    domain-separated id with the hex-decoded key, leaves sorted by id, RFC 9162 root, the lists'
 *    HMAC), so a verifier written elsewhere gets the same root;
 *  - a device view never carries a proof the full entry happened to hold (another device's id);
 *  - `provenRoles` refuses a proof whose fields say something else than what it proves: its
 *    `deviceId` naming another device, hex that is not exactly 64 lowercase digits (which
 *    `Buffer.from(…, "hex")` would silently truncate to the real hash), and values that only
 *    look like strings or booleans; it never throws for them;
 *  - `memberKeyProblem` refuses a key that only stringifies to hex;
 *  - the local copy keeps only rounds and attestations, and a changed type at the same seq and
 *    hash is a mismatch; its messages (shown by `tacit client status --verify`) are exact;
 *  - the initial-model check: the launch hash must be exactly 64 hex digits, the message quotes
 *    at most 80 characters of it, and only round 0 is held to the initial model;
 *  - model releases: blank lines, a launch without spec, and entries of other types.
 */
import { createHash, createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { generateEd25519 } from "../shared/crypto/index.ts";
import {
  checkLocalCopy,
  filterEntriesForDevice,
  firstRoundModelProblem,
  hashedBody,
  launchInitialModelProblems,
  memberKeyProblem,
  memberTree,
  memberView,
  parseEntry,
  provenRoles,
  sealChain,
  sealEntry,
  type LedgerEntry,
} from "../shared/ledger/index.ts";
import { canonicalJson } from "../shared/crypto/index.ts";
import { ModelReleaseError, findRelease, modelReleases } from "../shared/ledger/model-releases.ts";

const COORDINATOR = generateEd25519();
const KEY = "3c".repeat(32);

// ---- an independent member commitment (RFC 9162 §2.1.1, recursive) ----
const sha = (...parts: Buffer[]): Buffer => createHash("sha256").update(Buffer.concat(parts)).digest();
function mth(leafData: Buffer[]): Buffer {
  if (leafData.length === 0) return sha();
  if (leafData.length === 1) return sha(Buffer.from([0]), leafData[0]!);
  let k = 1;
  while (k * 2 < leafData.length) k *= 2;
  return sha(Buffer.from([1]), mth(leafData.slice(0, k)), mth(leafData.slice(k)));
}
const saltOf = (id: string): string => createHmac("sha256", Buffer.from(KEY, "hex")).update(`tacit/ledger-member/v1|${id}`).digest("hex");
function expectedCommitment(members: [id: string, inCohort: boolean, survived: boolean, declined: boolean][], lists: string) {
  const sorted = [...members].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const leaves = sorted.map(([id, c, s, d]) => Buffer.from(`{"declined":${d},"deviceId":${JSON.stringify(id)},"inCohort":${c},"salt":"${saltOf(id)}","survived":${s}}`, "utf8"));
  return { root: mth(leaves).toString("hex"), lists: createHmac("sha256", Buffer.from(KEY, "hex")).update(lists).digest("hex"), count: members.length };
}

const IDS = ["dev-e", "dev-b", "dev-d", "dev-a", "dev-c"]; // written out of order on purpose
const full = { runId: "run-1", round: 0, status: "completed", cohort: IDS, survivors: ["dev-e", "dev-a", "dev-c"], declined: ["dev-b"], memberKey: KEY };

type View = { members: Record<string, unknown>; memberProof: Record<string, unknown> & { path: string[] } };
const viewOf = (id: string): View => memberView(full, id) as unknown as View;

describe("the member commitment, computed independently", () => {
  it("salts each id with HMAC(hex key, domain|id), sorts the leaves by id, and commits the lists as written", () => {
    const want = expectedCommitment(
      [
        ["dev-e", true, true, false],
        ["dev-b", true, false, true],
        ["dev-d", true, false, false],
        ["dev-a", true, true, false],
        ["dev-c", true, true, false],
      ],
      `{"cohort":${JSON.stringify(IDS)},"declined":["dev-b"],"survivors":["dev-e","dev-a","dev-c"]}`,
    );
    expect(memberTree(full)!.commitment).toEqual(want);
    const view = viewOf("dev-b");
    expect(view.members).toEqual(want);
    expect(view.memberProof).toMatchObject({ deviceId: "dev-b", salt: saltOf("dev-b"), index: 1, roles: { inCohort: true, survived: false, declined: true } });
    expect(provenRoles(view as unknown as Record<string, unknown>, "dev-b")).toEqual({ inCohort: true, survived: false, declined: true });
  });

  it("names only the listed devices when a list is absent (no declined field: nobody declined)", () => {
    const { declined: _d, ...noDeclined } = full;
    const tree = memberTree(noDeclined)!;
    expect(tree.members.map((m) => m.deviceId)).toEqual(["dev-a", "dev-b", "dev-c", "dev-d", "dev-e"]);
    expect(tree.commitment).toEqual(
      expectedCommitment(
        IDS.map((id) => [id, true, ["dev-e", "dev-a", "dev-c"].includes(id), false]),
        `{"cohort":${JSON.stringify(IDS)},"declined":null,"survivors":["dev-e","dev-a","dev-c"]}`,
      ),
    );
  });

  it("serves no device a proof the full entry carried, and leaves it out of the hashed form", () => {
    const stray = { ...full, memberProof: viewOf("dev-a").memberProof };
    const outsider = memberView(stray, "dev-outsider");
    expect(outsider.memberProof).toBeUndefined();
    expect(JSON.stringify(outsider)).not.toContain("dev-a");
    expect((memberView(stray, "dev-b").memberProof as { deviceId: string }).deviceId).toBe("dev-b");
    expect(canonicalJson(hashedBody(stray))).toBe(canonicalJson(hashedBody(full)));
  });

  it("refuses a member key that is not a string, even one that stringifies to 64 hex digits", () => {
    expect(memberKeyProblem({ ...full, memberKey: [KEY] })).toBe("memberKey is not 32 bytes of hex");
    const line = JSON.stringify(sealEntry({ seq: 1, prevHash: "ab".repeat(32), time: 1, type: "round", body: { ...full, memberKey: [KEY] } }, COORDINATOR.privateKey));
    expect(() => parseEntry(line, 4)).toThrow("line 4: memberKey is not 32 bytes of hex");
  });
});

describe("provenRoles refuses a proof whose fields are not what it proves", () => {
  const id = "dev-d";
  const view = viewOf(id);
  const roles = { inCohort: true, survived: false, declined: false };
  const withProof = (change: Record<string, unknown>) => ({ ...view, memberProof: { ...view.memberProof, ...change } });
  const withMembers = (change: Record<string, unknown>) => ({ ...view, members: { ...view.members, ...change } });
  const root = view.members.root as string;
  const path = view.memberProof.path;

  it("proves the owner's roles from the honest view (the baseline every refusal below changes one field of)", () => {
    expect(path.length).toBeGreaterThan(0);
    expect(provenRoles(view, id)).toEqual(roles);
  });

  it("a proof whose deviceId names another device proves nothing, even against its owner's id", () => {
    expect(provenRoles(withProof({ deviceId: "dev-a" }), id)).toBeUndefined();
    expect(provenRoles(withProof({ deviceId: undefined }), id)).toBeUndefined();
  });

  it("hex that Buffer.from would truncate to the real hash is refused: trailing or leading junk, upper case", () => {
    expect(provenRoles(withMembers({ root: `${root}zz` }), id)).toBeUndefined();
    expect(provenRoles(withMembers({ root: `${root}z${"00".repeat(32)}` }), id)).toBeUndefined();
    expect(Buffer.from(`${root}z${"00".repeat(32)}`, "hex").toString("hex")).toBe(root); // what a weaker check would accept
    expect(provenRoles(withProof({ path: [path[0]!.toUpperCase(), ...path.slice(1)] }), id)).toBeUndefined();
    expect(provenRoles(withProof({ path: [`${path[0]!}zz`, ...path.slice(1)] }), id)).toBeUndefined();
  });

  it("a root or path hash that is a String object, not a string, is refused", () => {
    expect(provenRoles(withMembers({ root: Object(root) as unknown }), id)).toBeUndefined();
    expect(provenRoles(withProof({ path: [Object(path[0]!) as unknown, ...path.slice(1)] }), id)).toBeUndefined();
  });

  it("a salt or role that only stringifies right (a bigint) proves nothing and does not throw", () => {
    const big = 10n ** 63n; // String(big) is 64 decimal digits
    const bad: Record<string, unknown>[] = [
      { salt: big },
      { roles: { ...roles, inCohort: 1n } },
      { roles: { ...roles, survived: 0n } },
      { roles: { ...roles, declined: 0n } },
    ];
    for (const change of bad) {
      expect(() => provenRoles(withProof(change), id), Object.keys(change).join()).not.toThrow();
      expect(provenRoles(withProof(change), id)).toBeUndefined();
    }
  });
});

// ---- the device's local copy ----
const entry = (seq: number, type: LedgerEntry["type"], hash: string, body: Record<string, unknown> = {}): LedgerEntry => ({ seq, prevHash: "00".repeat(32), time: 0, type, body, hash, signature: "" });

describe("the device's local copy", () => {
  it("keeps rounds and own attestations only: an evaluation or launch listing the device is not kept", () => {
    const entries = [
      entry(1, "run-launch", "a1".repeat(32), { runId: "r", cohort: ["d0"] }),
      entry(2, "evaluation", "a2".repeat(32), { runId: "r", cohort: ["d0"], survivors: ["d0"] }),
      entry(3, "round", "a3".repeat(32), { runId: "r", cohort: ["d0"] }),
      entry(4, "attestation", "a4".repeat(32), { deviceId: "d0" }),
    ];
    expect(filterEntriesForDevice(entries, "d0").map((e) => e.seq)).toEqual([3, 4]);
  });

  it("names a missing entry, a changed hash and a changed type with exact messages", () => {
    const local = [entry(3, "round", "a3".repeat(32)), entry(4, "attestation", "a4".repeat(32)), entry(5, "round", "a5".repeat(32))];
    const theirs = [entry(3, "evaluation", "a3".repeat(32)), entry(5, "round", "b5".repeat(32))];
    expect(checkLocalCopy(local, theirs)).toEqual([
      { seq: 3, problem: "changed", message: `entry 3 (round) differs: local hash ${"a3".repeat(6)}…, ledger has ${"a3".repeat(6)}…` },
      { seq: 4, problem: "missing", message: "entry 4 (attestation) is missing from the coordinator's ledger" },
      { seq: 5, problem: "changed", message: `entry 5 (round) differs: local hash ${"a5".repeat(6)}…, ledger has ${"b5".repeat(6)}…` },
    ]);
  });
});

// ---- the run's initial model ----
const X = "ab".repeat(32);
const Y = "cd".repeat(32);

describe("the initial-model check", () => {
  it("refuses a launch hash that is not exactly 64 hex digits, quoting at most 80 characters of it", () => {
    const msg = (v: unknown) => launchInitialModelProblems({ runId: "r", spec: undefined, initialModelHash: v });
    expect(msg(X)).toEqual([]);
    expect(msg(`zz${X}`)).toEqual([`run r: the launch entry's initialModelHash "zz${X}" is not a SHA-256`]);
    expect(msg(`${X}zz`)).toEqual([`run r: the launch entry's initialModelHash "${X}zz" is not a SHA-256`]);
    expect(msg("f".repeat(200))).toEqual([`run r: the launch entry's initialModelHash "${"f".repeat(79)} is not a SHA-256`]);
    expect(msg(() => X)).toEqual(["run r: the launch entry's initialModelHash undefined is not a SHA-256"]);
  });

  it("holds only round 0 to the initial model", () => {
    expect(firstRoundModelProblem("r", X, 1, 0, Y)).toBeUndefined();
    expect(firstRoundModelProblem("r", X, 0, 2, Y)).toBe(`run r round 0 attempt 2: trained from model ${Y}, not the initial model ${X} the launch recorded`);
  });
});

// ---- model releases ----
describe("model releases", () => {
  const h = (c: string): string => c.repeat(64);
  const lines = sealChain(
    [
      { type: "run-launch", body: { runId: "run-a", initialModelHash: h("a") } },
      { type: "evaluation", body: { runId: "run-a", round: 0, status: "completed", modelHashAfter: h("e") } },
      { type: "round", body: { runId: "run-a", round: 0, status: "completed", modelHashAfter: h("1") } },
      { type: "run-launch", body: { runId: "run-b", spec: { model: 1, initialModel: { source: "private", sha256: h("b") } }, initialModelHash: h("b") } },
      { type: "run-launch", body: { runId: "run-c", spec: { model: 2 }, initialModelHash: h("c") } },
      { type: "run-launch", body: { runId: "run-d", spec: { model: 3, initialModel: { source: "public", sha256: h("d") } }, initialModelHash: h("d") } },
    ],
    undefined,
    1,
    COORDINATOR.privateKey,
  ).map((e) => JSON.stringify(e));

  it("skips blank lines; a launch without spec (or without initialModel) releases a non-public initial model; other entry types release nothing", () => {
    expect(modelReleases(`\n${lines.join("\n\n")}\n\n`)).toEqual([
      { runId: "run-a", round: -1, modelHash: h("a"), seq: 0, spec: undefined, public: false },
      { runId: "run-a", round: 0, modelHash: h("1"), seq: 2, spec: undefined },
      { runId: "run-b", round: -1, modelHash: h("b"), seq: 3, spec: 1, public: false },
      { runId: "run-c", round: -1, modelHash: h("c"), seq: 4, spec: 2, public: false },
      { runId: "run-d", round: -1, modelHash: h("d"), seq: 5, spec: 3, public: true },
    ]);
  });

  it("refuses with an error named ModelReleaseError", () => {
    const err = (() => {
      try {
        findRelease([], "run-z");
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ModelReleaseError);
    expect(String(err)).toBe("ModelReleaseError: run run-z is not in the ledger");
  });
});
