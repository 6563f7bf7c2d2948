/**
 * gRPC service implementations. Each handler authenticates the caller and checks its role
 * (see the RPC × role table in README.md), validates the message, then calls domain code.
 * Errors become statuses in one place (rpc-error.ts).
 */
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import { fromData, ModularError } from "../../shared/modular/index.ts";
import { aggregationLength } from "../../shared/run/index.ts";
import { SecAggError } from "../../shared/secagg/index.ts";
import type { ServerEvent } from "../../shared/proto-gen/tacit/v1/ServerEvent.ts";
import type { RoundRef__Output } from "../../shared/proto-gen/tacit/v1/RoundRef.ts";
import type { Authenticator } from "./authenticator.ts";
import type { Role } from "../state/state-dir.ts";
import { invalid, notFound, RpcError, toServiceError } from "./rpc-error.ts";
import { isMalformed, MALFORMED } from "./harden-service.ts";
import { AUTH_KEY_ID } from "../../shared/transport/request-auth.ts";
import { keyFingerprint, type DeviceRegistry } from "../state/registry.ts";
import { isQuarantined, malformedShareReason } from "../state/offences.ts";
import type { PrivacyLedger } from "../ledger/privacy-ledger.ts";
import type { RunStore } from "../runs/run-store.ts";
import type { DeviceHub } from "../rounds/device-hub.ts";
import type { ActiveRound } from "../rounds/active-round.ts";
import type { Ed25519KeyPair } from "../../shared/crypto/index.ts";

/** What the RPC handlers need from the coordinator (implemented by coordinator.ts). */
export interface CoordinatorApi {
  auth: Authenticator;
  log: Logger;
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
  policyJson(): string | undefined;
  installPolicy(json: string): Promise<void>;
}

