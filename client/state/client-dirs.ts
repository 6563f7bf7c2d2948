/**
 * Where the laptop keeps Tacit's state: the XDG data dir (`$XDG_DATA_HOME/tacit`, else
 * `~/.local/share/tacit`), one 0700 directory holding the identity, consent, the encrypted
 * action store, the budget record and the local copy of the ledger entries about this device.
 */
import { chmodSync, mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export function defaultClientStateDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_DATA_HOME;
  return join(xdg && xdg.startsWith("/") ? xdg : join(env.HOME ?? homedir(), ".local", "share"), "tacit");
}

export interface ClientPaths {
  root: string;
  consent: string;
  store: string;
  budget: string;
  ledgerCopy: string;
  daemonPid: string;
  daemonStatus: string;
}

export function clientPaths(stateDir: string): ClientPaths {
  return {
    root: stateDir,
    consent: join(stateDir, "consent.json"),
    store: join(stateDir, "store"),
    budget: join(stateDir, "budget.json"),
    ledgerCopy: join(stateDir, "ledger-copy.jsonl"),
    daemonPid: join(stateDir, "daemon.pid"),
    daemonStatus: join(stateDir, "daemon-status.json"),
  };
}

/** Creates the state dir private to this user (0700), even if it already existed wider. */
export function ensureClientStateDir(stateDir: string): ClientPaths {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  chmodSync(stateDir, 0o700);
  return clientPaths(stateDir);
}
