/**
 * The member commitment of round entries (finding L1, ledger side): the Merkle tree against
 * RFC 9162's recursive definition, the device view (same hash, own roles only, no other id), and
 * that every edit of the full entry's lists or key changes the entry hash.
 */
import { describe, expect, it } from "vitest";
import { canonicalJson, generateEd25519 } from "../shared/crypto/index.ts";
import {
  entryHash,
  hashedBody,
  LedgerFormatError,
  memberKeyProblem,
  memberTree,
  memberView,
  parseEntry,
  provenRoles,
  sealEntry,
} from "../shared/ledger/index.ts";

const IDS = Array.from({ length: 9 }, (_, i) => `dev-${(0x1000 + i * 7919).toString(16)}aa55`);
const KEY = "5e".repeat(32);
function roundBody(o: { cohort?: string[]; survivors?: string[]; declined?: string[]; memberKey?: string } = {}): Record<string, unknown> {
  const cohort = o.cohort ?? IDS;
  return { runId: "run-1", round: 3, attempt: 0, status: "completed", cohort, survivors: o.survivors ?? cohort.slice(0, 6), declined: o.declined ?? [cohort[8]!], memberKey: o.memberKey ?? KEY, phases: { invited: cohort.length } };
}
const COORDINATOR = generateEd25519();
const seal = (body: Record<string, unknown>) => sealEntry({ seq: 7, prevHash: "ab".repeat(32), time: 1, type: "round", body }, COORDINATOR.privateKey);

