/**
 * The ReadLedger handler's filter (issue #16: deleting it let any device read the whole ledger
 * and broke no test). The handler from buildServices is driven directly, with a coordinator
 * whose authenticator enforces the allowed roles and whose ledger pages record the filter they
 * were asked for; the live-coordinator tests (rpc-roles, coordinator-bad-input) cover the wire.
 */
import { EventEmitter } from "node:events";
import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { buildServices, type CoordinatorApi } from "../coordinator/server/handlers.ts";
import { denied } from "../coordinator/server/request-errors.ts";

type Role = "reviewer" | "device" | "ml-team" | "admin";

function coordinator(caller: { role: Role; keyId: string }, ledger: string[]) {
  const asked: { fromSeq: number; deviceId: string | undefined; roles: readonly string[] }[] = [];
  let allowed: readonly string[] = [];
  const api = {
    auth: {
      authenticate: async (_md: grpc.Metadata, _path: string, roles: readonly string[]) => {
        allowed = roles;
        if (!roles.includes(caller.role)) throw denied(`role ${caller.role} may not call this`);
        return caller;
      },
    },
    log: { warn: () => undefined, error: () => undefined },
    async *ledgerPages(fromSeq: number, deviceId?: string): AsyncIterable<string[]> {
      asked.push({ fromSeq, deviceId, roles: allowed });
      // Two pages, filtered the way the real ledger index filters: by device, from a sequence number.
      const lines = ledger.map((l, seq) => ({ l, seq })).filter((x) => x.seq >= fromSeq && (deviceId === undefined || x.l.includes(deviceId)));
      yield lines.slice(0, 1).map((x) => x.l);
      yield lines.slice(1).map((x) => x.l);
    },
  } as unknown as CoordinatorApi;
  return { api, asked };
}

/** Calls ReadLedger like grpc-js would and resolves with the written lines or the emitted status. */
function readLedger(api: CoordinatorApi, request: { fromSeq: string; deviceId: string }): Promise<{ lines: string[]; error?: grpc.ServiceError }> {
  const handler = (buildServices(api).ledger as unknown as { ReadLedger: (call: unknown) => void }).ReadLedger;
  return new Promise((resolve) => {
    const lines: string[] = [];
    const call = Object.assign(new EventEmitter(), {
      request,
      metadata: new grpc.Metadata(),
      cancelled: false,
      write: (m: { line: string }) => {
        lines.push(m.line);
        return true;
      },
      end: () => resolve({ lines }),
    });
    call.on("error", (error: grpc.ServiceError) => resolve({ lines, error }));
    handler(call);
  });
}

const LEDGER = ["genesis", "round dev-a dev-b", "attestation dev-a", "attestation dev-b", "round dev-b"];

