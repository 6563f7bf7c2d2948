/**
 * What a device is served of a ledger line (finding L1): a round or evaluation entry as the
 * device's own view — the member lists replaced by their commitment and the proof of this
 * device's leaf — and every other line as written. Hash and signature are the full entry's and
 * still verify on the view.
 *
 * Building a round's member tree costs O(cohort) hashes, and after a round every member of the
 * cohort reads the same entry, so the last few trees are kept: each further member costs one
 * O(log n) proof instead of the whole tree.
 */
import { memberTree, memberView, type MemberTree } from "../../shared/ledger/member-commitment.ts";
import type { LedgerEntry } from "../../shared/ledger/entry.ts";

const KEPT_TREES = 16;

export class DeviceViews {
  private readonly trees = new Map<string, MemberTree | undefined>();

  lineFor(line: string, deviceId: string): string {
    // Cheap test first: only lines with a member key are rewritten.
    if (!line.includes('"memberKey"')) return line;
    const e = JSON.parse(line) as LedgerEntry;
    const tree = this.treeOf(e);
    if (!tree) return line;
    return JSON.stringify({ ...e, body: memberView(e.body, deviceId, tree) });
  }

  private treeOf(e: LedgerEntry): MemberTree | undefined {
    if (this.trees.has(e.hash)) return this.trees.get(e.hash);
    const tree = memberTree(e.body);
    this.trees.set(e.hash, tree);
    // Map order is insertion order: the first key is the oldest tree.
    if (this.trees.size > KEPT_TREES) this.trees.delete(this.trees.keys().next().value!);
    return tree;
  }
}
