/**
 * Issue #16: the admin's and the ML team's RPCs in coordinator/server/handlers.ts, in process —
 * tokens (CreateToken), enrollment (Enroll, Deregister) and run control (LaunchRun, GetRun,
 * ListRuns, CancelRun): each bound and each refusal with its exact status and text, and what
 * each call hands the coordinator (recorded by the fake of test/support/handler-harness.ts).
 */
import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { keyFingerprint } from "../coordinator/state/registry.ts";
import { notFound } from "../coordinator/server/request-errors.ts";
import { handlerHarness } from "./support/handler-harness.ts";

const S = grpc.status;
const DAY = 86_400;

describe("Enrollment/CreateToken (admin)", () => {
  it("mints a token for the admin, records it in the ledger, and answers its expiry as a decimal string", async () => {
    const h = handlerHarness();
    const r = await h.unary("enrollment", "CreateToken", "admin-1", { ttlSeconds: 600, label: "laptops" });
    expect(r).toEqual({ code: S.OK, details: "", value: { token: "tt_fresh", expiresAtMs: "1700000000123" } });
    expect(h.calls).toEqual([
      ["registry.createToken", 600, "laptops", "admin-1"],
      ["ledger.enrollmentToken", { tokenId: "tid", label: "laptops", creator: "admin-1", createdAt: 1, expiresAt: 1_700_000_000_123 }],
    ]);
  });

  it("defaults an unset ttl to one day, and a missing label to the empty one", async () => {
    const h = handlerHarness();
    expect((await h.unary("enrollment", "CreateToken", "admin-1", { ttlSeconds: 0 })).code).toBe(S.OK);
    expect(h.calls[0]).toEqual(["registry.createToken", DAY, "", "admin-1"]);
  });

  it("keeps the first 100 characters of a label", async () => {
    const h = handlerHarness();
    const label = "x".repeat(100) + "TAIL";
    expect((await h.unary("enrollment", "CreateToken", "admin-1", { ttlSeconds: 60, label })).code).toBe(S.OK);
    expect(h.calls[0]).toEqual(["registry.createToken", 60, "x".repeat(100), "admin-1"]);
  });

  it("takes a ttl of exactly 30 days and refuses one second more, before minting anything", async () => {
    const h = handlerHarness();
    expect((await h.unary("enrollment", "CreateToken", "admin-1", { ttlSeconds: 30 * DAY, label: "" })).code).toBe(S.OK);
    expect(await h.unary("enrollment", "CreateToken", "admin-1", { ttlSeconds: 30 * DAY + 1, label: "" })).toEqual({ code: S.INVALID_ARGUMENT, details: "ttl_seconds must be at most 30 days" });
    expect(h.calls.map((c) => c[0])).toEqual(["registry.createToken", "ledger.enrollmentToken"]);
    expect(h.calls[0]![1]).toBe(30 * DAY);
  });
});

describe("Enrollment/Enroll (the token alone)", () => {
  const key = Buffer.alloc(32, 0xab);

  it("enrolls the key with its label, records the enrollment with the token's creator, and answers the coordinator's key", async () => {
    const h = handlerHarness();
    const r = await h.unary("enrollment", "Enroll", undefined, { token: "tt_abc", identityPublicKey: key, deviceLabel: "lap-1" });
    expect(r.code).toBe(S.OK);
    expect(r.value).toEqual({ deviceId: "dev-new", coordinatorPublicKey: Buffer.alloc(32, 7) });
    expect(h.calls).toEqual([
      ["registry.enroll", "tt_abc", key.toString("hex"), "lap-1"],
      ["ledger.enrollment", { deviceId: "dev-new", keyFingerprint: keyFingerprint(key), label: "lap-1!", creator: "admin-1", tokenId: "tid-9", tokenLabel: "tok-label" }],
    ]);
  });

  it("passes a missing device label as the empty one", async () => {
    const h = handlerHarness();
    expect((await h.unary("enrollment", "Enroll", undefined, { token: "tt_abc", identityPublicKey: key })).code).toBe(S.OK);
    expect(h.calls[0]).toEqual(["registry.enroll", "tt_abc", key.toString("hex"), ""]);
  });

  it("answers a call without a token UNAUTHENTICATED, naming the command that makes one", async () => {
    const h = handlerHarness();
    for (const token of ["", undefined]) {
      expect(await h.unary("enrollment", "Enroll", undefined, { token, identityPublicKey: key })).toEqual({ code: S.UNAUTHENTICATED, details: "Enroll needs a single-use enrollment token (`tacit coordinator token create`)" });
    }
    expect(h.calls).toEqual([]);
  });

  it("takes a token of 200 characters and refuses a longer one as malformed", async () => {
    const h = handlerHarness();
    expect((await h.unary("enrollment", "Enroll", undefined, { token: "t".repeat(200), identityPublicKey: key })).code).toBe(S.OK);
    expect(await h.unary("enrollment", "Enroll", undefined, { token: "t".repeat(201), identityPublicKey: key })).toEqual({ code: S.INVALID_ARGUMENT, details: "malformed enrollment token" });
    expect(h.calls.filter((c) => c[0] === "registry.enroll")).toHaveLength(1);
  });

  it("refuses an identity key that is missing, empty, or not 32 bytes, naming the field and the length", async () => {
    const h = handlerHarness();
    const send = (identityPublicKey: Buffer | undefined) => h.unary("enrollment", "Enroll", undefined, { token: "tt_abc", identityPublicKey });
    expect(await send(undefined)).toEqual({ code: S.INVALID_ARGUMENT, details: "missing identity_public_key" });
    expect(await send(Buffer.alloc(0))).toEqual({ code: S.INVALID_ARGUMENT, details: "missing identity_public_key" });
    expect(await send(Buffer.alloc(31, 1))).toEqual({ code: S.INVALID_ARGUMENT, details: "identity_public_key must be 32 bytes, got 31" });
    expect(await send(Buffer.alloc(33, 1))).toEqual({ code: S.INVALID_ARGUMENT, details: "identity_public_key must be 32 bytes, got 33" });
    expect(h.calls).toEqual([]);
  });
});