describe("ReadLedger", () => {
  it("a device reads only the entries about itself, whatever it asks for", async () => {
    const { api, asked } = coordinator({ role: "device", keyId: "dev-a" }, LEDGER);
    const r = await readLedger(api, { fromSeq: "", deviceId: "" });
    expect(r.error).toBeUndefined();
    expect(asked).toEqual([{ fromSeq: 0, deviceId: "dev-a", roles: ["reviewer", "device"] }]);
    expect(r.lines).toEqual(["round dev-a dev-b", "attestation dev-a"]);
    // Its own id, asked explicitly, is the same filter.
    const own = await readLedger(api, { fromSeq: "2", deviceId: "dev-a" });
    expect(own.lines).toEqual(["attestation dev-a"]);
    expect(asked[1]).toEqual({ fromSeq: 2, deviceId: "dev-a", roles: ["reviewer", "device"] });
  });

  it("a device asking for another device's entries is refused before any page is read", async () => {
    const { api, asked } = coordinator({ role: "device", keyId: "dev-a" }, LEDGER);
    const r = await readLedger(api, { fromSeq: "0", deviceId: "dev-b" });
    expect(r.error?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(r.error?.details).toMatch(/only the ledger entries about itself/);
    expect(r.lines).toEqual([]);
    expect(asked).toEqual([]);
  });

  it("a reviewer reads the whole ledger from any sequence number", async () => {
    const { api, asked } = coordinator({ role: "reviewer", keyId: "rev" }, LEDGER);
    expect((await readLedger(api, { fromSeq: "0", deviceId: "" })).lines).toEqual(LEDGER);
    expect((await readLedger(api, { fromSeq: "3", deviceId: "" })).lines).toEqual(LEDGER.slice(3));
    expect(asked.map((a) => a.deviceId)).toEqual([undefined, undefined]);
  });

  it("refuses other roles and a from_seq that is not a non-negative integer", async () => {
    const ml = coordinator({ role: "ml-team", keyId: "ml" }, LEDGER);
    expect((await readLedger(ml.api, { fromSeq: "0", deviceId: "" })).error?.code).toBe(grpc.status.PERMISSION_DENIED);
    const { api, asked } = coordinator({ role: "reviewer", keyId: "rev" }, LEDGER);
    for (const fromSeq of ["-1", "1.5", "x", "9007199254740993"]) {
      const r = await readLedger(api, { fromSeq, deviceId: "" });
      expect(r.error?.code, fromSeq).toBe(grpc.status.INVALID_ARGUMENT);
      expect(r.error?.details).toMatch(/from_seq must be a non-negative integer/);
    }
    expect(asked).toEqual([]);
  });
});

describe("SubmitMaskedInput", () => {
  /** parameterCount 100 pads to 128 words (paddedDimension); a 32-bit round. */
  function rounds(bits = 32) {
    const got: { deviceId: string; bits: number; length: number; data: number[] }[] = [];
    const config = { runId: "r", round: 0, parameterCount: 100, secagg: { bits }, dp: {} };
    const api = {
      auth: { authenticate: async () => ({ role: "device", keyId: "dev-a" }) },
      log: { warn: () => undefined, error: () => undefined },
      activeRound: () => ({ config, maskedInput: (deviceId: string, y: { bits: number; length: number; data: Uint32Array }) => got.push({ deviceId, bits: y.bits, length: y.length, data: Array.from(y.data) }) }),
    } as unknown as CoordinatorApi;
    const submit = (req: { bits: number; length: number; data: Buffer }) =>
      new Promise<grpc.ServiceError | null>((resolve) => {
        const handler = (buildServices(api).rounds as unknown as { SubmitMaskedInput: (call: unknown, cb: (e: grpc.ServiceError | null) => void) => void }).SubmitMaskedInput;
        handler({ request: { ref: { runId: "r", round: 0 }, ...req }, metadata: new grpc.Metadata() }, (e) => resolve(e));
      });
    return { got, submit };
  }

  it("takes a vector of the round's length and bits, word for word", async () => {
    const { got, submit } = rounds();
    const words = Uint32Array.from({ length: 128 }, (_, i) => i * 3 + 1);
    expect(await submit({ bits: 32, length: 128, data: Buffer.from(words.buffer) })).toBeNull();
    expect(got).toEqual([{ deviceId: "dev-a", bits: 32, length: 128, data: Array.from(words) }]);
  });

  it("refuses another length, another bit width, or data of the wrong size, before the round sees it", async () => {
    const { got, submit } = rounds();
    const ok = Buffer.alloc(128 * 4);
    for (const [req, msg] of [
      [{ bits: 32, length: 127, data: Buffer.alloc(127 * 4) }, /length 127, this round aggregates vectors of 128/],
      [{ bits: 64, length: 128, data: Buffer.alloc(128 * 8) }, /uses 64 bits, the round uses 32/],
      [{ bits: 32, length: 128, data: ok.subarray(4) }, /data is 508 bytes, expected 512/],
      [{ bits: 32, length: 128, data: Buffer.alloc(128 * 8) }, /data is 1024 bytes, expected 512/],
    ] as const) {
      const e = await submit(req);
      expect(e?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(e?.details).toMatch(msg);
    }
    expect(got).toEqual([]);
  });

  it("a 64-bit round takes two words per coordinate", async () => {
    const { got, submit } = rounds(64);
    expect((await submit({ bits: 64, length: 128, data: Buffer.alloc(128 * 4) }))?.details).toMatch(/expected 1024/);
    expect(await submit({ bits: 64, length: 128, data: Buffer.alloc(128 * 8, 1) })).toBeNull();
    expect(got.map((g) => [g.bits, g.length, g.data.length])).toEqual([[64, 128, 256]]);
  });
});
