/**
 * Issue #16 (mutation testing of coordinator/server/handlers.ts): who may call each RPC, and the
 * refusal of an undecodable message, checked handler by handler in this process (the live
 * rpc-roles test runs the same table over gRPC, where Stryker's mutants are not seen).
 *
 * Every caller signs for the method's own path and is checked by the real Authenticator, so a
 * wrong role list or a wrong path in a handler changes the exact text asserted here. A caller the
 * table allows is sent a malformed message: it must get INVALID_ARGUMENT naming the method and
 * the decoder's reason (so its role passed, and nothing reached the coordinator's domain code).
 */
import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { SecAggError } from "../shared/secagg/index.ts";
import { AUTH_KEY_ID } from "../shared/transport/request-auth.ts";
import { MALFORMED } from "../coordinator/server/harden-service.ts";
import { NOT_AUTHENTICATED } from "../coordinator/server/authenticator.ts";
import { INTERNAL_ERROR, SECAGG_REFUSED } from "../coordinator/server/status-boundary.ts";
import { handlerHarness, ROLE_OF, SERVICE_NAME, WHO, type Outcome, type Service, type Who } from "./support/handler-harness.ts";

type Role = "admin" | "ml-team" | "reviewer" | "device";

/** The RPC × role table, each list in the order the handler names it in its refusal. */
const TABLE: { service: Service; method: string; roles: readonly Role[]; streaming?: true }[] = [
  { service: "enrollment", method: "CreateToken", roles: ["admin"] },
  { service: "enrollment", method: "Deregister", roles: ["device"] },
  { service: "runControl", method: "LaunchRun", roles: ["ml-team"] },
  { service: "runControl", method: "GetRun", roles: ["ml-team", "reviewer"] },
  { service: "runControl", method: "ListRuns", roles: ["ml-team", "reviewer"] },
  { service: "runControl", method: "CancelRun", roles: ["ml-team"] },
  { service: "runControl", method: "WatchRun", roles: ["ml-team", "reviewer"], streaming: true },
  { service: "rounds", method: "Subscribe", roles: ["device"], streaming: true },
  { service: "rounds", method: "Decline", roles: ["device"] },
  { service: "rounds", method: "AdvertiseKeys", roles: ["device"] },
  { service: "rounds", method: "ShareKeys", roles: ["device"] },
  { service: "rounds", method: "SubmitAttestation", roles: ["device"] },
  { service: "rounds", method: "SubmitMaskedInput", roles: ["device"] },
  { service: "rounds", method: "SignSurvivors", roles: ["device"] },
  { service: "rounds", method: "SubmitUnmasking", roles: ["device"] },
  { service: "ledger", method: "ReadLedger", roles: ["reviewer", "device"], streaming: true },
  { service: "ledger", method: "GetPolicy", roles: ["reviewer", "ml-team", "device"] },
  { service: "ledger", method: "SetPolicy", roles: ["reviewer"] },
];

const malformed = (why: string) => ({ [MALFORMED]: why });

/** One call of a table row, unary or streaming, as the status the caller would get. */
async function outcome(h: ReturnType<typeof handlerHarness>, row: (typeof TABLE)[number], who: Who | undefined, request: unknown): Promise<Outcome> {
  if (!row.streaming) return h.unary(row.service, row.method, who, request);
  const s = h.stream(row.service, row.method, who, request);
  await s.done;
  return s.error ? { code: s.error.code, details: s.error.details } : { code: grpc.status.OK, details: "" };
}

describe("the RPC × role table, per handler", () => {
  it("the services offer exactly the methods of the table, and Enroll", () => {
    const h = handlerHarness();
    const offered = Object.entries(h.services).flatMap(([svc, methods]) => Object.keys(methods).map((m) => `${svc}.${m}`)).sort();
    expect(offered).toEqual([...TABLE.map((r) => `${r.service}.${r.method}`), "enrollment.Enroll"].sort());
  });

  for (const row of TABLE) {
    it(`${SERVICE_NAME[row.service]}/${row.method}: refuses every other role by name, and takes a malformed message from each allowed one as INVALID_ARGUMENT`, async () => {
      const h = handlerHarness();
      const path = `/tacit.v1.${SERVICE_NAME[row.service]}/${row.method}`;
      for (const who of WHO) {
        const role = ROLE_OF[who];
        const got = await outcome(h, row, who, malformed(`bad wire ${who}`));
        if (row.roles.includes(role)) {
          expect(got, who).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: `malformed ${row.method} message: bad wire ${who}` });
        } else {
          expect(got, who).toEqual({ code: grpc.status.PERMISSION_DENIED, details: `role ${role} may not call ${path} (needs ${row.roles.join(" or ")})` });
        }
      }
      // No credentials at all: the Authenticator's own text, never the handler's.
      expect(await outcome(h, row, undefined, {})).toEqual({ code: grpc.status.UNAUTHENTICATED, details: "missing tacit-key-id metadata: the request is not signed" });
      // Signed for another method: the signature does not verify for this one.
      const other = h.md(row.roles.includes("device") ? "dev-a" : row.roles.includes("admin") ? "admin-1" : row.roles.includes("ml-team") ? "ml-team-1" : "reviewer-1", "ledger", row.method === "GetPolicy" ? "SetPolicy" : "GetPolicy");
      const mis = row.streaming ? undefined : await h.unary(row.service, row.method, undefined, {}, other);
      if (mis) expect(mis).toEqual({ code: grpc.status.UNAUTHENTICATED, details: NOT_AUTHENTICATED });
      // Nothing reached the coordinator's domain code.
      expect(h.calls).toEqual([]);
    });
  }
});