type Unary<Req, Res> = (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => void;

const MAX_SHARES_PER_MESSAGE = 100_000;
const MAX_SHARE_BYTES = 4096;

function unary<Req, Res>(
  auth: Authenticator,
  log: Logger,
  method: string,
  roles: readonly Role[] | "token",
  fn: (req: Req, caller: { role: Role | "anonymous"; keyId: string }) => Promise<Res>,
): Unary<Req, Res> {
  return (call, callback) => {
    (async () => {
      if (roles === "token" && call.metadata.get(AUTH_KEY_ID).length > 0) {
        // The token is Enroll's only credential (README's RPC × role table): an enrolled device,
        // an operator or a reviewer key has no business enrolling identities.
        throw new RpcError(grpc.status.PERMISSION_DENIED, `${method.split("/").pop()} is authorized by the enrollment token alone: call it without request credentials`);
      }
      const caller = roles === "token" ? { role: "anonymous" as const, keyId: "" } : await auth.authenticate(call.metadata, method, roles);
      if (isMalformed(call.request)) throw invalid(`malformed ${method.split("/").pop()} message: ${call.request[MALFORMED]}`);
      return fn(call.request, caller);
    })().then(
      (res) => callback(null, res),
      (err: unknown) => {
        if (err instanceof SecAggError) err = new RpcError(grpc.status.INVALID_ARGUMENT, `secure aggregation refused the message: ${err.message}`);
        if (err instanceof ModularError) err = invalid(err.message);
        callback(toServiceError(err, (m, e) => log.error({ err: String(e), method }, m)));
      },
    );
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

export function buildServices(c: CoordinatorApi): Record<string, grpc.UntypedServiceImplementation> {
  const { auth, log } = c;
  const svc = "/tacit.v1.";
  const deviceOnly = ["device"] as const;
  const ack = { ok: true, detail: "" };

  const enrollment = {
    // Only the admin mints identities: the ML team reads the model, so devices of its own in a
    // cohort would surround the honest ones (finding M3). Each token and enrollment is a ledger entry.
    CreateToken: unary<{ ttlSeconds: number; label: string }, object>(auth, log, `${svc}Enrollment/CreateToken`, ["admin"], async (req, caller) => {
      const ttl = req.ttlSeconds || 86_400;
      if (ttl > 30 * 86_400) throw invalid("ttl_seconds must be at most 30 days");
      const t = await c.registry.createToken(ttl, (req.label ?? "").slice(0, 100), caller.keyId);
      await c.ledger.enrollmentToken(t.record);
      return { token: t.token, expiresAtMs: String(t.record.expiresAt) };
    }),
    Enroll: unary<{ token: string; identityPublicKey: Buffer; deviceLabel: string }, object>(auth, log, `${svc}Enrollment/Enroll`, "token", async (req) => {
      if (!req.token) throw new RpcError(grpc.status.UNAUTHENTICATED, "Enroll needs a single-use enrollment token (`tacit coordinator token create`)");
      if (req.token.length > 200) throw invalid("malformed enrollment token");
      const key = bytesOf(req.identityPublicKey, "identity_public_key", 32);
      const { device, token } = await c.registry.enroll(req.token, key, req.deviceLabel ?? "");
      await c.ledger.enrollment({ deviceId: device.deviceId, keyFingerprint: keyFingerprint(key), label: device.label, creator: token.creator, tokenId: token.tokenId, tokenLabel: token.label });
      return { deviceId: device.deviceId, coordinatorPublicKey: Buffer.from(c.signingKey.publicRaw) };
    }),
    Deregister: unary<object, object>(auth, log, `${svc}Enrollment/Deregister`, deviceOnly, async (_req, caller) => {
      await c.registry.remove(caller.keyId);
      auth.forgetDevice(caller.keyId);
      c.hub.remove(caller.keyId); // ends its Subscribe stream: no longer connected, never sampled
      return {};
    }),
  };

  const runControl = {
    LaunchRun: unary<{ specJson: string; requestSignature: Buffer }, object>(auth, log, `${svc}RunControl/LaunchRun`, ["ml-team"], async (req, caller) => {
      if (!req.specJson || req.specJson.length > 64 * 1024) throw invalid("spec_json missing or larger than 64 KiB");
      const run = await c.launchRun(req.specJson, new Uint8Array(req.requestSignature ?? Buffer.alloc(0)), caller.keyId);
      return c.runStatus(run.runId);
    }),
    GetRun: unary<{ runId: string }, object>(auth, log, `${svc}RunControl/GetRun`, ["ml-team", "reviewer"], async (req) => c.runStatus(req.runId)),
    ListRuns: unary<object, object>(auth, log, `${svc}RunControl/ListRuns`, ["ml-team", "reviewer"], async () => ({
      // A run id without a run the ledger vouches for (planted in Redis) is left out, not an error.
      runs: (await Promise.all((await c.runs.list()).map((id) => c.runStatus(id).catch(() => undefined)))).filter((r) => r !== undefined),
    })),
    CancelRun: unary<{ runId: string }, object>(auth, log, `${svc}RunControl/CancelRun`, ["ml-team"], async (req) => {
      await c.cancelRun(req.runId);
      return c.runStatus(req.runId);
    }),
    WatchRun: (call: grpc.ServerWritableStream<{ runId: string }, object>) => {
      (async () => {
        await auth.authenticate(call.metadata, `${svc}RunControl/WatchRun`, ["ml-team", "reviewer"]);
        if (isMalformed(call.request)) throw invalid(`malformed WatchRun message: ${call.request[MALFORMED]}`);
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
      })().catch((err: unknown) => call.emit("error", toServiceError(err)));
    },
  };

  const rounds = {
    Subscribe: (call: grpc.ServerWritableStream<{ eligible: boolean; backend: string }, ServerEvent>) => {
      (async () => {
        const caller = await auth.authenticate(call.metadata, `${svc}Rounds/Subscribe`, deviceOnly);
        if (isMalformed(call.request)) throw invalid(`malformed Subscribe message: ${call.request[MALFORMED]}`);
        if (isQuarantined(c.ledger, caller.keyId)) {
          throw new RpcError(grpc.status.PERMISSION_DENIED, `device ${caller.keyId} is quarantined after ${c.ledger.offences(caller.keyId)} offences recorded in the ledger`);
        }
        // A Buffer is an event serialized once for the whole cohort (harden-service passes it through).
        const stream = { write: (ev: ServerEvent | Buffer) => call.write(ev as ServerEvent), end: () => call.end() };
        c.hub.connect(caller.keyId, stream, call.request.eligible !== false);
        // An immediate heartbeat tells the device it is connected (and flushes headers).
        call.write({ heartbeat: { timeMs: String(Date.now()) } });
        const heartbeat = setInterval(() => call.write({ heartbeat: { timeMs: String(Date.now()) } }), 15_000);
        const gone = (): void => {
          clearInterval(heartbeat);
          c.hub.disconnect(caller.keyId, stream);
        };
        call.on("cancelled", gone);
        call.on("close", gone);
        call.on("error", gone);
      })().catch((err: unknown) => call.emit("error", toServiceError(err)));
    },
    Decline: unary<{ ref: RoundRef__Output | null; reason: string }, object>(auth, log, `${svc}Rounds/Decline`, deviceOnly, async (req, caller) => {
      c.activeRound(ref(req.ref)).decline(caller.keyId, req.reason ?? "");
      return ack;
    }),
    AdvertiseKeys: unary<{ ref: RoundRef__Output | null; keys: { index: number; cPk: Buffer; sPk: Buffer; signature: Buffer } | null }, object>(
      auth, log, `${svc}Rounds/AdvertiseKeys`, deviceOnly, async (req, caller) => {
        const k = req.keys;
        if (!k) throw invalid("missing keys");
        c.activeRound(ref(req.ref)).advertise(caller.keyId, {
          index: k.index,
          cPk: bytesOf(k.cPk, "c_pk", 32),
          sPk: bytesOf(k.sPk, "s_pk", 32),
          signature: bytesOf(k.signature, "signature", 64),
        });
        return ack;
      }),
    ShareKeys: unary<{ ref: RoundRef__Output | null; shares: { from: number; to: number; ciphertext: Buffer }[] }, object>(
      auth, log, `${svc}Rounds/ShareKeys`, deviceOnly, async (req, caller) => {
        const shares = req.shares ?? [];
        if (shares.length > MAX_SHARES_PER_MESSAGE) throw invalid(`too many shares (${shares.length})`);
        const parsed = shares.map((s, i) => {
          if (!s.ciphertext || s.ciphertext.length === 0 || s.ciphertext.length > MAX_SHARE_BYTES) throw invalid(`share ${i}: ciphertext missing or over ${MAX_SHARE_BYTES} bytes`);
          return { from: s.from, to: s.to, ciphertext: new Uint8Array(s.ciphertext) };
        });
        c.activeRound(ref(req.ref)).shares(caller.keyId, parsed);
        return ack;
      }),
    SubmitAttestation: unary<{ ref: RoundRef__Output | null; bodyJson: string; signature: Buffer }, object>(
      auth, log, `${svc}Rounds/SubmitAttestation`, deviceOnly, async (req, caller) => {
        if (!req.bodyJson || req.bodyJson.length > 16 * 1024) throw invalid("attestation body missing or over 16 KiB");
        c.activeRound(ref(req.ref)).attest(caller.keyId, req.bodyJson, bytesOf(req.signature, "signature", 64));
        return ack;
      }),
    SubmitMaskedInput: unary<{ ref: RoundRef__Output | null; bits: number; length: number; data: Buffer }, object>(
      auth, log, `${svc}Rounds/SubmitMaskedInput`, deviceOnly, async (req, caller) => {
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
        return ack;
      }),
    SignSurvivors: unary<{ ref: RoundRef__Output | null; signature: Buffer }, object>(
      auth, log, `${svc}Rounds/SignSurvivors`, deviceOnly, async (req, caller) => {
        c.activeRound(ref(req.ref)).signSurvivors(caller.keyId, bytesOf(req.signature, "signature", 64));
        return ack;
      }),
    SubmitUnmasking: unary<{ ref: RoundRef__Output | null; selfMaskShares: { owner: number; share: Buffer }[]; secretKeyShares: { owner: number; share: Buffer }[] }, object>(
      auth, log, `${svc}Rounds/SubmitUnmasking`, deviceOnly, async (req, caller) => {
        const round = c.activeRound(ref(req.ref));
        const conv = (xs: { owner: number; share: Buffer }[] | undefined) =>
          (xs ?? []).map((s) => ({ owner: s.owner, share: bytesOf(s.share, "share") }));
        const selfMaskShares = conv(req.selfMaskShares);
        const secretKeyShares = conv(req.secretKeyShares);
        // A share that is not a field element would abort the whole round at reconstruction:
        // refuse it here (the round goes on without this device), name the sender, and
        // quarantine a repeat offender.
        const bad = malformedShareReason([...selfMaskShares, ...secretKeyShares]);
        if (bad) {
          await c.ledger.offence({ deviceId: caller.keyId, runId: round.config.runId, round: round.config.round, reason: bad });
          if (isQuarantined(c.ledger, caller.keyId)) c.hub.remove(caller.keyId);
          // Its answer will not come: the phase need not wait for it until the deadline.
          if (round.phase === "unmask") round.gate?.settle(round.memberIndex(caller.keyId));
          throw invalid(`${bad}: this device is named in the ledger`);
        }
        round.unmask(caller.keyId, {
          from: round.memberIndex(caller.keyId),
          selfMaskShares,
          secretKeyShares,
        });
        return ack;
      }),
  };

  const ledger = {
    ReadLedger: (call: grpc.ServerWritableStream<{ fromSeq: string; deviceId: string }, object>) => {
      (async () => {
        const caller = await auth.authenticate(call.metadata, `${svc}Ledger/ReadLedger`, ["reviewer", "device"]);
        if (isMalformed(call.request)) throw invalid(`malformed ReadLedger message: ${call.request[MALFORMED]}`);
        const onlyDevice = caller.role === "device" ? caller.keyId : undefined;
        if (caller.role === "device" && call.request.deviceId && call.request.deviceId !== caller.keyId) {
          throw new RpcError(grpc.status.PERMISSION_DENIED, "a device may read only the ledger entries about itself");
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
      })().catch((err: unknown) => call.emit("error", toServiceError(err)));
    },
    GetPolicy: unary<object, object>(auth, log, `${svc}Ledger/GetPolicy`, ["reviewer", "ml-team", "device"], async () => {
      const json = c.policyJson();
      if (!json) throw notFound("no privacy policy is installed on this coordinator");
      return { json };
    }),
    SetPolicy: unary<{ json: string }, object>(auth, log, `${svc}Ledger/SetPolicy`, ["reviewer"], async (req) => {
      await c.installPolicy(req.json ?? "");
      return ack;
    }),
  };

  return { enrollment, runControl, rounds, ledger } as unknown as Record<string, grpc.UntypedServiceImplementation>;
}
