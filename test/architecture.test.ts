/**
 * Holds the architecture with a tool, not a promise: client → shared ← coordinator, shared
 * imports neither, nothing imports the composition roots (cli, simulation) from below, no
 * import cycles; generated proto types are only imported at the transport edges; and the
 * generated types are up to date with proto/tacit.proto; no function is longer than 80 lines
 * (the allowlist for exceptions is empty); and only the status boundary picks gRPC
 * status codes.
 */
import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";

const root = resolve(import.meta.dirname, "..");
const LAYERS = ["shared", "client", "coordinator", "cli", "simulation"] as const;

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (p.endsWith(".ts")) out.push(p);
  }
  return out;
}

function importsOf(file: string): string[] {
  const src = readFileSync(file, "utf8");
  const specs = [...src.matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)].map((m) => m[1]!);
  return specs.map((s) => resolve(dirname(file), s));
}

const layerOf = (abs: string): string => relative(root, abs).split("/")[0]!;
const files = LAYERS.flatMap((l) => tsFiles(join(root, l)));

/** Functions longer than this (first line of the signature to the closing brace) are split. */
const MAX_FUNCTION_LINES = 80;

/**
 * Long functions allowed, keyed "file name", each with its length as a ceiling. Empty since
 * issue #16 split the last ones (executeRound, executeEvaluation, registerClientCommands,
 * runFederated): the limit holds everywhere. An entry whose function is short (or gone) fails
 * the test, so the list cannot hold stale exceptions.
 */
const LONG_FUNCTIONS: Record<string, { lines: number; why: string }> = {};

