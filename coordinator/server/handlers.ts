/**
 * gRPC service implementations. Each handler authenticates the caller and checks its role
 * (see the RPC × role table in README.md), validates the message, then calls domain code.
 * Handlers throw typed refusals (request-errors.ts) or let domain errors through; every one of
 * them becomes a status in status-boundary.ts, which keeps secret reasons in the log.
 */
import * as grpc from "@grpc/grpc-js";
import { SecAggError } from "../../shared/secagg/index.ts";
import type { Logger } from "pino";
import { fromData } from "../../shared/modular/index.ts";
import { aggregationLength } from "../../shared/run/index.ts";
import type { ServerEvent } from "../../shared/proto-gen/tacit/v1/ServerEvent.ts";
import type { RoundRef__Output } from "../../shared/proto-gen/tacit/v1/RoundRef.ts";
import type { Authenticator } from "./authenticator.ts";
import type { StreamSlots } from "./stream-slots.ts";
import type { Role } from "../state/state-dir.ts";
import { denied, invalid, notFound, unauthenticated } from "./request-errors.ts";
import { toServiceError } from "./status-boundary.ts";
import { isMalformed, MALFORMED } from "./harden-service.ts";
import { AUTH_KEY_ID } from "../../shared/transport/request-auth.ts";
import { keyFingerprint, type DeviceRegistry } from "../state/registry.ts";
import { isQuarantined, malformedShareReason, recordOffence } from "../state/offences.ts";
import type { PrivacyLedger } from "../ledger/privacy-ledger.ts";
import type { RunStore } from "../runs/run-store.ts";
import type { DeviceHub, DeviceStream } from "../rounds/device-hub.ts";
import { WriteBacklog } from "./write-backlog.ts";
import type { ActiveRound } from "../rounds/active-round.ts";
import type { Ed25519KeyPair } from "../../shared/crypto/index.ts";

/** What the RPC handlers need from the coordinator (implemented by coordinator.ts). */
export interface CoordinatorApi {
  auth: Authenticator;
  log: Logger;
  /** Open WatchRun streams, bounded per principal and overall (I2). */
  watchSlots: StreamSlots;
  /** Unread bytes a Subscribe stream may hold before its device is dropped as a slow reader (I6). */
  subscribeBacklogBytes: number;
  /** Closes the connection a call came on (its getPeer()), every stream on it; false if unknown. */
  dropConnection(peer: string): boolean;
  registry: DeviceRegistry;
  ledger: Pick<PrivacyLedger, "enrollmentToken" | "enrollment" | "offence" | "offences">;
  runs: RunStore;
  hub: DeviceHub;
  signingKey: Ed25519KeyPair;
  activeRound(ref: { runId: string; round: number }): ActiveRound;
  launchRun(specJson: string, requestSignature: Uint8Array, requester: string): Promise<{ runId: string }>;
  cancelRun(runId: string): Promise<void>;
  runStatus(runId: string): Promise<{ state: string } & object>;
  ledgerPages(fromSeq: number, deviceId?: string): AsyncIterable<string[]>;
  policyJson(): Promise<string | undefined>;
  installPolicy(json: string): Promise<void>;
}

