/**
 * Malformed CLI input (security findings 2026-11-30, "CLI input"): every case the red team
 * threw at the CLI ended in one `tacit: …` line and a non-zero exit, never a stack trace and
 * never a launched run. These tests pin that, and the fixes that came with it: a UTF-8 BOM
 * before a valid spec or policy body is accepted, `--day` must be a real calendar day, and a
 * policy naming an unknown signal kind is refused.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readRunSpecFile } from "../cli/commands/run.ts";
import { parseDay } from "../cli/commands/client.ts";
import { parseNumber, reportError } from "../cli/errors.ts";
import { runTacit } from "./support/run-tacit.ts";
import { canonicalJson, generateEd25519, privateKeyToPem, rawPublicKey, signBytes } from "../shared/crypto/index.ts";
import { PolicyError, policyBodySchema, signPolicy, verifyPolicy } from "../shared/dp/index.ts";
import { SIGNAL_KINDS } from "../shared/run/index.ts";

const BOM = "\uFEFF";
/** A stack frame line, as Node prints them: the CLI must never show one. */
const STACK_FRAME = /\n\s+at /;
/** The children's budget: they refuse before any network, so seconds suffice even on a loaded host. */
const CLI_TIMEOUT_MS = 60_000;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tacit-cli-input-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** What the CLI prints (stderr) for an error, through its one error boundary, cli/errors.ts reportError. */
function printed(err: unknown): { text: string; exitCode: number } {
  let text = "";
  vi.stubEnv("TACIT_DEBUG", "");
  const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    text += String(chunk);
    return true;
  });
  try {
    return { exitCode: reportError(err), text };
  } finally {
    spy.mockRestore();
    vi.unstubAllEnvs();
  }
}

type SpecContent = string | Buffer | { dir: true } | { missing: true };

/** Writes a spec case to a fresh path: text, raw bytes, a directory, or nothing at all. */
function specPath(name: string, content: SpecContent): string {
  const p = join(dir, `spec-${name}.json`);
  if (typeof content === "string" || Buffer.isBuffer(content)) writeFileSync(p, content);
  else if ("dir" in content) mkdirSync(p);
  return p;
}

const DEEP = 200_000;