/** Every function-like node with a body: "file name" (methods as Class.method) and its length in lines. */
function functionLengths(file: string): { key: string; lines: number }[] {
  const sf = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
  const rel = relative(root, file);
  const out: { key: string; lines: number }[] = [];
  const nameOf = (n: ts.Node): string => {
    const own = (n as { name?: ts.Node }).name;
    const parentName = (n.parent as { name?: ts.Node }).name;
    const base = own ? own.getText(sf) : parentName && (ts.isVariableDeclaration(n.parent) || ts.isPropertyAssignment(n.parent) || ts.isPropertyDeclaration(n.parent)) ? parentName.getText(sf) : `anonymous function at line ${sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1}`;
    if (ts.isConstructorDeclaration(n)) return `${(n.parent as ts.ClassDeclaration).name?.getText(sf) ?? "class"}.constructor`;
    if ((ts.isMethodDeclaration(n) || ts.isGetAccessor(n) || ts.isSetAccessor(n)) && ts.isClassLike(n.parent)) return `${n.parent.name?.getText(sf) ?? "class"}.${base}`;
    return base;
  };
  const visit = (n: ts.Node): void => {
    if (ts.isFunctionLike(n) && (n as ts.FunctionLikeDeclaration).body) {
      const first = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line;
      const last = sf.getLineAndCharacterOfPosition(n.getEnd()).line;
      out.push({ key: `${rel} ${nameOf(n)}`, lines: last - first + 1 });
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

describe("architecture", () => {
  it("keeps the dependency direction client → shared ← coordinator", () => {
    const allowed: Record<string, string[]> = {
      shared: ["shared"],
      client: ["client", "shared"],
      coordinator: ["coordinator", "shared"],
      simulation: ["simulation", "client", "coordinator", "shared"],
      cli: ["cli", "simulation", "client", "coordinator", "shared"],
    };
    const violations: string[] = [];
    for (const f of files) {
      const from = layerOf(f);
      for (const target of importsOf(f)) {
        const to = layerOf(target);
        if (!allowed[from]!.includes(to)) violations.push(`${relative(root, f)} imports ${relative(root, target)}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it("has no import cycles", () => {
    const graph = new Map(files.map((f) => [f, importsOf(f).filter((t) => t.endsWith(".ts"))]));
    const state = new Map<string, 1 | 2>();
    const cycles: string[] = [];
    const visit = (f: string, stack: string[]): void => {
      if (state.get(f) === 2) return;
      if (state.get(f) === 1) {
        cycles.push([...stack.slice(stack.indexOf(f)), f].map((p) => relative(root, p)).join(" → "));
        return;
      }
      state.set(f, 1);
      for (const t of graph.get(f) ?? []) visit(t, [...stack, f]);
      state.set(f, 2);
    };
    for (const f of files) visit(f, []);
    expect(cycles).toEqual([]);
  });

  it("imports generated proto types only at the transport edges", () => {
    const edges = ["shared/transport/", "shared/proto-gen/", "coordinator/server/", "coordinator/rounds/device-hub.ts", "client/transport/"];
    const offenders = files.filter((f) => {
      const rel = relative(root, f);
      if (edges.some((e) => rel.startsWith(e))) return false;
      return importsOf(f).some((t) => relative(root, t).startsWith("shared/proto-gen/"));
    });
    expect(offenders.map((f) => relative(root, f))).toEqual([]);
  });

  it("has generated proto types that match proto/tacit.proto", () => {
    const out = mkdtempSync(join(tmpdir(), "tacit-proto-"));
    execFileSync(process.execPath, [join(root, "scripts/gen-proto.mjs"), out], { stdio: "pipe" });
    const committed = tsFiles(join(root, "shared/proto-gen")).map((f) => relative(join(root, "shared/proto-gen"), f)).sort();
    const fresh = tsFiles(out).map((f) => relative(out, f)).sort();
    expect(fresh).toEqual(committed);
    for (const f of fresh) expect(readFileSync(join(out, f), "utf8"), f).toBe(readFileSync(join(root, "shared/proto-gen", f), "utf8"));
  });

  it(`has no function over ${MAX_FUNCTION_LINES} lines`, () => {
    const all = files.filter((f) => !relative(root, f).startsWith("shared/proto-gen/")).flatMap(functionLengths);
    // The measure works: it sees a known long function and the short ones beside it.
    expect(all.find((f) => f.key === "coordinator/server/handlers.ts buildServices")?.lines).toBeLessThanOrEqual(MAX_FUNCTION_LINES);
    const long = all.filter((f) => f.lines > MAX_FUNCTION_LINES);
    const offenders = long.filter((f) => !(f.lines <= (LONG_FUNCTIONS[f.key]?.lines ?? MAX_FUNCTION_LINES))).map((f) => `${f.key}: ${f.lines} lines`);
    expect(offenders).toEqual([]);
    const stale = Object.keys(LONG_FUNCTIONS).filter((k) => !long.some((f) => f.key === k));
    expect(stale, "allowlisted functions that are now short (or gone): remove them from LONG_FUNCTIONS").toEqual([]);
    // coordinator/ and shared/ allow none (issue #16), whatever the allowlist says.
    expect(long.filter((f) => /^(coordinator|shared)\//.test(f.key)).map((f) => f.key)).toEqual([]);
  });

  it("picks gRPC status codes only at the status boundary (coordinator/server/status-boundary.ts)", () => {
    // Deferred: active-round.ts still throws RpcError with gRPC codes (coordinator/rounds is
    // being reworked in parallel); status-boundary.ts passes them through until it moves to
    // the typed refusals of request-errors.ts.
    const allowed = ["coordinator/server/status-boundary.ts", "coordinator/rounds/active-round.ts"];
    const offenders = files
      .filter((f) => layerOf(f) === "coordinator" && !allowed.includes(relative(root, f)))
      .filter((f) => /\b(grpc\.)?status\.(OK|CANCELLED|UNKNOWN|INVALID_ARGUMENT|DEADLINE_EXCEEDED|NOT_FOUND|ALREADY_EXISTS|PERMISSION_DENIED|RESOURCE_EXHAUSTED|FAILED_PRECONDITION|ABORTED|OUT_OF_RANGE|UNIMPLEMENTED|INTERNAL|UNAVAILABLE|DATA_LOSS|UNAUTHENTICATED)\b/.test(readFileSync(f, "utf8")))
      .map((f) => relative(root, f));
    expect(offenders).toEqual([]);
  });
});
