/**
 * Fuzzing a live coordinator: random and mutated protobuf messages, signed as every role and
 * unsigned, against every RPC of every service. Each must be answered with a specific status
 * (no crash, no hang, never the generic "internal error"), and the coordinator must still serve
 * a valid request afterwards. The count is printed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PROTO_LOADER_OPTIONS, PROTO_PATH } from "../shared/transport/proto.ts";
import { signedMetadata } from "../shared/transport/request-auth.ts";
import { privateKeyFromPem } from "../shared/crypto/index.ts";
import { pinnedCaCredentials } from "../shared/transport/channel-credentials.ts";
import { TestCluster } from "./support/cluster.ts";

const TOTAL = Number(process.env.FUZZ_TOTAL ?? 10_000);

describe("fuzzing every RPC of a live coordinator", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    // Rate limits high enough that fuzzed messages reach validation (the limiter has its own test).
    // Throttling is tested elsewhere: here every message must reach the code that parses it.
    const open = { burst: 1_000_000, perSecond: 1_000_000 };
    cluster = await TestCluster.start({ rateLimit: open, addressLimits: { enroll: open, failures: open } });
  });
  afterAll(async () => cluster?.stop());

  it(`answers ${TOTAL} random and mutated messages with specific statuses`, async () => {
    const def = protoLoader.loadSync(PROTO_PATH, PROTO_LOADER_OPTIONS);
    const methods: { path: string; stream: boolean; encode: (o: object) => Buffer; sample: object }[] = [];
    const samples: Record<string, object> = {
      CreateToken: { ttlSeconds: 60, label: "x" },
      Enroll: { token: "tt_x", identityPublicKey: randomBytes(32), deviceLabel: "d" },
      LaunchRun: { specJson: '{"name":"x"}', requestSignature: randomBytes(64) },
      GetRun: { runId: "run-x" },
      SubmitMaskedInput: { ref: { runId: "run-x", round: 0 }, bits: 32, length: 4, data: randomBytes(16) },
      ShareKeys: { ref: { runId: "run-x", round: 0 }, shares: [{ from: 0, to: 1, ciphertext: randomBytes(40) }] },
      AdvertiseKeys: { ref: { runId: "run-x", round: 0 }, keys: { index: 0, cPk: randomBytes(32), sPk: randomBytes(32), signature: randomBytes(64) } },
      SignSurvivors: { ref: { runId: "run-x", round: 0 }, signature: randomBytes(64) },
    };
    for (const d of Object.values(def)) {
      if ("format" in d) continue; // a message type, not a service
      for (const [mname, m] of Object.entries(d as Record<string, protoLoader.MethodDefinition<object, object>>)) {
        methods.push({ path: m.path, stream: m.responseStream, encode: (o) => m.requestSerialize(o), sample: samples[mname] ?? {} });
      }
    }
    expect(methods.length).toBe(19); // every RPC of the four services

    const client = new grpc.Client(cluster.address, pinnedCaCredentials(cluster.caFile));
    const keys = (["admin-1", "ml-team-1", "reviewer-1"] as const).map((id) => ({
      keyId: id,
      privateKey: privateKeyFromPem(readFileSync(join(cluster.coordinator.paths.keysOut, `${id}.key`), "utf8")).privateKey,
    }));
    const device = await cluster.enroll("fuzz-device");
    const signers = [undefined, ...keys, { keyId: device.deviceId, privateKey: device.identity.privateKey }];
    const codes = new Map<string, number>();
    const generic: string[] = [];
    let n = 0;

    const mutate = (buf: Buffer): Buffer => {
      const b = Buffer.from(buf);
      const kind = Math.floor(Math.random() * 4);
      if (kind === 0 || b.length === 0) return randomBytes(Math.floor(Math.random() * 200));
      if (kind === 1) {
        for (let i = 0; i < 1 + Math.floor(Math.random() * 4); i++) b[Math.floor(Math.random() * b.length)] = Math.floor(Math.random() * 256);
        return b;
      }
      if (kind === 2) return b.subarray(0, Math.floor(Math.random() * b.length));
      return Buffer.concat([b, randomBytes(1 + Math.floor(Math.random() * 50))]);
    };

    const pending = new Set<string>();
    const one = (m: (typeof methods)[number], signer: (typeof signers)[number]): Promise<void> =>
      new Promise<void>((resolve) => {
        const tag = `${m.path} as ${signer?.keyId ?? "anonymous"} #${n + pending.size}`;
        pending.add(tag);
        const resolveOnce = resolve;
        resolve = () => {
          pending.delete(tag);
          resolveOnce();
        };
        const payload = mutate(m.encode(m.sample));
        const md = signer ? signedMetadata(signer, m.path) : new grpc.Metadata();
        const deadline = Date.now() + 5000;
        const done = (code: number, details: string): void => {
          n += 1;
          codes.set(grpc.status[code]!, (codes.get(grpc.status[code]!) ?? 0) + 1);
          if (code === grpc.status.INTERNAL || code === grpc.status.UNKNOWN || code === grpc.status.DEADLINE_EXCEEDED) generic.push(`${m.path}: ${grpc.status[code]} ${details}`);
          resolve();
        };
        const ser = (x: Buffer): Buffer => x;
        if (m.stream) {
          const call = client.makeServerStreamRequest(m.path, ser, ser, payload, md, { deadline });
          call.on("data", () => {
            call.cancel();
          });
          call.on("error", (e: grpc.ServiceError) => done(e.code === grpc.status.CANCELLED ? grpc.status.OK : e.code, e.details));
          call.on("end", () => undefined);
          call.on("status", (s: grpc.StatusObject) => s.code === grpc.status.OK && done(grpc.status.OK, ""));
        } else {
          client.makeUnaryRequest(m.path, ser, ser, payload, md, { deadline }, (err) => done(err ? err.code : grpc.status.OK, err?.details ?? ""));
        }
      });

    const batch: Promise<void>[] = [];
    for (let i = 0; i < TOTAL; i++) {
      const m = methods[i % methods.length]!;
      const s = signers[Math.floor(i / methods.length) % signers.length];
      batch.push(one(m, s));
      if (batch.length >= 64) {
        const timer = setTimeout(() => console.log("fuzz: still pending:", [...pending].slice(0, 5)), 8000);
        await Promise.all(batch.splice(0));
        clearTimeout(timer);
      }
    }
    await Promise.all(batch);
    console.log(`fuzz: ${n} messages answered; statuses ${JSON.stringify(Object.fromEntries(codes))}`);
    expect(n).toBe(TOTAL);
    expect(generic.slice(0, 5)).toEqual([]);
    // Still alive and serving.
    const st = await cluster.mlTeam.unary<object, { runs: unknown[] }>("RunControl", "ListRuns", {});
    expect(Array.isArray(st.runs)).toBe(true);
    client.close();
  }, 240_000);
});
