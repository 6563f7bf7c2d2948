/**
 * The signal kinds a run may train on. A leaf module (no imports) so that the privacy policy
 * (shared/dp/policy.ts) can check its allowed signals against the same list the run spec uses
 * without an import cycle: run-spec.ts imports shared/dp.
 */
export const SIGNAL_KINDS = ["shortcut", "click", "app-switch", "typing-burst", "key", "commit", "file-change"] as const;
export type SignalKind = (typeof SIGNAL_KINDS)[number];

export function isSignalKind(s: string): s is SignalKind {
  return (SIGNAL_KINDS as readonly string[]).includes(s);
}
