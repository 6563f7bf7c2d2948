/**
 * Test support: a device that subscribes and then never reads (I6). It speaks HTTP/2 itself,
 * with a stream window of zero, so the coordinator can send it nothing: every message written
 * to its Subscribe stream stays queued on the coordinator's side, as the red team's sleepers did.
 */
import { connect, type ClientHttp2Session } from "node:http2";
import { readFileSync } from "node:fs";
import { loadTacitProto } from "../../shared/transport/proto.ts";
import { signedMetadata, type Credentials } from "../../shared/transport/request-auth.ts";

const PATH = "/tacit.v1.Rounds/Subscribe";

export async function sleeperSubscriber(o: { address: string; caFile: string; credentials: Credentials }): Promise<{ close: () => void; session: ClientHttp2Session; closed: () => boolean }> {
  const session = connect(`https://${o.address}`, { ca: readFileSync(o.caFile), minVersion: "TLSv1.3", settings: { initialWindowSize: 0 } });
  await new Promise<void>((resolve, reject) => {
    session.once("connect", () => resolve());
    session.once("error", reject);
  });
  session.on("error", () => undefined);
  let closed = false;
  session.once("close", () => (closed = true));
  const headers: Record<string, string> = { ":method": "POST", ":path": PATH, "content-type": "application/grpc", te: "trailers" };
  for (const [k, v] of Object.entries(signedMetadata(o.credentials, PATH).getMap())) headers[k] = String(v);
  const req = session.request(headers);
  req.on("error", () => undefined);
  const body = loadTacitProto().tacit.v1.Rounds.service.Subscribe.requestSerialize({ eligible: true, backend: "test" });
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  req.end(frame);
  // No 'data' listener and no read: nothing is consumed, so no window is ever granted.
  return { session, close: () => session.destroy(), closed: () => closed };
}
