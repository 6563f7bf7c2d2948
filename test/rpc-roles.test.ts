/**
 * Least privilege on every RPC: every method of proto/tacit.proto (enumerated from the loaded
 * service definitions, so a new RPC cannot be forgotten) is called over real gRPC/TLS by every
 * caller class — device, ML team, reviewer, admin, unsigned, an unknown key and an impostor (a
 * known key id signed with another key). Each caller the README's RPC × role table does not
 * allow must get PERMISSION_DENIED or UNAUTHENTICATED (never OK, never INTERNAL); each caller it
 * allows must not be refused for who it is (it may still fail validation on an empty message).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { generateEd25519, privateKeyFromPem, type Ed25519KeyPair } from "../shared/crypto/index.ts";
import { loadTacitProto } from "../shared/transport/proto.ts";
import { pinnedCaCredentials } from "../shared/transport/channel-credentials.ts";
import { signedMetadata, type Credentials } from "../shared/transport/request-auth.ts";
import { TestCluster } from "./support/cluster.ts";

type Caller = "device" | "ml-team" | "reviewer" | "admin" | "unsigned" | "unknown-key" | "impostor";
const CALLERS: Caller[] = ["device", "ml-team", "reviewer", "admin", "unsigned", "unknown-key", "impostor"];

/**
 * The README's RPC × role table. "token" is Enroll's only credential (unsigned, with a valid
 * single-use token); every signed caller is refused there.
 */
const ALLOWED: Record<string, readonly (Caller | "token")[]> = {
  "Enrollment/CreateToken": ["admin"],
  "Enrollment/Enroll": ["token"],
  "Enrollment/Deregister": ["device"],
  "RunControl/LaunchRun": ["ml-team"],
  "RunControl/GetRun": ["ml-team", "reviewer"],
  "RunControl/ListRuns": ["ml-team", "reviewer"],
  "RunControl/WatchRun": ["ml-team", "reviewer"],
  "RunControl/CancelRun": ["ml-team"],
  "Rounds/Subscribe": ["device"],
  "Rounds/Decline": ["device"],
  "Rounds/AdvertiseKeys": ["device"],
  "Rounds/ShareKeys": ["device"],
  "Rounds/SubmitMaskedInput": ["device"],
  "Rounds/SignSurvivors": ["device"],
  "Rounds/SubmitUnmasking": ["device"],
  "Rounds/SubmitAttestation": ["device"],
  "Ledger/ReadLedger": ["device", "reviewer"],
  "Ledger/GetPolicy": ["device", "ml-team", "reviewer"],
  "Ledger/SetPolicy": ["reviewer"],
};

interface Rpc {
  name: string; // "Service/Method"
  path: string;
  def: grpc.MethodDefinition<object, unknown>;
}

function allRpcs(): Rpc[] {
  const pkg = loadTacitProto().tacit.v1 as unknown as Record<string, unknown>;
  const out: Rpc[] = [];
  for (const [svc, ctor] of Object.entries(pkg)) {
    // Services are client constructors carrying a `service` definition; messages are not.
    const service = typeof ctor === "function" ? (ctor as { service?: grpc.ServiceDefinition }).service : undefined;
    if (!service) continue;
    for (const [method, def] of Object.entries(service)) {
      const d = def as grpc.MethodDefinition<object, unknown>;
      out.push({ name: `${svc}/${method}`, path: d.path, def: d });
    }
  }
  return out;
}

interface Outcome {
  code: grpc.status;
  details: string;
}

/** One call with the given metadata; a server stream counts as accepted once it yields a message. */
function invoke(client: grpc.Client, rpc: Rpc, md: grpc.Metadata, req: object): Promise<Outcome> {
  const { def } = rpc;
  const ser = def.requestSerialize as (v: object) => Buffer;
  const de = def.responseDeserialize as (b: Buffer) => unknown;
  const deadline = Date.now() + 10_000;
  if (def.requestStream) throw new Error(`${rpc.name}: client streaming is not expected in tacit.proto`);
  if (!def.responseStream) {
    return new Promise((resolve) =>
      client.makeUnaryRequest(rpc.path, ser, de, req, md, { deadline }, (err) => resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: "" })),
    );
  }
  return new Promise((resolve) => {
    const call = client.makeServerStreamRequest(rpc.path, ser, de, req, md, { deadline });
    let settled = false;
    const done = (o: Outcome): void => {
      if (settled) return;
      settled = true;
      resolve(o);
    };
    call.on("data", () => {
      done({ code: grpc.status.OK, details: "stream open" });
      call.cancel();
    });
    call.on("error", (e: grpc.ServiceError) => done({ code: e.code, details: e.details }));
    call.on("status", (s: grpc.StatusObject) => done({ code: s.code, details: s.details }));
    call.on("end", () => done({ code: grpc.status.OK, details: "stream ended" }));
  });
}

