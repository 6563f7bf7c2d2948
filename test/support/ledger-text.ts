/**
 * The coordinator's ledger as one JSONL text, read from its store's segments (ledger/<firstSeq>.jsonl
 * in seq order) — what `tacit verify` reads. `where` is a state dir (default store inside it) or a
 * store directory.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export function ledgerText(where: string): string {
  const root = existsSync(join(where, "ledger")) ? where : join(where, "store");
  const dir = join(root, "ledger");
  if (!existsSync(dir)) return "";
  return readdirSync(dir)
    .filter((n) => /^\d{12}\.jsonl$/.test(n))
    .sort()
    .map((n) => readFileSync(join(dir, n), "utf8"))
    .join("");
}
