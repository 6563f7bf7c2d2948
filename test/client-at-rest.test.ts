/**
 * The laptop's secrets at rest (security findings 2026-11-30, "Files at rest"): the red team saw
 * these hold, and these tests keep them held. `tacit client export --out` writes its file 0600
 * whatever the umask and whatever was at that path before; the identity key is created 0600 in a
 * 0700 dir, and `loadIdentity` refuses a key that other users can read instead of using it.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { registerClientCommands } from "../cli/commands/client.ts";
import { clientPaths } from "../client/state/client-dirs.ts";
import { ActionStore, type ActionRecord } from "../client/store/index.ts";
import { ensureIdentity, identityPaths, loadIdentity, IdentityError } from "../client/identity/device-identity.ts";

const T0 = Date.UTC(2026, 10, 20, 9, 0, 0); // 2026-11-20 09:00 UTC
const DAY = 86_400_000;

const modeOf = (path: string): number => statSync(path).mode & 0o777;

let dir: string;
let umask: number;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "tacit-at-rest-"));
  // A permissive umask, so that only the mode the code asks for can make a file private.
  umask = process.umask(0o022);
});
afterEach(() => {
  process.umask(umask);
  rmSync(dir, { recursive: true, force: true });
});

describe("tacit client export --out", () => {

  /** A state dir whose store holds two actions on 2026-11-20 and one on 2026-11-21. */
  function filledStateDir(): string {
    const stateDir = join(dir, "state");
    const store = ActionStore.open(clientPaths(stateDir).store);
    const recs: ActionRecord[] = [
      { at: T0, app: "zebracode", kind: "shortcut", token: "zebracode:shortcut:ctrl+s" },
      { at: T0 + 60_000, app: "zebracode", kind: "click", token: "zebracode:click" },
      { at: T0 + DAY, app: "quokkaterm", kind: "key", token: "quokkaterm:key:enter" },
    ];
    for (const r of recs) store.append(r);
    store.flush();
    store.close();
    return stateDir;
  }

  /** The command as `tacit client export …` runs it, in this process (no daemon is running, so no flush is awaited). */
  async function exportCli(args: string[]): Promise<string> {
    const program = new Command("tacit").exitOverride();
    registerClientCommands(program);
    let out = "";
    const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      out += String(chunk);
      return true;
    });
    try {
      await program.parseAsync(["client", "export", ...args], { from: "user" });
    } finally {
      spy.mockRestore();
    }
    return out;
  }

  it("writes a new export file 0600 under umask 022", async () => {
    const stateDir = filledStateDir();
    const out = join(dir, "export.json");
    expect(await exportCli(["--state-dir", stateDir, "--out", out])).toMatch(/^wrote 3 actions to /);
    expect(modeOf(out).toString(8)).toBe("600");
    expect((JSON.parse(readFileSync(out, "utf8")) as { actions: unknown[] }).actions).toHaveLength(3);
  });

  it("replaces a world-readable file at --out with a 0600 one (the mode is not inherited from what was there)", async () => {
    const stateDir = filledStateDir();
    const out = join(dir, "old-export.json");
    writeFileSync(out, "stale\n", { mode: 0o644 });
    chmodSync(out, 0o644);
    await exportCli(["--state-dir", stateDir, "--out", out, "--day", "2026-11-20"]);
    expect(modeOf(out).toString(8)).toBe("600");
    expect((JSON.parse(readFileSync(out, "utf8")) as { actions: ActionRecord[] }).actions.map((a) => a.app)).toEqual(["zebracode", "zebracode"]);
  });
});

describe("the device identity key", () => {
  it("is created 0600 in a 0700 identity dir", () => {
    ensureIdentity(dir);
    const p = identityPaths(dir);
    expect(modeOf(p.key).toString(8)).toBe("600");
    expect(modeOf(p.dir).toString(8)).toBe("700");
    expect(() => loadIdentity(dir)).not.toThrow();
  });

  it.each(["640", "604", "660", "644", "606", "610", "601"])("refuses a key with mode %s (group or world bits set) and says how to fix it", (octal) => {
    const mode = parseInt(octal, 8);
    ensureIdentity(dir);
    const key = identityPaths(dir).key;
    chmodSync(key, mode);
    const err = (() => {
      try {
        loadIdentity(dir);
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(IdentityError);
    expect(err!.message).toBe(`${key} is readable by other users (mode ${octal}): run \`chmod 600 ${key}\``);
  });

  it("accepts an owner-only key (0600, 0400)", () => {
    const kp = ensureIdentity(dir);
    const key = identityPaths(dir).key;
    for (const mode of [0o600, 0o400]) {
      chmodSync(key, mode);
      expect(Buffer.from(loadIdentity(dir).publicRaw)).toEqual(Buffer.from(kp.publicRaw));
    }
  });
});
