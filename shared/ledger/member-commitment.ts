/**
 * Who was in a round, committed so that each member can be shown its own part and nothing else
 * (finding L1). A round or evaluation entry lists its cohort, survivors and decliners by device
 * id for the reviewer. Its hash, though, covers those lists only through a commitment:
 *
 *   members.root  — an RFC 9162 Merkle tree head over one leaf per named device, sorted by id;
 *                   leaf = canonicalJson({ deviceId, salt, inCohort, survived, declined }), where
 *                   salt = HMAC-SHA256(memberKey, domain | deviceId), so a sibling leaf in a proof
 *                   hides its device even from someone who guesses ids;
 *   members.lists — HMAC-SHA256(memberKey, canonicalJson of the three lists exactly as written),
 *                   so order and duplicates are covered too and any edit changes the hash;
 *   members.count — how many devices the tree holds.
 *
 * `memberKey` (32 random bytes, hex) sits in the full entry, which only reviewers read. A device
 * is served the same entry with the key and the lists replaced by `members` and a `memberProof`
 * of its own leaf: the entry hash, and so the coordinator's signature, still verifies, and the
 * device learns its own roles and the counts, never another member's id or role.
 */
import { createHmac } from "node:crypto";
import { canonicalJson } from "../crypto/canonical-json.ts";
import { inclusionPath, leafHash, merkleLevels, merkleRoot, verifyInclusion } from "../crypto/merkle.ts";

const SALT_DOMAIN = "tacit/ledger-member/v1|";
/** The fields of a full entry that name members; the commitment replaces them in the hash. */
export const MEMBER_LIST_FIELDS = ["cohort", "survivors", "declined"] as const;

export interface MemberRoles {
  inCohort: boolean;
  survived: boolean;
  declined: boolean;
}

export interface MemberCommitment {
  root: string;
  lists: string;
  count: number;
}

/** A device's proof of its own leaf: RFC 9162 inclusion proof, hex hashes from the leaf up. */
export interface MemberProof {
  deviceId: string;
  salt: string;
  roles: MemberRoles;
  index: number;
  path: string[];
}

function memberSalt(memberKey: Buffer, deviceId: string): string {
  return createHmac("sha256", memberKey).update(SALT_DOMAIN + deviceId).digest("hex");
}

function memberLeaf(deviceId: string, salt: string, roles: MemberRoles): Buffer {
  return leafHash(canonicalJson({ deviceId, salt, ...roles }));
}

const idList = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);

/** Every named device with its roles, sorted by id (the leaf order). */
function membersOf(body: Record<string, unknown>): { deviceId: string; roles: MemberRoles }[] {
  const cohort = new Set(idList(body.cohort));
  const survived = new Set(idList(body.survivors));
  const declined = new Set(idList(body.declined));
  return [...new Set([...cohort, ...survived, ...declined])].sort().map((deviceId) => ({
    deviceId,
    roles: { inCohort: cohort.has(deviceId), survived: survived.has(deviceId), declined: declined.has(deviceId) },
  }));
}

/** A full entry's member key, or undefined for a body that has none (older entries, other types). */
function keyOf(body: Record<string, unknown>): Buffer | undefined {
  return typeof body.memberKey === "string" ? Buffer.from(body.memberKey, "hex") : undefined;
}

/** A full entry's members as a tree: built once per entry, then one proof per device. */
export interface MemberTree {
  members: { deviceId: string; salt: string; roles: MemberRoles }[];
  levels: Buffer[][];
  commitment: MemberCommitment;
}

/** The member tree of a full entry, or undefined for a body without a member key. */
export function memberTree(body: Record<string, unknown>): MemberTree | undefined {
  const key = keyOf(body);
  if (!key) return undefined;
  const members = membersOf(body).map((m) => ({ ...m, salt: memberSalt(key, m.deviceId) }));
  const levels = merkleLevels(members.map((m) => memberLeaf(m.deviceId, m.salt, m.roles)));
  const lists = Object.fromEntries(MEMBER_LIST_FIELDS.map((f) => [f, body[f] ?? null]));
  const commitment = {
    root: merkleRoot(levels).toString("hex"),
    lists: createHmac("sha256", key).update(canonicalJson(lists)).digest("hex"),
    count: members.length,
  };
  return { members, levels, commitment };
}