describe("Enroll: the enrollment token is its only credential", () => {
  it("refuses any call that carries a key id, whoever signed it, before reading the message", async () => {
    const h = handlerHarness();
    for (const who of WHO) {
      expect(await h.unary("enrollment", "Enroll", who, { token: "tt_x", identityPublicKey: Buffer.alloc(32, 1), deviceLabel: "l" }), who).toEqual({
        code: grpc.status.PERMISSION_DENIED,
        details: "Enroll is authorized by the enrollment token alone: call it without request credentials",
      });
    }
    // A bare key id, with nothing to verify, is refused the same way.
    const bare = new grpc.Metadata();
    bare.set(AUTH_KEY_ID, "anyone");
    expect((await h.unary("enrollment", "Enroll", undefined, malformed("x"), bare)).code).toBe(grpc.status.PERMISSION_DENIED);
    expect(h.calls).toEqual([]);
  });

  it("takes an unsigned call without asking the Authenticator, and refuses a malformed one by name", async () => {
    const h = handlerHarness();
    const other = new grpc.Metadata();
    other.set("x-trace", "1");
    expect(await h.unary("enrollment", "Enroll", undefined, malformed("truncated varint"), other)).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: "malformed Enroll message: truncated varint" });
    const ok = await h.unary("enrollment", "Enroll", undefined, { token: "tt_ok", identityPublicKey: Buffer.alloc(32, 2), deviceLabel: "lap" });
    expect(ok.code).toBe(grpc.status.OK);
    expect(h.calls.map((c) => c[0])).toEqual(["registry.enroll", "ledger.enrollment"]);
  });
});

describe("what a refusal leaves in the coordinator's log", () => {
  it("an unexpected error is INTERNAL with a fixed text; the error itself is logged as such, naming the method", async () => {
    const h = handlerHarness({
      runStatus: async () => {
        throw new TypeError("boom in run store");
      },
    });
    expect(await h.unary("runControl", "GetRun", "reviewer-1", { runId: "run-1" })).toEqual({ code: grpc.status.INTERNAL, details: INTERNAL_ERROR });
    expect(h.logs).toHaveLength(1);
    expect(h.logs[0]!.level).toBe("error");
    expect(h.logs[0]!.msg).toBe("unexpected error in RPC handler");
    expect(h.logs[0]!.obj.method).toBe("/tacit.v1.RunControl/GetRun");
    expect(String(h.logs[0]!.obj.err)).toMatch(/^TypeError: boom in run store/);
    expect(Object.keys(h.logs[0]!.obj).sort()).toEqual(["err", "method"]);
  });

  it("a secure-aggregation refusal is logged as a refusal with its reason; the caller gets the fixed text", async () => {
    const h = handlerHarness({
      activeRound: () => ({
        decline: () => {
          throw new SecAggError("BAD_SIGNATURE", "not signed by dev-a's identity");
        },
      }),
    });
    expect(await h.unary("rounds", "Decline", "dev-a", { ref: { runId: "r", round: 0 }, reason: "busy" })).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: SECAGG_REFUSED });
    expect(h.logs).toEqual([{ level: "warn", obj: { method: "/tacit.v1.Rounds/Decline", reason: "BAD_SIGNATURE: not signed by dev-a's identity" }, msg: "request refused" }]);
  });

  it("a refusal without an inside reason is not logged at all", async () => {
    const h = handlerHarness();
    expect((await h.unary("runControl", "LaunchRun", "ml-team-1", { specJson: "" })).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await h.unary("runControl", "LaunchRun", "reviewer-1", { specJson: "{}" })).code).toBe(grpc.status.PERMISSION_DENIED);
    expect(h.logs).toEqual([]);
  });

  it("a stream's unexpected error ends it with INTERNAL and is logged under the stream's method", async () => {
    const h = handlerHarness({
      runStatus: async () => {
        throw new RangeError("watch broke");
      },
    });
    const s = h.stream("runControl", "WatchRun", "ml-team-1", { runId: "run-1" });
    await s.done;
    expect([s.error?.code, s.error?.details]).toEqual([grpc.status.INTERNAL, INTERNAL_ERROR]);
    expect(s.writes).toEqual([]);
    expect(h.logs.map((l) => [l.level, l.obj.method, l.msg])).toEqual([["error", "/tacit.v1.RunControl/WatchRun", "unexpected error in RPC handler"]]);
    expect(String(h.logs[0]!.obj.err)).toMatch(/^RangeError: watch broke/);
  });
});
