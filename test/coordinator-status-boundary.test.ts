/**
 * The one boundary where errors become gRPC statuses (coordinator/server/status-boundary.ts):
 * the pure mapping of every error kind to its code and public message, with what must stay
 * secret (why secure aggregation refused a message; anything unexpected) kept for the log; and
 * one path end to end: a device whose advertised keys secure aggregation refuses, in a live
 * round, gets INVALID_ARGUMENT with the fixed public text while the reason is only in the
 * coordinator's log, and the round completes without it.
 */
import { describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { Writable } from "node:stream";
import pino from "pino";
import { AuthError } from "../shared/transport/request-auth.ts";
import { RunSpecError, type RoundConfig } from "../shared/run/index.ts";
import { SecAggError } from "../shared/secagg/index.ts";
import { ModularError } from "../shared/modular/index.ts";
import { EnrollmentError } from "../coordinator/state/registry.ts";
import { LedgerClosedError } from "../coordinator/ledger/privacy-ledger.ts";
import { RequestRefused, type RefusalKind } from "../coordinator/server/request-errors.ts";
import { RpcError } from "../coordinator/server/rpc-error.ts";
import { INTERNAL_ERROR, publicStatus, SECAGG_REFUSED, toServiceError } from "../coordinator/server/status-boundary.ts";
import { OPEN_LIMITS, TestCluster, tinyRunSpec } from "./support/cluster.ts";

const S = grpc.status;

describe("status boundary: errors → gRPC statuses (pure)", () => {
  it.each<[RefusalKind, grpc.status]>([
    ["invalid-argument", S.INVALID_ARGUMENT],
    ["unauthenticated", S.UNAUTHENTICATED],
    ["permission-denied", S.PERMISSION_DENIED],
    ["not-found", S.NOT_FOUND],
    ["already-exists", S.ALREADY_EXISTS],
    ["failed-precondition", S.FAILED_PRECONDITION],
    ["resource-exhausted", S.RESOURCE_EXHAUSTED],
    ["unimplemented", S.UNIMPLEMENTED],
    ["deadline-exceeded", S.DEADLINE_EXCEEDED],
  ])("a %s refusal becomes status %i with its public message, and its internal reason stays inside", (kind, code) => {
    expect(publicStatus(new RequestRefused(kind, "public text"))).toEqual({ code, details: "public text" });
    const withInternal = publicStatus(new RequestRefused(kind, "public text", "secret detail"));
    expect(withInternal).toEqual({ code, details: "public text", internal: "secret detail" });
  });

  it("maps the domain errors a handler lets through", () => {
    expect(publicStatus(new AuthError("request is not signed"))).toEqual({ code: S.UNAUTHENTICATED, details: "request is not signed" });
    expect(publicStatus(new RunSpecError("rounds: must be ≥ 1"))).toEqual({ code: S.INVALID_ARGUMENT, details: "rounds: must be ≥ 1" });
    expect(publicStatus(new EnrollmentError("ALREADY_ENROLLED", "x")).code).toBe(S.ALREADY_EXISTS);
    expect(publicStatus(new EnrollmentError("BAD_KEY", "x")).code).toBe(S.INVALID_ARGUMENT);
    expect(publicStatus(new EnrollmentError("TOKEN_INVALID", "x")).code).toBe(S.PERMISSION_DENIED);
    expect(publicStatus(new ModularError("length 3 ≠ 4"))).toEqual({ code: S.INVALID_ARGUMENT, details: "length 3 ≠ 4" });
    // Legacy errors from coordinator/rounds carry their own code.
    expect(publicStatus(new RpcError(S.ALREADY_EXISTS, "already attested"))).toEqual({ code: S.ALREADY_EXISTS, details: "already attested" });
  });

  it("never sends why secure aggregation refused a message", () => {
    for (const [code, why] of [["BAD_SIGNATURE", "keys of device 3 are not signed by its enrolled identity"], ["NOT_NEIGHBOUR", "share from 7, which is not a neighbour of 2"], ["BAD_LENGTH", "input is 3 @ 32 bits"]] as const) {
      const s = publicStatus(new SecAggError(code, why));
      expect(s.code).toBe(S.INVALID_ARGUMENT);
      expect(s.details).toBe(SECAGG_REFUSED);
      expect(s.internal).toBe(`${code}: ${why}`);
    }
  });

  it("answers anything unexpected with INTERNAL and a fixed text; the error stays in the log", () => {
    const s = publicStatus(new Error("ENOSPC writing /var/lib/tacit/secret-path"));
    expect(s).toMatchObject({ code: S.INTERNAL, details: INTERNAL_ERROR });
    expect(s.internal).toContain("ENOSPC writing /var/lib/tacit/secret-path");
    expect(publicStatus("a thrown string")).toEqual({ code: S.INTERNAL, details: INTERNAL_ERROR, internal: "a thrown string" });
    const closed = publicStatus(new LedgerClosedError("run run-x ended at seq 41"));
    expect(closed.code).toBe(S.FAILED_PRECONDITION);
    expect(closed.details).not.toContain("seq 41");
  });

  it("builds the grpc-js error and logs only what is kept inside", () => {
    const logged: [string, boolean][] = [];
    const e = toServiceError(new SecAggError("DUPLICATE", "two shares from 4"), (m, unexpected) => logged.push([m, unexpected]));
    expect([e.code, e.details, e.message]).toEqual([S.INVALID_ARGUMENT, SECAGG_REFUSED, SECAGG_REFUSED]);
    expect(e.metadata).toBeInstanceOf(grpc.Metadata);
    toServiceError(new RequestRefused("not-found", "no run x"), (m, unexpected) => logged.push([m, unexpected]));
    toServiceError(new TypeError("boom"), (m, unexpected) => logged.push([m.split("\n")[0]!, unexpected]));
    expect(logged).toEqual([["DUPLICATE: two shares from 4", false], ["TypeError: boom", true]]);
  });
});

describe("status boundary end to end", () => {
  it("refuses a device's forged keys in a live round with the public text only; the reason is in the coordinator's log", async () => {
    const logLines: string[] = [];
    const logs = new Writable({ write: (chunk, _enc, cb) => (logLines.push(String(chunk)), cb()) });
    const cluster = await TestCluster.start({ logger: pino({ level: "info" }, logs) });
    try {
      const statuses: grpc.StatusObject[] = [];
      // Flips a bit of the advertised keys' signature and records the status the coordinator answers.
      const forge: grpc.Interceptor = (options, next) => {
        const advert = options.method_definition.path === "/tacit.v1.Rounds/AdvertiseKeys";
        return new grpc.InterceptingCall(next(options), {
          start(metadata, listener, nextStart) {
            nextStart(metadata, new grpc.ListenerBuilder().withOnReceiveStatus((st, nxt) => (advert && statuses.push(st), nxt(st))).build());
          },
          sendMessage(message: { keys: { signature: Buffer } }, nextSend) {
            if (!advert) return nextSend(message);
            const signature = Buffer.from(message.keys.signature);
            signature[0]! ^= 1;
            nextSend({ ...message, keys: { ...message.keys, signature } });
          },
        });
      };
      const train = async (cfg: RoundConfig) => ({ delta: new Float32Array(cfg.parameterCount).fill(0.01), loss: 1, examples: 1 });
      for (let i = 0; i < 5; i++) await cluster.addDevice(`honest-${i}`, { train });
      await cluster.addDevice("forger", { train }, OPEN_LIMITS, { interceptors: [forge] });
      await cluster.waitConnected(6);
      const runId = await cluster.launch(tinyRunSpec({ rounds: 1, cohortSize: 6, minSurvivors: 3, populationSize: 6, clip: 100, deadlines: { ...tinyRunSpec().deadlines, advertiseMs: 1500 } }));
      const st = await cluster.waitRun(runId, 60_000);
      expect(statuses).toHaveLength(1);
      expect(statuses[0]!.code).toBe(S.INVALID_ARGUMENT);
      expect(statuses[0]!.details).toBe(SECAGG_REFUSED); // not which check failed, nor whose keys
      const log = logLines.join("");
      expect(log).toMatch(/"method":"\/tacit\.v1\.Rounds\/AdvertiseKeys","reason":"BAD_SIGNATURE: [^"]+"/);
      // The coordinator went on without the forger.
      expect(st.state).toBe("completed");
      expect(st.rounds[0]!.survivors).toBe(5);
    } finally {
      await cluster.stop();
    }
  });
});