describe("roles on every RPC", () => {
  let cluster: TestCluster;
  let raw: grpc.Client;
  const creds = new Map<Caller, Credentials | undefined>();
  let spareDevices: Credentials[] = [];

  const keyOf = (id: string): Ed25519KeyPair => privateKeyFromPem(readFileSync(join(cluster.coordinator.paths.keysOut, `${id}.key`), "utf8"));

  beforeAll(async () => {
    cluster = await TestCluster.start();
    raw = new grpc.Client(cluster.address, pinnedCaCredentials(cluster.caFile));
    const dev = await cluster.enroll("roles-device");
    creds.set("device", dev.client.credentials);
    creds.set("ml-team", { keyId: "ml-team-1", privateKey: keyOf("ml-team-1").privateKey });
    creds.set("reviewer", { keyId: "reviewer-1", privateKey: keyOf("reviewer-1").privateKey });
    creds.set("admin", { keyId: "admin-1", privateKey: keyOf("admin-1").privateKey });
    creds.set("unsigned", undefined);
    creds.set("unknown-key", { keyId: `dev-${randomBytes(10).toString("hex")}`, privateKey: generateEd25519().privateKey });
    // A registered key id whose signature comes from another key.
    creds.set("impostor", { keyId: "reviewer-1", privateKey: generateEd25519().privateKey });
    // Deregister removes the caller: allowed-role Deregister calls use spare devices.
    spareDevices = [await cluster.enroll("roles-spare-1"), await cluster.enroll("roles-spare-2")].map((d) => d.client.credentials!);
  }, 60_000);
  afterAll(async () => {
    raw?.close();
    await cluster?.stop();
  });

  it("the table names exactly the RPCs of tacit.proto", () => {
    const rpcs = allRpcs().map((r) => r.name).sort();
    expect(rpcs.length).toBeGreaterThanOrEqual(18);
    expect(rpcs).toEqual(Object.keys(ALLOWED).sort());
  });

  it("refuses every wrong role with PERMISSION_DENIED or UNAUTHENTICATED and lets every allowed role through", async () => {
    const rpcs = allRpcs();
    let refused = 0;
    let accepted = 0;
    const failures: string[] = [];
    for (const rpc of rpcs) {
      const allowed = ALLOWED[rpc.name] ?? [];
      for (const caller of CALLERS) {
        let c = creds.get(caller);
        let req: object = {};
        const isAllowed = allowed.includes(caller);
        if (rpc.name === "Enrollment/Deregister" && caller === "device") c = spareDevices.shift();
        if (rpc.name === "Enrollment/Enroll") {
          // Every caller presents a valid token: a signed caller must still be refused (the
          // token is Enroll's only credential), so the refusal is about the role, not the token.
          const { token } = await cluster.admin.unary<object, { token: string }>("Enrollment", "CreateToken", { ttlSeconds: 60 });
          req = { token, identityPublicKey: Buffer.from(generateEd25519().publicRaw), deviceLabel: `roles-${caller}` };
        }
        const md = c ? signedMetadata(c, rpc.path) : new grpc.Metadata();
        const o = await invoke(raw, rpc, md, req);
        const label = `${rpc.name} as ${caller}: ${grpc.status[o.code]} ${o.details}`;
        const roleRefusal = o.code === grpc.status.UNAUTHENTICATED || o.code === grpc.status.PERMISSION_DENIED;
        if (caller === "unsigned" && rpc.name === "Enrollment/Enroll") {
          // The allowed case: unsigned with a valid token enrolls.
          if (o.code !== grpc.status.OK) failures.push(`allowed (token) refused: ${label}`);
          accepted++;
          continue;
        }
        if (isAllowed) {
          if (roleRefusal || o.code === grpc.status.INTERNAL) failures.push(`allowed caller refused: ${label}`);
          accepted++;
        } else {
          if (!roleRefusal) failures.push(`wrong role got through: ${label}`);
          refused++;
        }
      }
      // Enroll: unsigned without any token is refused too.
      if (rpc.name === "Enrollment/Enroll") {
        const o = await invoke(raw, rpc, new grpc.Metadata(), { identityPublicKey: Buffer.from(generateEd25519().publicRaw) });
        if (o.code !== grpc.status.UNAUTHENTICATED && o.code !== grpc.status.PERMISSION_DENIED) failures.push(`Enroll without a token: ${grpc.status[o.code]} ${o.details}`);
        refused++;
      }
    }
    console.log(`rpc-roles: ${rpcs.length} RPCs × ${CALLERS.length} callers: ${refused} (RPC, wrong role) pairs refused, ${accepted} (RPC, allowed role) pairs accepted, ${refused + accepted} checked`);
    expect(failures).toEqual([]);
    expect(refused).toBeGreaterThan(rpcs.length * 4);
  }, 120_000);

  it("a device reads only its own ledger entries", async () => {
    const dev = creds.get("device")!;
    const rpc = allRpcs().find((r) => r.name === "Ledger/ReadLedger")!;
    const o = await invoke(raw, rpc, signedMetadata(dev, rpc.path), { fromSeq: "0", deviceId: "dev-someoneelse" });
    expect(o.code).toBe(grpc.status.PERMISSION_DENIED);
  });
});
