/**
 * The privacy policy: limits a privacy reviewer signs with an ed25519 key. The coordinator
 * refuses to launch a run that breaks it; `tacit verify` checks every run against the policy
 * in force at its launch.
 */
import type { KeyObject } from "node:crypto";
import { z } from "zod";
import { canonicalJson } from "../crypto/canonical-json.ts";
import { publicKeyFromRaw, rawPublicKey, signBytes, verifyBytes } from "../crypto/ed25519.ts";
import { isSignalKind, SIGNAL_KINDS } from "../run/signal-kinds.ts";

/**
 * One issue for all unknown names (not one per element, each listing the valid kinds): a body
 * with thousands of invented names still gets a short error. Names are quoted with JSON escapes
 * so control characters cannot reach the terminal.
 */
function refuseUnknownSignals(names: string[], ctx: z.RefinementCtx): void {
  const unknown = [...new Set(names.filter((n) => !isSignalKind(n)))];
  if (unknown.length === 0) return;
  const shown = unknown.slice(0, 3).map((n) => JSON.stringify(n.slice(0, 64))).join(", ");
  const more = unknown.length > 3 ? ` and ${unknown.length - 3} more` : "";
  ctx.addIssue({ code: z.ZodIssueCode.custom, message: `unknown signal kind ${shown}${more} (valid: ${SIGNAL_KINDS.join(", ")})` });
}

export const policyBodySchema = z
  .object({
    version: z.literal(1),
    minNoiseMultiplier: z.number().min(0).max(1000),
    maxDeviceEpsilon: z.number().gt(0).max(1e6),
    delta: z.number().gt(0).lt(1),
    minSurvivors: z.number().int().min(1).max(1_000_000),
    // Only kinds a run can name: an invented one (a typo, a kind from another release) would sign
    // a policy that seems to allow something no run can ever use.
    allowedSignals: z.array(z.string()).min(1).superRefine(refuseUnknownSignals),
    note: z.string().max(2000).optional(),
  })
  .strict();
export type PolicyBody = z.infer<typeof policyBodySchema>;

export interface PolicyFile {
  body: PolicyBody;
  reviewerPublicKey: string;
  signature: string;
}

export class PolicyError extends Error {
  override name = "PolicyError";
}

export function signPolicy(body: PolicyBody, reviewerKey: KeyObject, reviewerPublic: KeyObject): PolicyFile {
  const parsed = policyBodySchema.safeParse(body);
  if (!parsed.success) throw new PolicyError(`impossible policy values: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  return {
    body: parsed.data,
    reviewerPublicKey: Buffer.from(rawPublicKey(reviewerPublic)).toString("base64"),
    signature: Buffer.from(signBytes(reviewerKey, canonicalJson(parsed.data))).toString("base64"),
  };
}

/** Parses and verifies a policy file; optionally requires the signer to be a trusted reviewer. */
export function verifyPolicy(input: string | unknown, trustedReviewerKeys?: readonly string[]): PolicyFile {
  let raw: unknown = input;
  if (typeof input === "string") {
    try {
      raw = JSON.parse(input);
    } catch (err) {
      throw new PolicyError(`policy is not valid JSON: ${(err as Error).message}`);
    }
  }
  const file = raw as Partial<PolicyFile>;
  if (!file || typeof file !== "object" || typeof file.signature !== "string" || typeof file.reviewerPublicKey !== "string") {
    throw new PolicyError("policy file must have body, reviewerPublicKey and signature");
  }
  const body = policyBodySchema.safeParse(file.body);
  if (!body.success) throw new PolicyError(`impossible policy values: ${body.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  let key: KeyObject;
  try {
    key = publicKeyFromRaw(Buffer.from(file.reviewerPublicKey, "base64"));
  } catch {
    throw new PolicyError("policy reviewerPublicKey is not an ed25519 public key");
  }
  if (!verifyBytes(key, canonicalJson(body.data), Buffer.from(file.signature, "base64"))) {
    throw new PolicyError("policy signature does not verify: the policy was changed after the reviewer signed it, or signed with another key");
  }
  if (trustedReviewerKeys && !trustedReviewerKeys.includes(file.reviewerPublicKey)) {
    throw new PolicyError("policy is signed by a key that is not a registered reviewer");
  }
  return { body: body.data, reviewerPublicKey: file.reviewerPublicKey, signature: file.signature };
}

export interface RunPrivacyFacts {
  noiseMultiplier: number;
  minSurvivors: number;
  signals: readonly string[];
  /** Device ε (no amplification) if a device joined every round, at the policy's δ. */
  projectedDeviceEpsilon: number;
}

export interface PolicyViolation {
  rule: "minNoiseMultiplier" | "maxDeviceEpsilon" | "minSurvivors" | "allowedSignals";
  message: string;
}

export function checkRunAgainstPolicy(run: RunPrivacyFacts, policy: PolicyBody): PolicyViolation[] {
  const v: PolicyViolation[] = [];
  const eps = run.projectedDeviceEpsilon;
  if (run.noiseMultiplier < policy.minNoiseMultiplier) {
    v.push({ rule: "minNoiseMultiplier", message: `noise multiplier ${run.noiseMultiplier} is below the policy minimum ${policy.minNoiseMultiplier} (projected device ε ${fmt(eps)} at δ=${policy.delta})` });
  }
  if (!(eps <= policy.maxDeviceEpsilon)) {
    v.push({ rule: "maxDeviceEpsilon", message: `projected device ε ${fmt(eps)} at δ=${policy.delta} exceeds the policy maximum ${policy.maxDeviceEpsilon}` });
  }
  if (run.minSurvivors < policy.minSurvivors) {
    v.push({ rule: "minSurvivors", message: `minSurvivors ${run.minSurvivors} is below the policy minimum ${policy.minSurvivors} (projected device ε ${fmt(eps)})` });
  }
  const bad = run.signals.filter((s) => !policy.allowedSignals.includes(s));
  if (bad.length > 0) v.push({ rule: "allowedSignals", message: `signals ${bad.join(", ")} are not allowed by the policy (allowed: ${policy.allowedSignals.join(", ")})` });
  return v;
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toFixed(3) : "∞";
}
