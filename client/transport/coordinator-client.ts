/**
 * The device's side of the wire: typed promise wrappers over the generated gRPC clients that
 * sign every call (shared/transport/request-auth.ts). The only client module that touches
 * generated proto types.
 */
import * as grpc from "@grpc/grpc-js";
import { loadTacitProto, MAX_MESSAGE_BYTES } from "../../shared/transport/proto.ts";
import { signedMetadata, type Credentials } from "../../shared/transport/request-auth.ts";
import { pinnedCaCredentials } from "../../shared/transport/channel-credentials.ts";
import type { EnrollmentClient } from "../../shared/proto-gen/tacit/v1/Enrollment.ts";
import type { RoundsClient } from "../../shared/proto-gen/tacit/v1/Rounds.ts";
import type { RunControlClient } from "../../shared/proto-gen/tacit/v1/RunControl.ts";
import type { LedgerClient } from "../../shared/proto-gen/tacit/v1/Ledger.ts";
import type { ServerEvent__Output } from "../../shared/proto-gen/tacit/v1/ServerEvent.ts";
import type { RunStatus__Output } from "../../shared/proto-gen/tacit/v1/RunStatus.ts";

export type { ServerEvent__Output as ServerEvent, RunStatus__Output as RunStatus };

const CHANNEL_OPTIONS = {
  "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
  "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
  "grpc.keepalive_time_ms": 20_000,
};

export class RpcCallError extends Error {
  override name = "RpcCallError";
  constructor(
    readonly code: grpc.status,
    readonly method: string,
    message: string,
  ) {
    super(`${method}: ${message}`);
  }
}

function call<Req, Res>(client: grpc.Client, name: string, method: string, creds: Credentials | undefined, req: Req, timeoutMs = 60_000): Promise<Res> {
  const md = creds ? signedMetadata(creds, method) : new grpc.Metadata();
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, (r: Req, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v?: Res) => void) => void>)[name]!;
    fn.call(client, req, md, { deadline: Date.now() + timeoutMs }, (err, value) => {
      if (err) reject(new RpcCallError(err.code, method, err.details || err.message));
      else resolve(value as Res);
    });
  });
}

export interface ConnectOptions {
  address: string;
  /** The coordinator's CA certificate (PEM): the only CA this client trusts. */
  caFile: string;
  credentials?: Credentials;
  /** Client interceptors on every service (tests record what leaves the laptop with one). */
  interceptors?: grpc.Interceptor[];
}

/** One connection to the coordinator with all four services. */
export class CoordinatorClient {
  readonly enrollment: EnrollmentClient;
  readonly rounds: RoundsClient;
  readonly runControl: RunControlClient;
  readonly ledgerSvc: LedgerClient;
  credentials: Credentials | undefined;

  constructor(opts: ConnectOptions) {
    const proto = loadTacitProto();
    const chan = pinnedCaCredentials(opts.caFile);
    const base = { ...CHANNEL_OPTIONS, interceptors: opts.interceptors ?? [] } as grpc.ClientOptions;
    this.enrollment = new proto.tacit.v1.Enrollment(opts.address, chan, base);
    // Share one channel for the other services.
    const channelOverride = this.enrollment.getChannel();
    const shared = { ...base, channelOverride } as grpc.ClientOptions;
    this.rounds = new proto.tacit.v1.Rounds(opts.address, chan, shared);
    this.runControl = new proto.tacit.v1.RunControl(opts.address, chan, shared);
    this.ledgerSvc = new proto.tacit.v1.Ledger(opts.address, chan, shared);
    this.credentials = opts.credentials;
  }

  unary<Req, Res>(service: "Enrollment" | "Rounds" | "RunControl" | "Ledger", name: string, req: Req, timeoutMs?: number): Promise<Res> {
    const client = { Enrollment: this.enrollment, Rounds: this.rounds, RunControl: this.runControl, Ledger: this.ledgerSvc }[service];
    return call<Req, Res>(client, name, `/tacit.v1.${service}/${name}`, this.credentials, req, timeoutMs);
  }

  subscribe(eligible: boolean, backend: string): grpc.ClientReadableStream<ServerEvent__Output> {
    if (!this.credentials) throw new Error("subscribe needs device credentials");
    return this.rounds.Subscribe({ eligible, backend }, signedMetadata(this.credentials, "/tacit.v1.Rounds/Subscribe"));
  }

  watchRun(runId: string): grpc.ClientReadableStream<RunStatus__Output> {
    if (!this.credentials) throw new Error("watch needs ML-team credentials");
    return this.runControl.WatchRun({ runId }, signedMetadata(this.credentials, "/tacit.v1.RunControl/WatchRun"));
  }

  readLedger(fromSeq: number, deviceId = ""): Promise<string[]> {
    if (!this.credentials) throw new Error("reading the ledger needs credentials");
    const stream = this.ledgerSvc.ReadLedger({ fromSeq: String(fromSeq), deviceId }, signedMetadata(this.credentials, "/tacit.v1.Ledger/ReadLedger"));
    return new Promise((resolve, reject) => {
      const lines: string[] = [];
      stream.on("data", (l: { line: string }) => lines.push(l.line));
      stream.on("error", (e: grpc.ServiceError) => reject(new RpcCallError(e.code, "/tacit.v1.Ledger/ReadLedger", e.details || e.message)));
      stream.on("end", () => resolve(lines));
    });
  }

  close(): void {
    this.enrollment.close();
  }
}
