/**
 * Writes JSON so that a reader sees the old file or the whole new one, never a torn write.
 * ε = ∞ is written as the string "Infinity" (JSON has no infinity and null would be ambiguous).
 */
import { writeFileAtomic } from "../shared/fs/write-file-atomic.ts";

export function jsonWithInfinity(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === "number" && !Number.isFinite(v) ? (Number.isNaN(v) ? null : v > 0 ? "Infinity" : "-Infinity") : v), 2);
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, jsonWithInfinity(value) + "\n", 0o644);
}
