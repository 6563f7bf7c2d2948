/**
 * One stored action and its validation. Records come from the tokenizer, but the store checks
 * them again (and again on read, after decryption) so that a bug upstream or a forged segment
 * cannot smuggle free text, control characters or unbounded strings into training data.
 */
import { z } from "zod";

export const ACTION_KINDS = ["shortcut", "click", "app-switch", "typing-burst", "key"] as const;
export type ActionKind = (typeof ACTION_KINDS)[number];

export interface ActionRecord {
  /** ms since the Unix epoch. */
  at: number;
  app: string;
  kind: ActionKind;
  token: string;
}

export const MAX_APP_LENGTH = 64;
export const MAX_TOKEN_LENGTH = 160;

// Control (Cc) and format (Cf: bidi overrides, zero-width joiners) characters are refused: they
// have no place in an application name or a token, and make file dumps lie about their content.
const noControl = /^[^\p{Cc}\p{Cf}]*$/u;

export const actionRecordSchema = z
  .object({
    at: z.number().int().nonnegative().max(8.64e15),
    app: z.string().min(1).max(MAX_APP_LENGTH).regex(noControl, "control characters are not allowed in an app name"),
    kind: z.enum(ACTION_KINDS),
    token: z.string().min(1).max(MAX_TOKEN_LENGTH).regex(noControl, "control characters are not allowed in a token"),
  })
  .strict();

/** "YYYY-MM-DD" of a ms timestamp, in UTC (days are UTC so a key never depends on the laptop's zone). */
export function utcDay(at: number): string {
  return new Date(at).toISOString().slice(0, 10);
}

export const dayPattern = /^\d{4}-\d{2}-\d{2}$/;
