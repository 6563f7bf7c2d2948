/**
 * One sealed segment: the records of a single UTC day from one flush.
 *
 *   "TSG1" | keyId(16) | nonce(24) | secretbox_dayKey(JSON { v: 1, keyId, day, records })
 *
 * The header names only the opaque key id (so a reader finds the key without an index); it
 * does reveal which segments share a day, as file times would anyway. The sealed payload
 * repeats the key id and the day, so a header edited to point at another day's key fails to
 * open, and a segment moved under another key is refused. Every decoded record is validated
 * again: the store trusts nothing it reads back.
 */
import nacl from "tweetnacl";
import { z } from "zod";
import { actionRecordSchema, type ActionRecord } from "./action-record.ts";
import { KEY_ID_BYTES } from "./key-ring.ts";

const MAGIC = Buffer.from("TSG1", "ascii");
export const HEADER_BYTES = MAGIC.length + KEY_ID_BYTES + nacl.secretbox.nonceLength;

const payloadSchema = z.object({ v: z.literal(1), keyId: z.string(), day: z.string(), records: z.array(actionRecordSchema) }).strict();

export function sealSegment(keyId: string, key: Uint8Array, day: string, records: readonly ActionRecord[]): Uint8Array {
  const nonce = nacl.randomBytes(nacl.secretbox.nonceLength);
  const plain = Buffer.from(JSON.stringify({ v: 1, keyId, day, records }), "utf8");
  return Buffer.concat([MAGIC, Buffer.from(keyId, "hex"), nonce, nacl.secretbox(plain, nonce, key)]);
}

export type HeaderResult = { ok: true; keyId: string } | { ok: false; reason: string };

export function readHeader(bytes: Uint8Array): HeaderResult {
  if (bytes.length < MAGIC.length || !Buffer.from(bytes.subarray(0, MAGIC.length)).equals(MAGIC)) return { ok: false, reason: "not a Tacit store segment (bad magic)" };
  if (bytes.length < HEADER_BYTES + nacl.secretbox.overheadLength) return { ok: false, reason: `segment truncated: ${bytes.length} bytes, shorter than a header and an empty box (${HEADER_BYTES + nacl.secretbox.overheadLength})` };
  return { ok: true, keyId: Buffer.from(bytes.subarray(MAGIC.length, MAGIC.length + KEY_ID_BYTES)).toString("hex") };
}

export type OpenResult = { ok: true; day: string; records: ActionRecord[] } | { ok: false; reason: string };

export function openSegment(bytes: Uint8Array, keyId: string, key: Uint8Array, keyDay: string): OpenResult {
  const nonce = bytes.subarray(MAGIC.length + KEY_ID_BYTES, HEADER_BYTES);
  const plain = nacl.secretbox.open(bytes.subarray(HEADER_BYTES), nonce, key);
  if (!plain) return { ok: false, reason: "segment failed authentication: tampered, truncated or corrupt" };
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(plain).toString("utf8"));
  } catch {
    return { ok: false, reason: "segment content is not valid JSON" };
  }
  const r = payloadSchema.safeParse(parsed);
  if (!r.success) return { ok: false, reason: `segment content invalid: ${r.error.issues[0]?.path.join(".")}: ${r.error.issues[0]?.message}` };
  if (r.data.keyId !== keyId || r.data.day !== keyDay) return { ok: false, reason: "segment does not belong to the key its header names" };
  return { ok: true, day: r.data.day, records: r.data.records };
}
