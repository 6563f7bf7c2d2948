/**
 * DurableStore on an S3-compatible object store (design note §3.2): `s3://bucket/prefix`.
 *
 * putIfAbsent is one PutObject with `If-None-Match: *`: the server writes the object only if no
 * object has that key, atomically, and answers 412 Precondition Failed otherwise — the write lost,
 * exactly as link() failing with EEXIST on a directory. A 409 ConditionalRequestConflict (another
 * conditional write of the key was in flight) is retried until the server decides one way or
 * the other. An object is visible whole or not at all, and S3 reads after a write are strongly
 * consistent, so a reader sees the winner's bytes.
 *
 * A server that ignores `If-None-Match` would let two coordinators both "win" a commit:
 * `probe()` writes one key twice and refuses the store unless the second write is refused.
 *
 * Where it connects (env): TACIT_S3_ENDPOINT (else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL; unset:
 * AWS itself), AWS_REGION / AWS_DEFAULT_REGION (default us-east-1), TACIT_S3_FORCE_PATH_STYLE
 * (default: on when an endpoint is set, as most S3-compatible servers want), and the credentials
 * the AWS SDK finds itself: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN,
 * AWS_PROFILE and ~/.aws, or an instance role.
 */
import { randomBytes } from "node:crypto";
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, S3ServiceException } from "@aws-sdk/client-s3";
import { checkKey, type DurableStore } from "./durable-store.ts";

export class S3StoreError extends Error {
  override name = "S3StoreError";
}

export interface S3Location {
  bucket: string;
  /** Key prefix inside the bucket: "" or segments ending with "/". */
  prefix: string;
  endpoint?: string;
  region: string;
  forcePathStyle: boolean;
  /** Explicit credentials (tests); unset: the AWS SDK's own chain (env, profile, role). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/** Bucket names per S3's rules (3–63 of a-z 0-9 . -, starting and ending with a letter or digit). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Reads `s3://bucket/prefix` and the env vars above into a location; throws S3StoreError. */
export function s3LocationFromUrl(url: URL, env: NodeJS.ProcessEnv = process.env): S3Location {
  const bucket = url.hostname;
  if (!BUCKET.test(bucket)) throw new S3StoreError(`store URL ${url.href}: ${JSON.stringify(bucket)} is not an S3 bucket name (expected s3://bucket/prefix)`);
  if (url.username || url.password || url.port || url.search || url.hash) {
    throw new S3StoreError(`store URL ${url.href}: only s3://bucket/prefix is accepted; the endpoint and credentials come from TACIT_S3_ENDPOINT and the AWS_* variables`);
  }
  const path = decodeURIComponent(url.pathname).replace(/^\/+|\/+$/g, "");
  if (path) checkKey(path);
  const endpoint = env.TACIT_S3_ENDPOINT || env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  if (endpoint && !/^https?:\/\/[^/]+\/?$/.test(endpoint)) throw new S3StoreError(`TACIT_S3_ENDPOINT ${JSON.stringify(endpoint)} is not an http(s)://host[:port] URL`);
  const pathStyle = env.TACIT_S3_FORCE_PATH_STYLE;
  if (pathStyle !== undefined && pathStyle !== "" && !["0", "1", "true", "false"].includes(pathStyle)) {
    throw new S3StoreError(`TACIT_S3_FORCE_PATH_STYLE=${pathStyle}: expected 1 or 0`);
  }
  const keyId = env.AWS_ACCESS_KEY_ID;
  const secret = env.AWS_SECRET_ACCESS_KEY;
  return {
    bucket,
    prefix: path ? `${path}/` : "",
    ...(endpoint ? { endpoint } : {}),
    // Keys given in `env` are used as given; otherwise the SDK's own chain looks (profile, role).
    ...(keyId && secret ? { credentials: { accessKeyId: keyId, secretAccessKey: secret, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) } } : {}),
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || "us-east-1",
    forcePathStyle: pathStyle ? pathStyle === "1" || pathStyle === "true" : endpoint !== undefined,
  };
}