describe("a device's view of a round entry", () => {
  const full = roundBody();
  const entry = seal(full);

  it("hashes to the full entry's hash for every member, proves that member's roles, and names no one else", () => {
    for (const id of IDS) {
      const view = memberView(full, id);
      expect(entryHash({ ...entry, body: view })).toBe(entry.hash);
      const i = IDS.indexOf(id);
      expect(provenRoles(view, id)).toEqual({ inCohort: true, survived: i < 6, declined: i === 8 });
      const text = JSON.stringify(view);
      for (const other of IDS) if (other !== id) expect(text.includes(other), `${id}'s view names ${other}`).toBe(false);
      expect(text).not.toContain(KEY);
      expect(view).toMatchObject({ members: { count: 9 } });
    }
  });

  it("proves nothing for another device, with altered roles or salt, or against another entry's root", () => {
    const view = memberView(full, IDS[1]!) as { memberProof: { roles: Record<string, boolean>; salt: string }; members: { root: string } };
    expect(provenRoles(view, IDS[2]!)).toBeUndefined();
    expect(provenRoles({ ...view, memberProof: { ...view.memberProof, deviceId: IDS[2]! } }, IDS[2]!)).toBeUndefined();
    expect(provenRoles({ ...view, memberProof: { ...view.memberProof, roles: { ...view.memberProof.roles, survived: false } } }, IDS[1]!)).toBeUndefined();
    expect(provenRoles({ ...view, memberProof: { ...view.memberProof, salt: "00".repeat(32) } }, IDS[1]!)).toBeUndefined();
    const otherRoot = (memberView(roundBody({ memberKey: "77".repeat(32) }), IDS[1]!) as { members: unknown }).members;
    expect(provenRoles({ ...view, members: otherRoot }, IDS[1]!)).toBeUndefined();
    expect(provenRoles({ ...view, memberProof: undefined }, IDS[1]!)).toBeUndefined();
  });

  it("proves nothing, and never throws, for a proof or commitment of the wrong shape", () => {
    const view = memberView(full, IDS[1]!) as { memberProof: Record<string, unknown>; members: Record<string, unknown> };
    expect(provenRoles(view, IDS[1]!)).toBeDefined();
    const proofs: Record<string, unknown>[] = [
      { path: "ab".repeat(32) },
      { path: [...(view.memberProof.path as string[]), 42] },
      { path: ["zz".repeat(32)] },
      { salt: 7 },
      { salt: "5E".repeat(32) },
      { roles: undefined },
      { roles: { inCohort: "yes", survived: false, declined: false } },
      { roles: { inCohort: true, survived: 1, declined: false } },
      { roles: { inCohort: true, survived: false, declined: null } },
    ];
    for (const change of proofs) {
      const bad = { ...view, memberProof: { ...view.memberProof, ...change } };
      expect(() => provenRoles(bad, IDS[1]!), JSON.stringify(change)).not.toThrow();
      expect(provenRoles(bad, IDS[1]!), JSON.stringify(change)).toBeUndefined();
    }
    for (const change of [{ root: 5 }, { root: "AB".repeat(32) }, { count: "9" }, { count: 9.5 }]) {
      const bad = { ...view, members: { ...view.members, ...change } };
      expect(() => provenRoles(bad, IDS[1]!), JSON.stringify(change)).not.toThrow();
      expect(provenRoles(bad, IDS[1]!), JSON.stringify(change)).toBeUndefined();
    }
  });

  it("of a device the entry does not name: the counts, no proof, no id", () => {
    const view = memberView(full, "dev-outsider");
    expect(entryHash({ ...entry, body: view })).toBe(entry.hash);
    expect(view.memberProof).toBeUndefined();
    for (const id of IDS) expect(JSON.stringify(view)).not.toContain(id);
  });

  it("leaves an entry without a member key as it was written", () => {
    const { memberKey: _k, ...old } = full;
    expect(memberView(old, IDS[0]!)).toBe(old);
    expect(hashedBody(old)).toBe(old);
    expect(memberTree(old)).toBeUndefined();
  });

  it("changes the entry hash with any edit of the lists (order, duplicate, role, member) or of the key", () => {
    const edits: Record<string, Record<string, unknown>> = {
      reordered: roundBody({ cohort: [...IDS].reverse() }),
      duplicate: roundBody({ survivors: [...IDS.slice(0, 6), IDS[0]!] }),
      roleChanged: roundBody({ survivors: IDS.slice(0, 5) }),
      memberAdded: roundBody({ cohort: [...IDS, "dev-extra"] }),
      declineDropped: roundBody({ declined: [] }),
      otherKey: roundBody({ memberKey: "5f".repeat(32) }),
    };
    for (const [name, body] of Object.entries(edits)) expect(entryHash({ ...entry, body }), name).not.toBe(entry.hash);
    expect(canonicalJson(hashedBody(roundBody()))).toBe(canonicalJson(hashedBody(full)));
  });

  it("leaves a proof out of the hash only beside a members commitment: on any other body it is content", () => {
    const proof = (memberView(full, IDS[1]!) as { memberProof: unknown }).memberProof;
    const plain = seal({ runId: "run-1", deviceId: IDS[1]!, note: "an entry without member lists" });
    expect(entryHash({ ...plain, body: { ...plain.body, memberProof: proof } })).not.toBe(plain.hash);
    const view = memberView(full, IDS[1]!);
    expect(entryHash({ ...entry, body: { ...view, memberProof: proof } })).toBe(entry.hash);
  });
});

describe("parseEntry and member keys", () => {
  const line = (body: Record<string, unknown>) => JSON.stringify(seal(body));
  it("refuses a malformed member key and a full entry that also carries a commitment or proof", () => {
    expect(memberKeyProblem(roundBody())).toBeUndefined();
    expect(() => parseEntry(line(roundBody({ memberKey: "5e".repeat(31) })), 1)).toThrow(/memberKey is not 32 bytes of hex/);
    expect(() => parseEntry(line(roundBody({ memberKey: "ZZ".repeat(32) })), 1)).toThrow(LedgerFormatError);
    // The whole string is the key: 64 hex digits with anything before or after are not one.
    for (const memberKey of [`x${KEY}`, `${KEY}00`, `${KEY}\n`]) expect(memberKeyProblem(roundBody({ memberKey })), JSON.stringify(memberKey)).toMatch(/not 32 bytes of hex/);
    expect(() => parseEntry(line({ ...roundBody(), members: { root: "00".repeat(32), lists: "", count: 1 } }), 1)).toThrow(/no members commitment or memberProof/);
    expect(() => parseEntry(line({ ...roundBody(), memberProof: {} }), 1)).toThrow(/no members commitment or memberProof/);
    expect(parseEntry(line(roundBody()), 1).body.memberKey).toBe(KEY);
  });
});