/** The body without its member key, lists and any device's proof: what every view shares. */
function withoutMembers(body: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) if (k !== "memberKey" && k !== "memberProof" && !(MEMBER_LIST_FIELDS as readonly string[]).includes(k)) out[k] = v;
  return out;
}

/**
 * The form of a body that the entry hash covers. A full entry (with `memberKey`) and every
 * device's view of it give the same form. Any other body is hashed as it is, except that a
 * view's `memberProof` (an attachment next to its `members` commitment, never content) is left
 * out; on a body without `members` it is content like any field, so adding one breaks the hash.
 */
export function hashedBody(body: Record<string, unknown>): Record<string, unknown> {
  const tree = memberTree(body);
  if (tree) return { ...withoutMembers(body), members: tree.commitment };
  if (!("memberProof" in body) || !("members" in body)) return body;
  const { memberProof: _proof, ...rest } = body;
  return rest;
}

/** Why a body cannot be a full member-committed entry, or undefined when it is well formed. */
export function memberKeyProblem(body: Record<string, unknown>): string | undefined {
  if (!("memberKey" in body)) return undefined;
  if (typeof body.memberKey !== "string" || !/^[0-9a-f]{64}$/.test(body.memberKey)) return "memberKey is not 32 bytes of hex";
  if ("members" in body || "memberProof" in body) return "an entry with a memberKey carries no members commitment or memberProof of its own";
  return undefined;
}

/**
 * A device's view of a full entry: the hashed form plus the proof of the device's own leaf (none
 * when the entry does not name the device). A body without a member key is returned unchanged:
 * older entries are served as they were written. Pass the entry's tree when serving many devices.
 */
export function memberView(body: Record<string, unknown>, deviceId: string, tree = memberTree(body)): Record<string, unknown> {
  if (!tree) return body;
  const view = { ...withoutMembers(body), members: tree.commitment };
  const index = tree.members.findIndex((m) => m.deviceId === deviceId);
  if (index < 0) return view;
  const own = tree.members[index]!;
  const memberProof: MemberProof = { deviceId, salt: own.salt, roles: own.roles, index, path: inclusionPath(index, tree.levels).map((h) => h.toString("hex")) };
  return { ...view, memberProof };
}

const HEX32 = /^[0-9a-f]{64}$/;

/**
 * The roles a device view proves for `deviceId`, or undefined when it proves nothing: no proof,
 * a proof for another device, or one that does not lead to the committed root.
 */
export function provenRoles(body: Record<string, unknown>, deviceId: string): MemberRoles | undefined {
  const c = body.members as Partial<MemberCommitment> | undefined;
  const p = body.memberProof as Partial<MemberProof> | undefined;
  if (!c || !p || typeof c.root !== "string" || !HEX32.test(c.root) || !Number.isSafeInteger(c.count)) return undefined;
  if (p.deviceId !== deviceId || typeof p.salt !== "string" || !HEX32.test(p.salt) || !Array.isArray(p.path) || !p.path.every((h) => typeof h === "string" && HEX32.test(h))) return undefined;
  const r = p.roles;
  if (!r || typeof r.inCohort !== "boolean" || typeof r.survived !== "boolean" || typeof r.declined !== "boolean") return undefined;
  const roles: MemberRoles = { inCohort: r.inCohort, survived: r.survived, declined: r.declined };
  const leaf = memberLeaf(deviceId, p.salt, roles);
  const ok = verifyInclusion(leaf, Number(p.index), c.count!, p.path.map((h) => Buffer.from(h, "hex")), Buffer.from(c.root, "hex"));
  return ok ? roles : undefined;
}
