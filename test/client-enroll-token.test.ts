/**
 * I3: `tacit client enroll` takes its single-use token from a file or from stdin, so the token
 * need not sit in argv (where `ps` shows it to every local user). `--token TOKEN` still works
 * and warns on stderr.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { TestCluster } from "./support/cluster.ts";
import { runTacit } from "./support/run-tacit.ts";
import { ARGV_TOKEN_WARNING, readEnrollmentToken } from "../cli/enroll-token.ts";

const noStdin = Readable.from([]);

describe("readEnrollmentToken (I3)", () => {
  it("reads --token-file and --token - (stdin) without a warning, and warns for a token in argv", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tacit-token-"));
    const file = join(dir, "token");
    writeFileSync(file, "tt_from_file\n", { mode: 0o600 });
    const warnings: string[] = [];
    const warn = (l: string) => warnings.push(l);
    expect(await readEnrollmentToken({ tokenFile: file }, { stdin: noStdin, warn })).toBe("tt_from_file");
    expect(await readEnrollmentToken({ token: "-" }, { stdin: Readable.from([Buffer.from("tt_from_"), Buffer.from("stdin\n")]), warn })).toBe("tt_from_stdin");
    expect(warnings).toEqual([]);
    expect(await readEnrollmentToken({ token: "tt_in_argv" }, { stdin: noStdin, warn })).toBe("tt_in_argv");
    expect(warnings).toEqual([ARGV_TOKEN_WARNING]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses no token, both sources, an empty stdin or file, and an unreadable file", async () => {
    const io = { stdin: noStdin, warn: () => {} };
    await expect(readEnrollmentToken({}, io)).rejects.toThrow(/--token-file FILE, or --token -/);
    await expect(readEnrollmentToken({ token: "x", tokenFile: "/nonexistent" }, io)).rejects.toThrow(/not both/);
    await expect(readEnrollmentToken({ token: "-" }, { stdin: Readable.from(["\n\n"]), warn: () => {} })).rejects.toThrow(/no enrollment token in standard input/);
    await expect(readEnrollmentToken({ tokenFile: "/nonexistent/token" }, io)).rejects.toThrow(/cannot read the token file/);
  });
});

describe("tacit client enroll: token from a file or stdin (I3)", () => {
  let cluster: TestCluster;
  let xdg: string;

  beforeAll(async () => {
    cluster = await TestCluster.start();
    xdg = mkdtempSync(join(tmpdir(), "tacit-xdg-"));
  }, 60_000);

  afterAll(async () => {
    await cluster?.stop();
    if (xdg) rmSync(xdg, { recursive: true, force: true });
  });

  const newToken = async (label: string) => (await cluster.admin.unary<object, { token: string }>("Enrollment", "CreateToken", { ttlSeconds: 600, label })).token;
  const enroll = (laptop: string, tokenArgs: string[], input?: string) =>
    runTacit(["client", "enroll", "--coordinator", cluster.address, "--ca", cluster.caFile, "--json", ...tokenArgs], {
      env: { XDG_DATA_HOME: join(xdg, laptop) },
      ...(input !== undefined ? { input } : {}),
    });

  it("enrolls with --token-file and with --token - (no token in argv, no warning); --token TOKEN enrolls and warns", async () => {
    const fromFile = await newToken("file");
    const tokenFile = join(xdg, "token.txt");
    writeFileSync(tokenFile, fromFile + "\n", { mode: 0o600 });
    const fromStdin = await newToken("stdin");
    const inArgv = await newToken("argv");
    const [a, b, c] = await Promise.all([
      enroll("laptop-file", ["--token-file", tokenFile]),
      enroll("laptop-stdin", ["--token", "-"], fromStdin + "\n"),
      enroll("laptop-argv", ["--token", inArgv]),
    ]);
    for (const r of [a, b, c]) expect(r.status, r.stderr).toBe(0);
    const ids = [a, b, c].map((r) => (JSON.parse(r.stdout) as { deviceId: string }).deviceId);
    expect(new Set(ids).size).toBe(3);
    expect(a.stderr).not.toMatch(/warning/);
    expect(b.stderr).not.toMatch(/warning/);
    expect(c.stderr).toContain("--token TOKEN puts the token in argv");
    // The file's token was used up: enrolling another laptop with it is refused.
    const again = await enroll("laptop-again", ["--token-file", tokenFile]);
    expect(again.status).not.toBe(0);
  }, 240_000);
});