type Unary<Req, Res> = (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => void;
type Caller = { role: Role | "anonymous"; keyId: string };

const SVC = "/tacit.v1.";
const DEVICE_ONLY = ["device"] as const;
const ACK = { ok: true, detail: "" };
const MAX_SHARES_PER_MESSAGE = 100_000;
const MAX_SHARE_BYTES = 4096;

/** Logs what status-boundary.ts keeps inside (never sent to the caller). */
function internalLog(log: Logger, method: string): (internal: string, unexpected: boolean) => void {
  return (internal, unexpected) => (unexpected ? log.error({ method, err: internal }, "unexpected error in RPC handler") : log.warn({ method, reason: internal }, "request refused"));
}

function unary<Req, Res>(c: CoordinatorApi, method: string, roles: readonly Role[] | "token", fn: (req: Req, caller: Caller) => Promise<Res>): Unary<Req, Res> {
  const path = `${SVC}${method}`;
  return (call, callback) => {
    (async () => {
      if (roles === "token" && call.metadata.get(AUTH_KEY_ID).length > 0) {
        // The token is Enroll's only credential (README's RPC × role table): an enrolled device,
        // an operator or a reviewer key has no business enrolling identities.
        throw denied(`${method.split("/").pop()} is authorized by the enrollment token alone: call it without request credentials`);
      }
      const caller = roles === "token" ? { role: "anonymous" as const, keyId: "" } : await c.auth.authenticate(call.metadata, path, roles);
      if (isMalformed(call.request)) throw invalid(`malformed ${method.split("/").pop()} message: ${call.request[MALFORMED]}`);
      return fn(call.request, caller);
    })().then(
      (res) => callback(null, res),
      (err: unknown) => callback(toServiceError(err, internalLog(c.log, path))),
    );
  };
}

/** A server-streaming handler: `fn` authenticates and writes; any error ends the call through the boundary. */
function streaming<Req, Res>(c: CoordinatorApi, method: string, fn: (call: grpc.ServerWritableStream<Req, Res>, path: string) => Promise<void>): (call: grpc.ServerWritableStream<Req, Res>) => void {
  const path = `${SVC}${method}`;
  return (call) => {
    fn(call, path).catch((err: unknown) => call.emit("error", toServiceError(err, internalLog(c.log, path))));
  };
}

function ref(r: RoundRef__Output | null): { runId: string; round: number } {
  if (!r || !r.runId) throw invalid("missing round reference (ref.run_id)");
  if (r.runId.length > 128) throw invalid("run id too long");
  return { runId: r.runId, round: r.round };
}

function bytesOf(b: Buffer | undefined, name: string, exact?: number): Uint8Array {
  if (!b || b.length === 0) throw invalid(`missing ${name}`);
  if (exact !== undefined && b.length !== exact) throw invalid(`${name} must be ${exact} bytes, got ${b.length}`);
  return new Uint8Array(b);
}

function enrollmentService(c: CoordinatorApi) {
  return {
    // Only the admin mints identities: the ML team reads the model, so devices of its own in a
    // cohort would surround the honest ones (finding M3). Each token and enrollment is a ledger entry.
    CreateToken: unary<{ ttlSeconds: number; label: string }, object>(c, "Enrollment/CreateToken", ["admin"], async (req, caller) => {
      const ttl = req.ttlSeconds || 86_400;
      if (ttl > 30 * 86_400) throw invalid("ttl_seconds must be at most 30 days");
      const t = await c.registry.createToken(ttl, (req.label ?? "").slice(0, 100), caller.keyId);
      await c.ledger.enrollmentToken(t.record);
      return { token: t.token, expiresAtMs: String(t.record.expiresAt) };
    }),
    Enroll: unary<{ token: string; identityPublicKey: Buffer; deviceLabel: string }, object>(c, "Enrollment/Enroll", "token", async (req) => {
      if (!req.token) throw unauthenticated("Enroll needs a single-use enrollment token (`tacit coordinator token create`)");
      if (req.token.length > 200) throw invalid("malformed enrollment token");
      const key = bytesOf(req.identityPublicKey, "identity_public_key", 32);
      const { device, token } = await c.registry.enroll(req.token, key, req.deviceLabel ?? "");
      await c.ledger.enrollment({ deviceId: device.deviceId, keyFingerprint: keyFingerprint(key), label: device.label, creator: token.creator, tokenId: token.tokenId, tokenLabel: token.label });
      return { deviceId: device.deviceId, coordinatorPublicKey: Buffer.from(c.signingKey.publicRaw) };
    }),
    Deregister: unary<object, object>(c, "Enrollment/Deregister", DEVICE_ONLY, async (_req, caller) => {
      await c.registry.remove(caller.keyId);
      c.auth.forgetDevice(caller.keyId);
      c.hub.remove(caller.keyId); // ends its Subscribe stream: no longer connected, never sampled
      return {};
    }),
  };
}

function runControlService(c: CoordinatorApi) {
  return {
    LaunchRun: unary<{ specJson: string; requestSignature: Buffer }, object>(c, "RunControl/LaunchRun", ["ml-team"], async (req, caller) => {
      if (!req.specJson || req.specJson.length > 64 * 1024) throw invalid("spec_json missing or larger than 64 KiB");
      const run = await c.launchRun(req.specJson, new Uint8Array(req.requestSignature ?? Buffer.alloc(0)), caller.keyId);
      return c.runStatus(run.runId);
    }),
    GetRun: unary<{ runId: string }, object>(c, "RunControl/GetRun", ["ml-team", "reviewer"], async (req) => c.runStatus(req.runId)),
    ListRuns: unary<object, object>(c, "RunControl/ListRuns", ["ml-team", "reviewer"], async () => ({
      // A run id without a run the ledger vouches for (planted in Redis) is left out, not an error.
      runs: (await Promise.all((await c.runs.list()).map((id) => c.runStatus(id).catch(() => undefined)))).filter((r) => r !== undefined),
    })),
    CancelRun: unary<{ runId: string }, object>(c, "RunControl/CancelRun", ["ml-team"], async (req) => {
      await c.cancelRun(req.runId);
      return c.runStatus(req.runId);
    }),
    WatchRun: streaming<{ runId: string }, object>(c, "RunControl/WatchRun", async (call, path) => {
      const caller = await c.auth.authenticate(call.metadata, path, ["ml-team", "reviewer"]);
      if (isMalformed(call.request)) throw invalid(`malformed WatchRun message: ${call.request[MALFORMED]}`);
      const release = c.watchSlots.acquire(caller.keyId);
      call.on("cancelled", release);
      call.on("close", release);
      call.on("error", release);
      try {
        await watchRun(c, call);
      } finally {
        release();
      }
    }),
  };
}

/** Writes the run's status whenever it changes, until the run ends or the caller goes away. */
async function watchRun(c: CoordinatorApi, call: grpc.ServerWritableStream<{ runId: string }, object>): Promise<void> {
  let last = "";
  while (!call.cancelled) {
    const st = await c.runStatus(call.request.runId);
    const text = JSON.stringify(st);
    if (text !== last) {
      call.write(st);
      last = text;
    }
    if (["completed", "failed", "cancelled"].includes(st.state)) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  call.end();
}

function subscribe(c: CoordinatorApi) {
  return streaming<{ eligible: boolean; backend: string }, ServerEvent>(c, "Rounds/Subscribe", async (call, path) => {
    const caller = await c.auth.authenticate(call.metadata, path, DEVICE_ONLY);
    if (isMalformed(call.request)) throw invalid(`malformed Subscribe message: ${call.request[MALFORMED]}`);
    if (isQuarantined(c.ledger, caller.keyId)) {
      throw denied(`device ${caller.keyId} is quarantined after ${c.ledger.offences(caller.keyId)} offences recorded in the ledger`);
    }
    // A Buffer is an event serialized once for the whole cohort (harden-service passes it through).
    // Every event is written serialized, so what the device has not read is counted in bytes.
    const backlog = new WriteBacklog(c.subscribeBacklogBytes);
    let heartbeat: NodeJS.Timeout | undefined;
    const stream: DeviceStream = {
      write: (ev) => {
        const bytes = Buffer.isBuffer(ev) ? ev : c.hub.encoder ? c.hub.encoder(ev) : undefined;
        const size = bytes?.length ?? 0;
        if (!backlog.admit(size)) {
          dropSlowReader();
          return false;
        }
        call.write((bytes ?? ev) as ServerEvent, () => backlog.release(size));
        return true;
      },
      end: (trailers) => call.end(trailersOf(trailers)),
    };
    const gone = (why: string): void => {
      clearInterval(heartbeat);
      // Why a device left is what an operator needs when a round loses devices it should not
      // (a peer's keepalive timing out on a busy machine looks exactly like a laptop closing).
      // Logged once, and not for a stream its own reconnect replaced.
      if (c.hub.disconnect(caller.keyId, stream)) c.log.info({ deviceId: caller.keyId, why }, "device's Subscribe stream ended");
    };
    // A device that does not read its stream is forgotten, and its connection closed: that frees
    // what is queued for it at every layer (grpc-js, HTTP/2, the socket), and a device that was
    // only asleep sees its stream fail and reconnects. Ending the stream instead would wait, behind
    // the unread messages, for the device to read.
    const dropSlowReader = (): void => {
      c.log.warn({ deviceId: caller.keyId, unreadBytes: backlog.pending, limit: c.subscribeBacklogBytes }, "device is not reading its Subscribe stream: dropped as a slow reader");
      gone("slow reader");
      if (!c.dropConnection(call.getPeer())) call.destroy(new Error(`Subscribe stream closed: ${backlog.pending} bytes unread by the device, over the ${c.subscribeBacklogBytes}-byte limit`));
    };
    c.hub.connect(caller.keyId, stream, call.request.eligible !== false);
    // An immediate heartbeat tells the device it is connected (and flushes headers).
    stream.write({ heartbeat: { timeMs: String(Date.now()) } });
    heartbeat = setInterval(() => stream.write({ heartbeat: { timeMs: String(Date.now()) } }), 15_000);
    call.on("cancelled", () => gone("cancelled by the device or its connection"));
    call.on("close", () => gone("closed"));
    call.on("error", (e: Error) => gone(`error: ${e.message}`));
  });
}

type MaskedInputRequest = { ref: RoundRef__Output | null; bits: number; length: number; data: Buffer };

function submitMaskedInput(c: CoordinatorApi) {
  return unary<MaskedInputRequest, object>(c, "Rounds/SubmitMaskedInput", DEVICE_ONLY, async (req, caller) => {
    const round = c.activeRound(ref(req.ref));
    const want = aggregationLength(round.config);
    if (req.length !== want) throw invalid(`masked input has length ${req.length}, this round aggregates vectors of ${want}`);
    if (req.bits !== round.config.secagg.bits) throw invalid(`masked input uses ${req.bits} bits, the round uses ${round.config.secagg.bits}`);
    const limbs = req.bits > 32 ? 2 : 1;
    const data = req.data ?? Buffer.alloc(0);
    if (data.length !== want * limbs * 4) throw invalid(`masked input data is ${data.length} bytes, expected ${want * limbs * 4}`);
    const words = new Uint32Array(want * limbs);
    Buffer.from(words.buffer).set(data);
    round.maskedInput(caller.keyId, fromData(req.bits, want, words));
    return ACK;
  });
}

type Share = { owner: number; share: Buffer };
type UnmaskingRequest = { ref: RoundRef__Output | null; selfMaskShares: Share[]; secretKeyShares: Share[] };

function submitUnmasking(c: CoordinatorApi) {
  return unary<UnmaskingRequest, object>(c, "Rounds/SubmitUnmasking", DEVICE_ONLY, async (req, caller) => {
    const round = c.activeRound(ref(req.ref));
    const conv = (xs: Share[] | undefined) => (xs ?? []).map((s) => ({ owner: s.owner, share: bytesOf(s.share, "share") }));
    const selfMaskShares = conv(req.selfMaskShares);
    const secretKeyShares = conv(req.secretKeyShares);
    // Only a member expected in the unmask phase gets this far: anyone else is refused before
    // its shares are looked at, so no enrolled device can fill the ledger with offences
    // against rounds it is not in, or repeat one in a round.
    const from = round.unmaskingSender(caller.keyId);
    // A share that is not a field element would abort the whole round at reconstruction:
    // refuse it here (the round goes on without this device), name the sender, and
    // quarantine a repeat offender.
    const bad = malformedShareReason([...selfMaskShares, ...secretKeyShares]);
    if (bad) {
      // Its answer will not come: the phase stops waiting for it, and before the ledger write,
      // so a second message of the device's is refused as not expected, never counted twice.
      round.gate?.settle(from);
      await recordOffence(c, { deviceId: caller.keyId, runId: round.config.runId, round: round.config.round, reason: bad });
      throw invalid(`${bad}: this device is named in the ledger`);
    }
    round.unmask(caller.keyId, { from, selfMaskShares, secretKeyShares });
    return ACK;
  });
}

type AdvertiseRequest = { ref: RoundRef__Output | null; keys: { index: number; cPk: Buffer; sPk: Buffer; selfMaskCommitment: Buffer; signature: Buffer } | null };
type ShareKeysRequest = { ref: RoundRef__Output | null; shares: { from: number; to: number; ciphertext: Buffer }[] };

function roundsService(c: CoordinatorApi) {
  return {
    Subscribe: subscribe(c),
    Decline: unary<{ ref: RoundRef__Output | null; reason: string }, object>(c, "Rounds/Decline", DEVICE_ONLY, async (req, caller) => {
      c.activeRound(ref(req.ref)).decline(caller.keyId, req.reason ?? "");
      return ACK;
    }),
    AdvertiseKeys: unary<AdvertiseRequest, object>(c, "Rounds/AdvertiseKeys", DEVICE_ONLY, async (req, caller) => {
      const k = req.keys;
      if (!k) throw invalid("missing keys");
      const keys = {
        index: k.index,
        cPk: bytesOf(k.cPk, "c_pk", 32),
        sPk: bytesOf(k.sPk, "s_pk", 32),
        selfMaskCommitment: bytesOf(k.selfMaskCommitment, "self_mask_commitment", 32),
        signature: bytesOf(k.signature, "signature", 64),
      };
      c.activeRound(ref(req.ref)).advertise(caller.keyId, keys);
      return ACK;
    }),
    ShareKeys: unary<ShareKeysRequest, object>(c, "Rounds/ShareKeys", DEVICE_ONLY, async (req, caller) => {
      const shares = req.shares ?? [];
      if (shares.length > MAX_SHARES_PER_MESSAGE) throw invalid(`too many shares (${shares.length})`);
      const parsed = shares.map((s, i) => {
        if (!s.ciphertext || s.ciphertext.length === 0 || s.ciphertext.length > MAX_SHARE_BYTES) throw invalid(`share ${i}: ciphertext missing or over ${MAX_SHARE_BYTES} bytes`);
        return { from: s.from, to: s.to, ciphertext: new Uint8Array(s.ciphertext) };
      });
      c.activeRound(ref(req.ref)).shares(caller.keyId, parsed);
      return ACK;
    }),
    SubmitAttestation: unary<{ ref: RoundRef__Output | null; bodyJson: string; signature: Buffer }, object>(c, "Rounds/SubmitAttestation", DEVICE_ONLY, async (req, caller) => {
      if (!req.bodyJson || req.bodyJson.length > 16 * 1024) throw invalid("attestation body missing or over 16 KiB");
      c.activeRound(ref(req.ref)).attest(caller.keyId, req.bodyJson, bytesOf(req.signature, "signature", 64));
      return ACK;
    }),
    SubmitMaskedInput: submitMaskedInput(c),
    SignSurvivors: unary<{ ref: RoundRef__Output | null; signature: Buffer }, object>(c, "Rounds/SignSurvivors", DEVICE_ONLY, async (req, caller) => {
      const round = c.activeRound(ref(req.ref));
      try {
        round.signSurvivors(caller.keyId, bytesOf(req.signature, "signature", 64));
      } catch (err) {
        // The coordinator knows the one set it showed: a signature that does not verify over it
        // is the device's own doing. Name it, and stop waiting for it in this phase.
        if (!(err instanceof SecAggError && err.code === "BAD_SIGNATURE")) throw err;
        await recordOffence(c, { deviceId: caller.keyId, runId: round.config.runId, round: round.config.round, reason: "its ConsistencyCheck signature does not verify over the survivor set it was shown" });
        if (round.phase === "consistency") round.gate?.settle(round.memberIndex(caller.keyId));
        throw err;
      }
      return ACK;
    }),
    SubmitUnmasking: submitUnmasking(c),
  };
}

function ledgerService(c: CoordinatorApi) {
  return {
    ReadLedger: streaming<{ fromSeq: string; deviceId: string }, object>(c, "Ledger/ReadLedger", async (call, path) => {
      const caller = await c.auth.authenticate(call.metadata, path, ["reviewer", "device"]);
      if (isMalformed(call.request)) throw invalid(`malformed ReadLedger message: ${call.request[MALFORMED]}`);
      const onlyDevice = caller.role === "device" ? caller.keyId : undefined;
      if (caller.role === "device" && call.request.deviceId && call.request.deviceId !== caller.keyId) {
        throw denied("a device may read only the ledger entries about itself");
      }
      const fromSeq = Number(call.request.fromSeq || 0);
      if (!Number.isSafeInteger(fromSeq) || fromSeq < 0) throw invalid("from_seq must be a non-negative integer");
      // Pages read through the ledger's index; a slow reader is waited for, never buffered without bound.
      for await (const page of c.ledgerPages(fromSeq, onlyDevice)) {
        let ok = true;
        for (const line of page) ok = call.write({ line }) && ok;
        if (!ok && !call.cancelled) await new Promise<void>((r) => { call.once("drain", () => r()); call.once("close", () => r()); });
        if (call.cancelled) return;
      }
      call.end();
    }),
    GetPolicy: unary<object, object>(c, "Ledger/GetPolicy", ["reviewer", "ml-team", "device"], async () => {
      const json = await c.policyJson();
      if (!json) throw notFound("no privacy policy is installed on this coordinator");
      return { json };
    }),
    SetPolicy: unary<{ json: string }, object>(c, "Ledger/SetPolicy", ["reviewer"], async (req) => {
      await c.installPolicy(req.json ?? "");
      return ACK;
    }),
  };
}

export function buildServices(c: CoordinatorApi): Record<string, grpc.UntypedServiceImplementation> {
  const services = { enrollment: enrollmentService(c), runControl: runControlService(c), rounds: roundsService(c), ledger: ledgerService(c) };
  return services as unknown as Record<string, grpc.UntypedServiceImplementation>;
}

/** gRPC trailing metadata from plain pairs (undefined when there are none). */
function trailersOf(pairs: Record<string, string> | undefined): grpc.Metadata | undefined {
  if (!pairs) return undefined;
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(pairs)) md.set(k, v);
  return md;
}