const statusOf = (err: unknown): number | undefined => (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
const codeOf = (err: unknown): string => (err instanceof S3ServiceException ? err.name : ((err as { name?: string; code?: string }).code ?? (err as Error).name ?? "Error"));

export class S3Store implements DurableStore {
  readonly url: string;
  readonly localRoot = undefined;
  private readonly client: S3Client;

  constructor(readonly location: S3Location) {
    this.url = `s3://${location.bucket}/${location.prefix}`;
    this.client = new S3Client({
      region: location.region,
      forcePathStyle: location.forcePathStyle,
      ...(location.endpoint ? { endpoint: location.endpoint } : {}),
      ...(location.credentials ? { credentials: location.credentials } : {}),
      // A store that does not answer must fail the operation, not hang the round.
      requestHandler: { connectionTimeout: 5_000, requestTimeout: 30_000 },
      maxAttempts: 4,
    });
  }

  private objectKey(key: string): string {
    checkKey(key);
    return this.location.prefix + key;
  }

  /** An error naming the store, the operation, the key and what the server said. */
  private fail(op: string, key: string, err: unknown): S3StoreError {
    const status = statusOf(err);
    const where = this.location.endpoint ? ` at ${this.location.endpoint}` : "";
    let hint = "";
    if (codeOf(err) === "NoSuchBucket") hint = `: bucket ${this.location.bucket} does not exist${where}`;
    else if (status === 403 || /AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch/.test(codeOf(err))) hint = ": access denied (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the role's policy)";
    else if (codeOf(err) === "CredentialsProviderError") hint = ": no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or give the machine a role)";
    else if (/ECONNREFUSED|ENOTFOUND|ETIMEDOUT|TimeoutError/.test(`${codeOf(err)} ${(err as Error).message}`)) hint = `: the S3 endpoint${where || " (AWS)"} could not be reached`;
    return new S3StoreError(`store ${this.url}: ${op} ${key} failed${hint} (${codeOf(err)}${status ? ` ${status}` : ""}: ${(err as Error).message})`, { cause: err });
  }

  async putIfAbsent(key: string, bytes: Uint8Array): Promise<boolean> {
    const Key = this.objectKey(key);
    for (let conflict = 0; ; conflict++) {
      try {
        await this.client.send(new PutObjectCommand({ Bucket: this.location.bucket, Key, Body: bytes, IfNoneMatch: "*", ContentLength: bytes.length }));
        return true;
      } catch (err) {
        if (statusOf(err) === 412 || codeOf(err) === "PreconditionFailed") return false;
        // Another conditional PUT of this key was in flight; S3 asks the caller to retry.
        if ((statusOf(err) === 409 || codeOf(err) === "ConditionalRequestConflict") && conflict < 20) {
          await new Promise((r) => setTimeout(r, 20 + Math.floor(Math.random() * 50 * (conflict + 1))));
          continue;
        }
        throw this.fail("PUT", key, err);
      }
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    const Key = this.objectKey(key);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.location.bucket, Key }));
      if (!out.Body) return Buffer.alloc(0);
      return Buffer.from(await out.Body.transformToByteArray());
    } catch (err) {
      if (codeOf(err) === "NoSuchKey" || (statusOf(err) === 404 && codeOf(err) !== "NoSuchBucket")) return undefined;
      throw this.fail("GET", key, err);
    }
  }

  async list(prefix: string): Promise<string[]> {
    // The same keys the directory store would list: whole valid keys under the prefix.
    const cut = prefix.lastIndexOf("/");
    if (cut > 0) checkKey(prefix.slice(0, cut));
    const out: string[] = [];
    let ContinuationToken: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: this.location.bucket, Prefix: this.location.prefix + prefix, ...(ContinuationToken ? { ContinuationToken } : {}) }));
      } catch (err) {
        throw this.fail("LIST", prefix || "(all keys)", err);
      }
      for (const o of page.Contents ?? []) {
        const key = o.Key?.slice(this.location.prefix.length);
        if (key && isStoreKey(key)) out.push(key);
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
    return out.sort();
  }

  /**
   * Proves the server refuses a second conditional write of one key, so put-if-absent really
   * fences stale coordinators; also finds a missing bucket or bad credentials before serving.
   * Throws S3StoreError otherwise. Leaves nothing behind when delete is allowed.
   */
  async probe(): Promise<void> {
    const key = `probes/conditional-write-${Date.now()}-${randomBytes(6).toString("hex")}`;
    const first = await this.putIfAbsent(key, Buffer.from("first\n"));
    const second = first && (await this.putIfAbsent(key, Buffer.from("second\n")));
    const stored = (await this.get(key))?.toString("utf8");
    await this.client.send(new DeleteObjectCommand({ Bucket: this.location.bucket, Key: this.location.prefix + key })).catch(() => undefined);
    if (!first) throw new S3StoreError(`store ${this.url}: a fresh probe key ${key} was reported as existing; the server's conditional writes cannot be trusted`);
    if (second || stored !== "first\n") {
      throw new S3StoreError(
        `store ${this.url}: the S3 server${this.location.endpoint ? ` at ${this.location.endpoint}` : ""} ignores If-None-Match: * (a second PUT of one key succeeded), ` +
          "so a stale coordinator could overwrite its successor's commit. Use a server with conditional writes (AWS S3 since 2024, or a recent S3-compatible server) or a shared directory (file://).",
      );
    }
  }

  close(): void {
    this.client.destroy();
  }
}

function isStoreKey(key: string): boolean {
  try {
    checkKey(key);
    return true;
  } catch {
    return false;
  }
}
