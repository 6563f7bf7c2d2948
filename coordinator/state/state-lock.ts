/**
 * One coordinator process per state dir. The lock is a file holding the owner's pid, created
 * atomically (link(2) fails when it exists) and removed only when the owning process exits —
 * never by `stop()` — so a coordinator that is still draining after a signal keeps its state dir
 * until it is really gone. A lock left by a process that died (SIGKILL, power loss) names a pid
 * that no longer lives and is taken over.
 */
import { linkSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { processAlive } from "../redis/embedded-redis.ts";

export class StateDirLockedError extends Error {
  override name = "StateDirLockedError";
}

export const stateLockPath = (stateDir: string): string => join(stateDir, "coordinator.lock");

const held = new Set<string>();

function ownerOf(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Takes the state dir's lock for this process (again, if this process holds it already). */
export function acquireStateLock(stateDir: string): void {
  const path = stateLockPath(stateDir);
  if (held.has(path) && ownerOf(path) === process.pid) return;
  const tmp = `${path}.${process.pid}`;
  writeFileSync(tmp, `${process.pid}\n`, { mode: 0o644 });
  try {
    for (let tries = 0; ; tries++) {
      try {
        linkSync(tmp, path);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST" || tries > 2) throw err;
        const owner = ownerOf(path);
        if (owner !== undefined && owner !== process.pid && processAlive(owner)) {
          throw new StateDirLockedError(`the state dir ${stateDir} is in use by another coordinator (pid ${owner}); stop it first or use another --state-dir`);
        }
        unlinkSync(path); // stale: its owner is gone
      }
    }
  } finally {
    rmSync(tmp, { force: true });
  }
  if (held.size === 0) process.once("exit", releaseAll);
  held.add(path);
}

function releaseAll(): void {
  for (const path of held) if (ownerOf(path) === process.pid) rmSync(path, { force: true });
  held.clear();
}
