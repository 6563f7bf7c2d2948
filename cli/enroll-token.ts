/**
 * Where `tacit client enroll` reads its single-use token from (I3). A token given in argv is
 * visible to every local user (`ps`, /proc/PID/cmdline) while the command runs, so
 * `--token-file FILE` and `--token -` (standard input) keep it out of argv. `--token TOKEN`
 * still works, with a warning on stderr.
 */
import { readFileSync } from "node:fs";
import { CliError } from "./errors.ts";

export const ARGV_TOKEN_WARNING =
  "tacit: warning: --token TOKEN puts the token in argv, where other users on this machine can read it (ps, /proc); prefer --token-file FILE or --token - (stdin)";

export interface TokenSource {
  token?: string;
  tokenFile?: string;
}

export interface TokenIo {
  stdin: AsyncIterable<Buffer | string>;
  warn: (line: string) => void;
}

async function readAll(stream: AsyncIterable<Buffer | string>, limit: number): Promise<string> {
  let text = "";
  for await (const chunk of stream) {
    text += typeof chunk === "string" ? chunk : chunk.toString("utf8");
    if (text.length > limit) throw new CliError("the enrollment token on stdin is too long");
  }
  return text;
}

/** The token's first line, trimmed; an empty one is an error naming where it came from. */
function firstLine(text: string, from: string): string {
  const token = (text.split(/\r?\n/).find((l) => l.trim() !== "") ?? "").trim();
  if (!token) throw new CliError(`no enrollment token in ${from}`);
  if (token.length > 200) throw new CliError(`the enrollment token in ${from} is too long`);
  return token;
}

/** Exactly one of --token and --token-file; `--token -` reads standard input. */
export async function readEnrollmentToken(o: TokenSource, io: TokenIo): Promise<string> {
  if (o.token !== undefined && o.tokenFile !== undefined) throw new CliError("give either --token or --token-file, not both");
  if (o.tokenFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(o.tokenFile, "utf8");
    } catch {
      throw new CliError(`cannot read the token file ${o.tokenFile}`);
    }
    return firstLine(text, o.tokenFile);
  }
  if (o.token === undefined) throw new CliError("an enrollment token is required: --token-file FILE, or --token - to read it from stdin");
  if (o.token === "-") return firstLine(await readAll(io.stdin, 4096), "standard input");
  io.warn(ARGV_TOKEN_WARNING);
  return firstLine(o.token, "--token");
}
