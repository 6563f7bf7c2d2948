/**
 * Suggestions on the laptop: a really trained model kept as the device's current model, a real
 * encrypted action store, `tacit client suggest` through the CLI, and the suggestion socket as
 * an agent would use it (a real unix socket: permissions, newline-delimited JSON, and every
 * malformed request answered with what is wrong).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { runTacit } from "./support/run-tacit.ts";
import { askSuggestSocket } from "./support/suggest-socket.ts";
import { buildExamples, initBackend, initialWeights, Trainer, tokenBucket, type ModelSpec } from "../shared/model/index.ts";
import { ActionStore, type ActionRecord } from "../client/store/action-store.ts";
import { clientPaths, ensureClientStateDir } from "../client/state/client-dirs.ts";
import { loadDeviceModel, saveDeviceModel } from "../client/suggest/device-model.ts";
import { suggestNext } from "../client/suggest/suggest.ts";
import { MAX_REQUEST_BYTES, SuggestServer, suggestSocketPath } from "../client/suggest/suggest-server.ts";

const SPEC: ModelSpec = { version: 1, vocabBuckets: 128, window: 4, embedDim: 8, hidden: 16, sessionGapSeconds: 600, output: "tied" };
// This person's routine; "ide:save" is always followed by "term:test", after "git:commit" comes "git:push".
const ROUTINE = ["ide:open", "ide:save", "term:test", "git:commit", "git:push"];

function actions(count: number, startMs: number): ActionRecord[] {
  return Array.from({ length: count }, (_, i) => ({ at: startMs + i * 5000, app: "term", kind: "shortcut" as const, token: ROUTINE[i % ROUTINE.length]! }));
}

describe("suggestions on the laptop (device model + own store, CLI and socket)", () => {
  let tmp: string;
  let stateDir: string;
  let server: SuggestServer;
  let socket: string;
  const now = Date.now();

  beforeAll(async () => {
    // Five distinct buckets (at 64 buckets "ide:save" and "git:push" would share one).
    expect(new Set(ROUTINE.map((t) => tokenBucket(t, SPEC))).size).toBe(ROUTINE.length);
    tmp = mkdtempSync(join(tmpdir(), "tacit-suggest-"));
    stateDir = join(tmp, "state");
    ensureClientStateDir(stateDir);
    // The global model: trained on other people's routine (same actions, no personal data here).
    await initBackend();
    const t = new Trainer(SPEC);
    t.setWeights(initialWeights(SPEC, 2));
    const others = actions(600, 1_700_000_000_000).map((r) => ({ time: Math.floor(r.at / 1000), token: r.token }));
    await t.train(buildExamples({ userId: "others", source: "test", events: others }, SPEC), { epochs: 4, batchSize: 32, learningRate: 0.02, optimizer: "adam", seed: 1 });
    await saveDeviceModel(stateDir, { spec: SPEC, weights: t.getWeights(), runId: "run-test", round: 3 });
    t.dispose();
    // This person's actions, the last one ("git:commit") a moment ago.
    const store = ActionStore.open(clientPaths(stateDir).store);
    for (const r of actions(199, now - 199 * 5000)) store.append(r);
    store.close();
    socket = suggestSocketPath(stateDir, { XDG_RUNTIME_DIR: join(tmp, "run") });
    server = new SuggestServer({
      path: socket,
      answer: async (top) => {
        const s = ActionStore.open(clientPaths(stateDir).store);
        const { records } = s.read();
        s.close();
        return suggestNext(await loadDeviceModel(stateDir), records, { top, nowMs: Date.now() });
      },
    });
    await server.start();
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it("tacit client suggest shows the person's own next actions, personalized, from the device's model", async () => {
    const r = await runTacit(["client", "suggest", "--state-dir", stateDir, "--top", "3", "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.model).toMatchObject({ runId: "run-test", round: 3 });
    expect(s.personalized).toBe(true);
    expect(s.contextActions).toBe(4);
    expect(s.suggestions).toHaveLength(3);
    // 199 actions: the last is ROUTINE[198 % 5] = "git:commit"; next comes "git:push".
    expect(s.suggestions[0]).toMatchObject({ token: "git:push" });
    expect(s.suggestions[0].p).toBeGreaterThan(0.5);
    for (const x of s.suggestions) if ("token" in x) expect(ROUTINE).toContain(x.token);

    const text = await runTacit(["client", "suggest", "--state-dir", stateDir, "--top", "2"]);
    expect(text.stdout).toMatch(/^next actions after your last 4 action\(s\), personalized with your own habits \(model of run run-test, round 3\):\n {3}1\. git:push {2}\d+\.\d%\n/);
  });

  it("without a model yet, says when one arrives", async () => {
    const empty = join(tmp, "fresh");
    ensureClientStateDir(empty);
    const r = await runTacit(["client", "suggest", "--state-dir", empty]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/^tacit: no model on this laptop yet: it arrives with the first round this laptop takes part in/);
  });

  it("the socket is private (0600 in a 0700 dir under $XDG_RUNTIME_DIR/tacit) and answers as the CLI does", async () => {
    expect(socket).toBe(join(tmp, "run", "tacit", "suggest.sock"));
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    expect(statSync(dirname(socket)).mode & 0o777).toBe(0o700);
    const [line] = await askSuggestSocket(socket, `{"top": 3}\n`, 1);
    const res = JSON.parse(line!);
    expect(res.ok).toBe(true);
    expect(res.suggestions.map((x: { token?: string }) => x.token)).toEqual(
      suggestNext(await loadDeviceModel(stateDir), (() => { const s = ActionStore.open(clientPaths(stateDir).store); const r = s.read().records; s.close(); return r; })(), { top: 3, nowMs: Date.now() }).suggestions.map((x) => ("token" in x ? x.token : undefined)),
    );
    expect(res.suggestions[0].token).toBe("git:push");
    // Defaults and several requests on one connection, answered in order.
    const two = await askSuggestSocket(socket, `{}\n{"top": 1}\n`, 2);
    expect(JSON.parse(two[0]!).suggestions).toHaveLength(5);
    expect(JSON.parse(two[1]!).suggestions).toHaveLength(1);
  });

  describe("answers each malformed request with what is wrong", () => {
    it("a line that is not JSON", async () => {
      const [r] = await askSuggestSocket(socket, "hello\n", 1);
      expect(JSON.parse(r!)).toEqual({ ok: false, error: expect.stringMatching(/^malformed request: not a JSON object on one line/) });
    });
    it("an unknown field, a top out of range, a top of the wrong type", async () => {
      const [unknownField, badTop, stringTop] = await askSuggestSocket(socket, `{"top": 3, "send": "everything"}\n{"top": 0}\n{"top": "3"}\n`, 3);
      expect(JSON.parse(unknownField!).error).toMatch(/^malformed request: .*Unrecognized key\(s\) in object: 'send'/);
      expect(JSON.parse(badTop!).error).toMatch(/^malformed request: top: Number must be greater than or equal to 1/);
      expect(JSON.parse(stringTop!).error).toMatch(/^malformed request: top: Expected number, received string/);
    });
    it("a request that never ends is cut off rather than buffered without bound", async () => {
      const long = await askSuggestSocket(socket, "x".repeat(MAX_REQUEST_BYTES + 10), 1);
      expect(JSON.parse(long[0]!).error).toMatch(/longer than 4096 bytes without a newline/);
    });
  });

  it("a socket left by a crashed daemon is replaced; the state dir is the fallback without a runtime dir", async () => {
    expect(suggestSocketPath(stateDir, {})).toBe(join(stateDir, "suggest.sock"));
    const path = join(tmp, "run2", "tacit", "suggest.sock");
    mkdirSync(dirname(path), { recursive: true });
    // A real crash: a process listening on the path is SIGKILLed, so nothing unlinks its socket.
    const crashed = spawn(process.execPath, ["-e", `require("node:net").createServer().listen(${JSON.stringify(path)}, () => console.log("listening"))`], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((r) => crashed.stdout!.once("data", () => r()));
    crashed.kill("SIGKILL");
    await new Promise<void>((r) => crashed.once("exit", () => r()));
    expect(statSync(path).isSocket()).toBe(true);
    const server = new SuggestServer({ path, answer: async () => { throw new Error("no model on this laptop yet"); } });
    await server.start();
    const [line] = await askSuggestSocket(path, `{"top": 2}\n`, 1);
    expect(JSON.parse(line!)).toEqual({ ok: false, error: "no model on this laptop yet" });
    await server.stop();
  });
});
