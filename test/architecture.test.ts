/**
 * Holds the architecture with a tool, not a promise: client → shared ← coordinator, shared
 * imports neither, nothing imports the composition roots (cli, simulation) from below, no
 * import cycles; generated proto types are only imported at the transport edges; and the
 * generated types are up to date with proto/tacit.proto.
 */
import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";

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
});
