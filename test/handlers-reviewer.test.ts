/**
 * Issue #16: the reviewer's RPCs in coordinator/server/handlers.ts, in process — the policy
 * (GetPolicy, SetPolicy) and ReadLedger's paging: every line of a page is written even when the
 * stream's buffer is full, a full buffer is waited out (drain, or the call closing), and a
 * cancelled call stops reading pages and is not ended. (ReadLedger's device filter and its
 * from_seq check are in server-mutants.test.ts.)
 */
import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { invalid } from "../coordinator/server/request-errors.ts";
import { handlerHarness } from "./support/handler-harness.ts";
import { waitFor } from "./support/wait.ts";

const S = grpc.status;
const ACK = { ok: true, detail: "" };

describe("Ledger/GetPolicy", () => {
  it("answers NOT_FOUND while no policy is installed (nor an empty one)", async () => {
    for (const installed of [undefined, ""]) {
      const h = handlerHarness({ policyJson: async () => installed });
      for (const who of ["reviewer-1", "ml-team-1", "dev-a"] as const) {
        expect(await h.unary("ledger", "GetPolicy", who, {}), who).toEqual({ code: S.NOT_FOUND, details: "no privacy policy is installed on this coordinator" });
      }
    }
  });

  it("answers the policy in force, as it is, to a reviewer, the ML team and a device", async () => {
    const json = '{"body":{"version":1},"signature":"c2ln"}';
    const h = handlerHarness({ policyJson: async () => json });
    for (const who of ["reviewer-1", "ml-team-1", "dev-b"] as const) {
      expect(await h.unary("ledger", "GetPolicy", who, {}), who).toEqual({ code: S.OK, details: "", value: { json } });
    }
  });
});

describe("Ledger/SetPolicy (reviewer)", () => {
  it("installs the policy it is sent and acknowledges; a message without one installs the empty text (refused there)", async () => {
    const h = handlerHarness();
    expect(await h.unary("ledger", "SetPolicy", "reviewer-1", { json: '{"p":1}' })).toEqual({ code: S.OK, details: "", value: ACK });
    expect(await h.unary("ledger", "SetPolicy", "reviewer-1", {})).toEqual({ code: S.OK, details: "", value: ACK });
    expect(h.calls).toEqual([["installPolicy", '{"p":1}'], ["installPolicy", ""]]);
  });

  it("passes the coordinator's refusal of the policy through with its status and text", async () => {
    const h = handlerHarness({
      installPolicy: async () => {
        throw invalid("policy is signed by a key that is not a registered reviewer");
      },
    });
    expect(await h.unary("ledger", "SetPolicy", "reviewer-1", { json: "{}" })).toEqual({ code: S.INVALID_ARGUMENT, details: "policy is signed by a key that is not a registered reviewer" });
  });
});

/** Ledger pages served in turn; records how many were taken and whether the reader let go early. */
function pagesOf(pages: string[][]) {
  const seen = { pulled: 0, closed: false, asked: [] as [number, string | undefined][] };
  const ledgerPages = async function* (fromSeq: number, deviceId?: string): AsyncIterable<string[]> {
    seen.asked.push([fromSeq, deviceId]);
    try {
      for (const p of pages) {
        seen.pulled++;
        yield p;
      }
    } finally {
      seen.closed = true;
    }
  };
  return { seen, ledgerPages };
}

describe("Ledger/ReadLedger paging", () => {
  it("reads from sequence 0 when from_seq is unset", async () => {
    const { seen, ledgerPages } = pagesOf([["l0"]]);
    const h = handlerHarness({ ledgerPages });
    const s = h.stream("ledger", "ReadLedger", "reviewer-1", { deviceId: "" });
    await s.done;
    expect([seen.asked, s.writes, s.ended]).toEqual([[[0, undefined]], [{ line: "l0" }], true]);
  });

  it("a reviewer's device_id is no filter and no refusal: the reviewer reads the whole ledger", async () => {
    const { seen, ledgerPages } = pagesOf([["l0"]]);
    const h = handlerHarness({ ledgerPages });
    const s = h.stream("ledger", "ReadLedger", "reviewer-1", { fromSeq: "0", deviceId: "dev-a" });
    await s.done;
    expect([seen.asked, s.writes, s.ended]).toEqual([[[0, undefined]], [{ line: "l0" }], true]);
  });

  it("writes every line of a page even when the buffer is full, then waits for it to drain before the next page", async () => {
    const { seen, ledgerPages } = pagesOf([["a", "b", "c"], ["d"], ["e"]]);
    const h = handlerHarness({ ledgerPages });
    const s = h.stream("ledger", "ReadLedger", "reviewer-1", { fromSeq: "0", deviceId: "" }, { writeReturns: false });
    await waitFor("the first page written", () => s.writes.length === 3, 10_000);
    // Give the handler every chance to run ahead: it must be parked on the full buffer.
    await new Promise((r) => setTimeout(r, 50));
    expect([s.writes, seen.pulled, s.ended]).toEqual([[{ line: "a" }, { line: "b" }, { line: "c" }], 1, false]);
    s.emit("drain");
    await waitFor("the second page written", () => s.writes.length === 4, 10_000);
    await new Promise((r) => setTimeout(r, 50));
    expect([seen.pulled, s.ended]).toEqual([2, false]);
    // The call closing also ends the wait (and, not cancelled, the reading goes on).
    s.writeReturns = true;
    s.emit("close");
    await s.done;
    expect(s.writes.map((w) => (w as { line: string }).line)).toEqual(["a", "b", "c", "d", "e"]);
    expect([seen.pulled, s.ended, s.error]).toEqual([3, true, undefined]);
  });

  it("a call cancelled while its buffer is full does not wait: it stops reading pages and is not ended", async () => {
    const { seen, ledgerPages } = pagesOf([["a", "b"], ["c"]]);
    const h = handlerHarness({ ledgerPages });
    const s = h.stream("ledger", "ReadLedger", "reviewer-1", { fromSeq: "0", deviceId: "" }, { writeReturns: false });
    const write = s.write.bind(s);
    s.write = (m: unknown, cb?: () => void) => {
      const r = write(m, cb);
      s.cancelled = true; // the peer went away while its lines were being written
      return r;
    };
    await waitFor("the reader let go of the pages", () => seen.closed, 10_000);
    expect([s.writes, seen.pulled, s.ended, s.error]).toEqual([[{ line: "a" }, { line: "b" }], 1, false, undefined]);
  });

  it("a call cancelled after a page was written stops there, even with room in its buffer", async () => {
    const { seen, ledgerPages } = pagesOf([["a"], ["b"], ["c"]]);
    const h = handlerHarness({ ledgerPages });
    const s = h.stream("ledger", "ReadLedger", "dev-a", { fromSeq: "1", deviceId: "dev-a" });
    const write = s.write.bind(s);
    s.write = (m: unknown, cb?: () => void) => {
      const r = write(m, cb);
      if (s.writes.length === 2) s.cancelled = true;
      return r;
    };
    await waitFor("the reader let go of the pages", () => seen.closed, 10_000);
    expect([s.writes, seen.pulled, s.ended, seen.asked]).toEqual([[{ line: "a" }, { line: "b" }], 2, false, [[1, "dev-a"]]]);
  });
});