describe("Enrollment/Deregister (the device itself)", () => {
  it("removes the caller from the registry, the authenticator's key cache and the hub; answers empty", async () => {
    const h = handlerHarness();
    expect(await h.unary("enrollment", "Deregister", "dev-b", {})).toEqual({ code: S.OK, details: "", value: {} });
    expect(h.calls).toEqual([["registry.remove", "dev-b"], ["hub.remove", "dev-b"]]);
    expect(h.auth.forgotten).toEqual(["dev-b"]);
  });
});

describe("RunControl/LaunchRun (ML team)", () => {
  it("launches the signed spec as the caller and answers the new run's status", async () => {
    const h = handlerHarness();
    const r = await h.unary("runControl", "LaunchRun", "ml-team-1", { specJson: '{"name":"t"}', requestSignature: Buffer.from([1, 2, 3]) });
    expect(r).toEqual({ code: S.OK, details: "", value: { runId: "run-launched", state: "running" } });
    expect(h.calls).toEqual([["launchRun", '{"name":"t"}', "010203", "ml-team-1"], ["runStatus", "run-launched"]]);
  });

  it("passes a missing request signature on as empty bytes (the coordinator refuses it there)", async () => {
    const h = handlerHarness();
    expect((await h.unary("runControl", "LaunchRun", "ml-team-1", { specJson: "{}" })).code).toBe(S.OK);
    expect(h.calls[0]).toEqual(["launchRun", "{}", "", "ml-team-1"]);
  });

  it("takes a spec of exactly 64 KiB and refuses an empty one or one byte more", async () => {
    const h = handlerHarness();
    const refusal = { code: S.INVALID_ARGUMENT, details: "spec_json missing or larger than 64 KiB" };
    expect(await h.unary("runControl", "LaunchRun", "ml-team-1", { specJson: "" })).toEqual(refusal);
    expect(await h.unary("runControl", "LaunchRun", "ml-team-1", { specJson: " ".repeat(64 * 1024 + 1) })).toEqual(refusal);
    expect(h.calls).toEqual([]);
    expect((await h.unary("runControl", "LaunchRun", "ml-team-1", { specJson: " ".repeat(64 * 1024) })).code).toBe(S.OK);
    expect(h.calls.map((c) => c[0])).toEqual(["launchRun", "runStatus"]);
  });

  it("lets the coordinator's own refusal through with its status", async () => {
    const h = handlerHarness({
      launchRun: async () => {
        throw notFound("no such initial model");
      },
    });
    expect(await h.unary("runControl", "LaunchRun", "ml-team-1", { specJson: "{}" })).toEqual({ code: S.NOT_FOUND, details: "no such initial model" });
  });
});

describe("RunControl/GetRun, ListRuns, CancelRun", () => {
  it("GetRun answers the status of the run asked for, to the ML team and to a reviewer", async () => {
    const h = handlerHarness();
    expect(await h.unary("runControl", "GetRun", "reviewer-1", { runId: "run-7" })).toEqual({ code: S.OK, details: "", value: { runId: "run-7", state: "running" } });
    expect(await h.unary("runControl", "GetRun", "ml-team-1", { runId: "run-8" })).toEqual({ code: S.OK, details: "", value: { runId: "run-8", state: "running" } });
    expect(h.calls).toEqual([["runStatus", "run-7"], ["runStatus", "run-8"]]);
  });

  it("ListRuns answers every listed run the ledger vouches for, in order, and leaves out the others", async () => {
    const h = handlerHarness({
      runs: { list: async () => ["run-a", "run-planted", "run-b"] },
      runStatus: async (id: string) => {
        if (id === "run-planted") throw notFound(`no run ${id}`);
        return { runId: id, state: "completed" };
      },
    });
    expect(await h.unary("runControl", "ListRuns", "reviewer-1", {})).toEqual({
      code: S.OK,
      details: "",
      value: { runs: [{ runId: "run-a", state: "completed" }, { runId: "run-b", state: "completed" }] },
    });
  });

  it("ListRuns of no runs is an empty list", async () => {
    const h = handlerHarness();
    expect(await h.unary("runControl", "ListRuns", "ml-team-1", {})).toEqual({ code: S.OK, details: "", value: { runs: [] } });
  });

  it("CancelRun cancels, then answers the run's status; a refusal of the cancel is passed through and nothing is read", async () => {
    const h = handlerHarness();
    expect(await h.unary("runControl", "CancelRun", "ml-team-1", { runId: "run-3" })).toEqual({ code: S.OK, details: "", value: { runId: "run-3", state: "running" } });
    expect(h.calls).toEqual([["cancelRun", "run-3"], ["runStatus", "run-3"]]);
    const refused = handlerHarness({
      cancelRun: async (id: string) => {
        throw notFound(`no run ${id}`);
      },
    });
    expect(await refused.unary("runControl", "CancelRun", "ml-team-1", { runId: "run-x" })).toEqual({ code: S.NOT_FOUND, details: "no run run-x" });
    expect(refused.calls).toEqual([]);
  });
});