describe("run spec files: `tacit run launch --spec FILE` refuses malformed specs with one line", () => {
  // Exit 2: refused by the CLI itself (CliError); exit 1: by the shared schema (RunSpecError).
  const cases: { name: string; content: SpecContent; error: string; exit: 1 | 2 }[] = [
    { name: "invalid JSON", content: '{"name": "x",', error: "Expected double-quoted property name in JSON", exit: 2 },
    { name: "a NaN literal", content: '{"noiseMultiplier": NaN}', error: "Unexpected token 'N'", exit: 2 },
    // V8 quotes the text around the error verbatim, newlines included: still one line.
    { name: "a NaN literal in a pretty-printed file", content: '{\n  "name": "x",\n  "noiseMultiplier": NaN\n}\n', error: "Unexpected token 'N'", exit: 2 },
    { name: "1e999 (Infinity) in a numeric field", content: '{"rounds": 1e999}', error: "rounds: Number must be less than or equal to 100000", exit: 1 },
    { name: "a negative noise multiplier", content: '{"noiseMultiplier": -1}', error: "noiseMultiplier: Number must be greater than or equal to 0", exit: 1 },
    { name: "a negative δ", content: '{"delta": -1e-6}', error: "delta: Number must be greater than 0", exit: 1 },
    // The spec has no target ε (noise is set directly); the field is refused by name, whatever its value.
    { name: "a negative target ε", content: '{"targetEpsilon": -1}', error: "Unrecognized key(s) in object: 'targetEpsilon'", exit: 1 },
    { name: "a __proto__ key", content: '{"__proto__": {"polluted": true}}', error: "Unrecognized key(s) in object: '__proto__'", exit: 1 },
    { name: "a constructor key", content: '{"constructor": {"prototype": {"polluted": true}}}', error: "Unrecognized key(s) in object: 'constructor'", exit: 1 },
    { name: `${DEEP}-deep array nesting as a field value`, content: `{"rounds": ${"[".repeat(DEEP)}${"]".repeat(DEEP)}}`, error: "rounds: Expected number, received array", exit: 1 },
    { name: "a directory", content: { dir: true }, error: "EISDIR", exit: 2 },
    { name: "a missing file", content: { missing: true }, error: "ENOENT: no such file or directory", exit: 2 },
    { name: "null", content: "null", error: "must be a JSON object with the fields to set (see --print-default-spec), got null", exit: 2 },
    { name: "an array", content: "[1, 2]", error: "must be a JSON object with the fields to set (see --print-default-spec), got an array", exit: 2 },
    { name: "a number", content: "42", error: "must be a JSON object with the fields to set (see --print-default-spec), got number", exit: 2 },
    // `{}` would mean "all defaults": refused, so that an empty file never launches the default run.
    { name: "{} (all defaults)", content: "{}", error: "is empty: name at least the fields you mean to set", exit: 2 },
  ];

  it.each(cases)("$name", ({ name, content, error, exit }) => {
    const path = specPath(name.replace(/\W+/g, "-"), content);
    let thrown: unknown;
    try {
      readRunSpecFile(path);
    } catch (err) {
      thrown = err;
    }
    expect(thrown, "the spec was accepted").toBeDefined();
    const { text, exitCode } = printed(thrown);
    expect(text).toMatch(/^tacit: [^\n]*\n$/);
    expect(text).toContain(error);
    expect(text).not.toMatch(/unexpected|TACIT_DEBUG/);
    expect(exitCode).toBe(exit);
    // JSON.parse makes "__proto__" and "constructor" own keys: nothing reached Object.prototype.
    expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("reads a spec that starts with a UTF-8 byte-order mark as the same spec without it", () => {
    const body = JSON.stringify({ name: "bom-spec", rounds: 3, cohortSize: 10, minSurvivors: 6 });
    const withBom = readRunSpecFile(specPath("bom", Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(body)])));
    expect(readFileSync(join(dir, "spec-bom.json")).subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
    expect(withBom.spec).toMatchObject({ name: "bom-spec", rounds: 3, cohortSize: 10, minSurvivors: 6 });
    expect(withBom).toEqual(readRunSpecFile(specPath("no-bom", body)));
    // Only a leading BOM is dropped: one inside a string stays part of it (and the name pattern refuses it).
    expect(() => readRunSpecFile(specPath("inner-bom", JSON.stringify({ name: `a${BOM}b` })))).toThrow(/name: letters, digits/);
  });

  describe("through the real CLI: refused before any key is used or connection made", () => {
    let server: Server;
    let port = 0;
    let connections = 0;
    let keyFile = "";
    beforeAll(async () => {
      // A stand-in coordinator that only counts who dials it.
      server = createServer((s) => {
        connections++;
        s.destroy();
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      port = (server.address() as { port: number }).port;
      keyFile = join(dir, "ml-team-1.key");
      writeFileSync(keyFile, privateKeyToPem(generateEd25519().privateKey), { mode: 0o600 });
    });
    afterAll(async () => {
      await new Promise<void>((r) => server.close(() => r()));
    });

    it.each([
      { name: "null", content: "null", error: /^tacit: run spec \S+ must be a JSON object .* got null$/, exit: 2 },
      { name: "nan", content: '{"noiseMultiplier": NaN}', error: /^tacit: cannot read run spec \S+: Unexpected token 'N'/, exit: 2 },
      { name: "proto", content: '{"__proto__": {}}', error: /^tacit: invalid run spec: \(root\): Unrecognized key\(s\) in object: '__proto__'$/, exit: 1 },
    ])("$name", async ({ name, content, error, exit }) => {
      const spec = specPath(`cli-${name}`, content);
      const r = await runTacit(["run", "launch", "--spec", spec, "--coordinator", `127.0.0.1:${port}`, "--key", keyFile, "--state-dir", join(dir, "no-coordinator-state")], { timeoutMs: CLI_TIMEOUT_MS });
      expect(r.status).toBe(exit);
      expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(r.stderr.trimEnd()).toMatch(error);
      expect(r.stderr).not.toMatch(STACK_FRAME);
      expect(r.stdout).toBe("");
      expect(connections).toBe(0);
    });

    it("accepts a BOM-prefixed spec (it stops later, at the missing ML-team key)", async () => {
      const spec = specPath("cli-bom", `${BOM}${JSON.stringify({ name: "bom-spec" })}`);
      const keyPath = join(dir, "absent.key");
      const r = await runTacit(["run", "launch", "--spec", spec, "--coordinator", `127.0.0.1:${port}`, "--key", keyPath], { timeoutMs: CLI_TIMEOUT_MS });
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/^run spec: defaults used for model, rounds/);
      expect(r.stderr).toContain(`tacit: cannot read the ml-team key ${keyPath}: pass --key FILE --key-id ID\n`);
      expect(r.stderr).not.toMatch(/cannot read run spec/);
      expect(r.stderr).not.toMatch(STACK_FRAME);
      expect(connections).toBe(0);
    });
  });
});

// Each CLI child costs ~3 CPU-s here: one per command and kind of refusal goes through the real
// CLI below, and the other values the red team tried go through the same validator in process.
describe("numeric flags (cli/errors.ts parseNumber, behind every numeric option)", () => {
  it.each([
    { flag: "--port", raw: "abc", o: { min: 0, max: 65535, integer: true }, error: "--port must be a number, got 'abc'" },
    { flag: "--ttl", raw: "1e9", o: { min: 60, max: 2_592_000 }, error: "--ttl must be at most 2592000, got 1000000000" },
    { flag: "--steps", raw: "1e309", o: { min: 1, integer: true }, error: "--steps must be a number, got '1e309'" },
    { flag: "--steps", raw: "2.5", o: { min: 1, integer: true }, error: "--steps must be an integer, got '2.5'" },
    { flag: "--max-epsilon", raw: "NaN", o: { min: 0.01 }, error: "--max-epsilon must be a number, got 'NaN'" },
    { flag: "--delta", raw: "", o: {}, error: "--delta must be a number, got ''" },
    { flag: "--delta", raw: " ", o: {}, error: "--delta must be a number, got ' '" },
  ])("refuses $flag '$raw'", ({ flag, raw, o, error }) => {
    expect(() => parseNumber(flag, raw, o)).toThrow(error);
  });
  it("accepts values inside the bounds", () => {
    expect(parseNumber("--port", "7443", { min: 0, max: 65535, integer: true })).toBe(7443);
    expect(parseNumber("--max-epsilon", "0.01", { min: 0.01 })).toBe(0.01);
    expect(parseNumber("--ttl", "2592000", { min: 60, max: 2_592_000 })).toBe(2_592_000);
  });
});

describe.concurrent("bad flags: one line and a non-zero exit, before anything starts or connects", () => {
  const cases: { name: string; args: (d: string) => string[]; error: RegExp; untouched?: (d: string) => string }[] = [
    { name: "coordinator start --port 99999", args: (d) => ["coordinator", "start", "--state-dir", join(d, "coord"), "--port", "99999"], error: /^tacit: --port must be at most 65535, got 99999$/, untouched: (d) => join(d, "coord") },
    // An empty state dir: the flag is refused before the missing address and admin key would be.
    { name: "coordinator token create --ttl -5", args: (d) => ["coordinator", "token", "create", "--state-dir", d, "--ttl", "-5"], error: /^tacit: --ttl must be at least 60, got -5$/ },
    { name: "privacy epsilon --delta NaN", args: () => ["privacy", "epsilon", "--noise-multiplier", "1", "--sample-rate", "0.01", "--steps", "100", "--delta", "NaN"], error: /^tacit: --delta must be a number, got 'NaN'$/ },
    { name: "client consent --max-epsilon -1", args: (d) => ["client", "consent", "--state-dir", join(d, "client"), "--apps", "code", "--kinds", "shortcut", "--max-epsilon", "-1", "--min-noise", "1", "--min-survivors", "5"], error: /^tacit: --max-epsilon must be at least 0.01, got -1$/, untouched: (d) => join(d, "client", "consent.json") },
    { name: "client review --day 2026-13-45", args: (d) => ["client", "review", "--state-dir", join(d, "client"), "--day", "2026-13-45"], error: /^tacit: --day must be a calendar day as YYYY-MM-DD \(UTC\), e\.g\. 2026-11-25; got '2026-13-45'$/, untouched: (d) => join(d, "client") },
    { name: "client export --day 2026-02-30", args: (d) => ["client", "export", "--state-dir", join(d, "client"), "--out", join(d, "export.json"), "--day", "2026-02-30"], error: /^tacit: --day must be a calendar day .* got '2026-02-30'$/, untouched: (d) => join(d, "export.json") },
    { name: "client delete --day 2026-04-31", args: (d) => ["client", "delete", "--state-dir", join(d, "client"), "--day", "2026-04-31"], error: /^tacit: --day must be a calendar day .* got '2026-04-31'$/, untouched: (d) => join(d, "client") },
  ];

  it.each(cases)("$name", async ({ name, args, error, untouched }) => {
    const d = join(dir, `flags-${name.replace(/\W+/g, "-")}`);
    mkdirSync(d);
    const r = await runTacit(args(d), { timeoutMs: CLI_TIMEOUT_MS });
    expect(r.status).toBe(2);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr.trimEnd()).toMatch(error);
    expect(r.stderr).not.toMatch(STACK_FRAME);
    if (untouched) expect(existsSync(untouched(d)), `${untouched(d)} was created`).toBe(false);
  });

  it("client review --day with a real day reads that day", async () => {
    const d = join(dir, "flags-review-ok");
    const r = await runTacit(["client", "review", "--state-dir", d, "--day", "2028-02-29"], { timeoutMs: CLI_TIMEOUT_MS });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("0 actions stored on 2028-02-29\n");
    expect(r.status).toBe(0);
  });
});

describe("--day (client review, export, delete): a real calendar day", () => {
  it.each(["2026-11-25", "2026-12-31", "2026-01-01", "2028-02-29", "2000-02-29", "1970-01-01"])("accepts %s", (day) => {
    expect(parseDay(day)).toBe(day);
  });

  it.each(["2026-13-45", "2026-02-29", "1900-02-29", "2026-04-31", "2026-00-10", "2026-11-00", "2026-11-32", "2026-1-5", "20261125", "2026-11-25T00:00", " 2026-11-25", "", "yesterday"])("refuses '%s'", (day) => {
    expect(() => parseDay(day)).toThrow(`--day must be a calendar day as YYYY-MM-DD (UTC), e.g. 2026-11-25; got '${day}'`);
  });
});

describe("policy bodies: allowedSignals must name signal kinds a run can use", () => {
  const body = (allowedSignals: string[]): object => ({ version: 1, minNoiseMultiplier: 0.5, maxDeviceEpsilon: 20, delta: 1e-6, minSurvivors: 2, allowedSignals });
  const reviewer = generateEd25519();
  const VALID = `(valid: ${SIGNAL_KINDS.join(", ")})`;

  it("accepts every kind a run spec may name", () => {
    expect(policyBodySchema.safeParse(body([...SIGNAL_KINDS])).success).toBe(true);
  });

  it.each([
    { label: "a made-up kind beside a valid one", names: ["commit", "keystrokes"], message: `allowedSignals: unknown signal kind "keystrokes" ${VALID}` },
    { label: "a valid kind in the wrong case", names: ["Commit"], message: `allowedSignals: unknown signal kind "Commit" ${VALID}` },
    { label: "an empty name", names: [""], message: `allowedSignals: unknown signal kind "" ${VALID}` },
    // Many invented names still make one short issue.
    { label: "2000 made-up kinds", names: Array.from({ length: 2000 }, (_, i) => `signal-${i}`), message: `allowedSignals: unknown signal kind "signal-0", "signal-1", "signal-2" and 1997 more ${VALID}` },
  ])("refuses $label, naming it and the valid kinds", ({ names, message }) => {
    const r = policyBodySchema.safeParse(body(names));
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => `${i.path.join(".")}: ${i.message}`)).toEqual([message]);
  });

  it("is refused when signing, and when verifying a policy signed around the check", () => {
    expect(() => signPolicy(body(["typing"]) as never, reviewer.privateKey, reviewer.publicKey)).toThrow(/unknown signal kind "typing"/);
    // A signer that skipped the schema: the signature verifies, the body is still refused.
    const forged = body(["commit", "screen-capture"]);
    const file = { body: forged, reviewerPublicKey: Buffer.from(rawPublicKey(reviewer.publicKey)).toString("base64"), signature: Buffer.from(signBytes(reviewer.privateKey, canonicalJson(forged))).toString("base64") };
    expect(() => verifyPolicy(JSON.stringify(file))).toThrow(PolicyError);
    expect(() => verifyPolicy(JSON.stringify(file))).toThrow(/unknown signal kind "screen-capture"/);
  });

  describe.concurrent("tacit privacy policy sign", () => {
    let key = "";
    beforeAll(() => {
      key = join(dir, "reviewer.key");
      writeFileSync(key, privateKeyToPem(reviewer.privateKey), { mode: 0o600 });
    });

    it("refuses an unknown signal kind with one line naming it and the valid kinds", async () => {
      const input = join(dir, "policy-unknown.json");
      const out = join(dir, "policy-unknown.signed.json");
      writeFileSync(input, JSON.stringify(body(["commit", "keystrokes"])));
      const r = await runTacit(["privacy", "policy", "sign", "--in", input, "--key", key, "--out", out], { timeoutMs: CLI_TIMEOUT_MS });
      expect(r.status).toBe(2);
      expect(r.stderr).toBe(`tacit: impossible policy values in ${input}: allowedSignals: unknown signal kind "keystrokes" ${VALID}\n`);
      expect(existsSync(out)).toBe(false);
    });

    it("signs a BOM-prefixed body, and shows a BOM-prefixed signed file", async () => {
      const input = join(dir, "policy-bom.json");
      const out = join(dir, "policy-bom.signed.json");
      writeFileSync(input, BOM + JSON.stringify(body(["commit", "file-change"]), null, 2));
      const signed = await runTacit(["privacy", "policy", "sign", "--in", input, "--key", key, "--out", out], { timeoutMs: CLI_TIMEOUT_MS });
      expect(signed.stderr).toBe("");
      expect(signed.status).toBe(0);
      expect(verifyPolicy(readFileSync(out, "utf8")).body.allowedSignals).toEqual(["commit", "file-change"]);
      writeFileSync(out, BOM + readFileSync(out, "utf8"));
      const shown = await runTacit(["privacy", "policy", "show", out, "--json"], { timeoutMs: CLI_TIMEOUT_MS });
      expect(shown.stderr).toBe("");
      expect(JSON.parse(shown.stdout)).toMatchObject({ valid: true, body: { allowedSignals: ["commit", "file-change"] } });
    });
  });
});
