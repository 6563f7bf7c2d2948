/**
 * The person's consent: which applications may be observed, which signal kinds, and the privacy
 * limits under which this laptop takes part in rounds. Nothing is captured and no round is
 * joined before a consent record exists; `paused` stops both without forgetting the choices.
 */
import { existsSync, readFileSync } from "node:fs";
import { z } from "zod";
import { writeFileAtomic } from "../../shared/fs/write-file-atomic.ts";
import { ACTION_KINDS, type ActionKind } from "../store/action-record.ts";
import { normalizeAppName } from "../capture/tokenizer.ts";

/** The signal kinds a person can consent to are exactly the kinds of stored actions. */
export const SIGNAL_KINDS = ACTION_KINDS;
export type SignalKind = ActionKind;

/** Application names exactly as the capture normalises them (WM_CLASS, see normalizeAppName). */
export const appNameSchema = z
  .string()
  .refine((a) => normalizeAppName(a) === a, "application names are lower-case letters, digits, '.', '_' or '-' (as `tacit client review` shows them)");

export const privacyLimitsSchema = z
  .object({
    maxDeviceEpsilon: z.number().positive(),
    delta: z.number().gt(0).lt(1e-3),
    minNoiseMultiplier: z.number().min(0),
    minSurvivors: z.number().int().min(2),
  })
  .strict();
export type PrivacyLimits = z.infer<typeof privacyLimitsSchema>;

export const consentSchema = z
  .object({
    version: z.literal(1),
    apps: z.array(appNameSchema).max(200),
    kinds: z.array(z.enum(SIGNAL_KINDS)).min(1),
    limits: privacyLimitsSchema,
    paused: z.boolean(),
    givenAt: z.number(),
    updatedAt: z.number(),
  })
  .strict();
export type Consent = z.infer<typeof consentSchema>;

/** Conservative defaults offered at the prompts; the person confirms or changes each. */
export const DEFAULT_LIMITS: PrivacyLimits = { maxDeviceEpsilon: 8, delta: 1e-6, minNoiseMultiplier: 0.5, minSurvivors: 10 };

export class ConsentError extends Error {
  override name = "ConsentError";
}

export function loadConsent(path: string): Consent | undefined {
  if (!existsSync(path)) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch {
    throw new ConsentError(`${path} is not valid JSON: run \`tacit client consent\` again to rewrite it`);
  }
  const r = consentSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new ConsentError(`${path} is damaged (${i.path.join(".") || "record"}: ${i.message}): run \`tacit client consent\` again`);
  }
  return r.data;
}

export function requireConsent(path: string): Consent {
  const c = loadConsent(path);
  if (!c) throw new ConsentError("no consent given yet: nothing is captured and no round is joined until you run `tacit client consent`");
  return c;
}

export function saveConsent(path: string, c: Consent): void {
  const checked = consentSchema.parse(c);
  writeFileAtomic(path, JSON.stringify(checked, null, 2) + "\n", 0o600);
}

export function setPaused(path: string, paused: boolean): Consent {
  const c = requireConsent(path);
  const next = { ...c, paused, updatedAt: Date.now() };
  saveConsent(path, next);
  return next;
}
