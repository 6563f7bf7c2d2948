/**
 * The client side of the daemon's suggestion socket, as an agent on the laptop uses it: request
 * lines out, response lines back, on one connection.
 */
import { connect } from "node:net";

/** Sends newline-delimited request lines on one connection; resolves with the response lines. */
export function askSuggestSocket(path: string, payload: string, expected: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let buf = "";
    s.setEncoding("utf8");
    s.on("data", (d: string) => {
      buf += d;
      const lines = buf.split("\n").filter((l) => l.length > 0);
      if (lines.length >= expected) {
        s.end();
        resolve(lines);
      }
    });
    s.on("end", () => resolve(buf.split("\n").filter((l) => l.length > 0)));
    s.on("error", reject);
    s.write(payload);
  });
}
