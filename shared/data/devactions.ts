/**
 * Reader for the devactions format: one UTF-8 TSV file per user (= one device), one action per
 * line, `<unix seconds>\t<token>`, in time order. Errors name the file and the line.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { basename, join } from "node:path";

export interface ActionEvent {
  time: number;
  token: string;
}

export interface UserSequence {
  userId: string;
  source: string;
  events: ActionEvent[];
}

export class DatasetError extends Error {
  override name = "DatasetError";
}

const MAX_TOKEN_LENGTH = 512;

export function parseDevactions(text: string, source: string): UserSequence {
  const name = basename(source);
  const events: ActionEvent[] = [];
  const lines = text.split("\n");
  let last = -Infinity;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, "");
    if (raw === "" && i === lines.length - 1) break; // trailing newline
    const where = `${name} line ${i + 1}`;
    if (raw === "") throw new DatasetError(`${where}: empty line; expected '<unix seconds>\\t<token>'`);
    const tab = raw.indexOf("\t");
    if (tab < 0 || raw.indexOf("\t", tab + 1) >= 0) throw new DatasetError(`${where}: expected '<unix seconds>\\t<token>' (exactly one tab)`);
    const t = raw.slice(0, tab);
    const token = raw.slice(tab + 1);
    if (!/^\d{1,12}$/.test(t)) throw new DatasetError(`${where}: time '${t.slice(0, 20)}' is not unix seconds`);
    if (token.length === 0 || token.length > MAX_TOKEN_LENGTH || /\s/.test(token)) throw new DatasetError(`${where}: token is empty, longer than ${MAX_TOKEN_LENGTH} characters, or contains white space`);
    const time = Number(t);
    if (time < last) throw new DatasetError(`${where}: time ${time} goes backwards (previous line ${last}); lines must be in time order`);
    last = time;
    events.push({ time, token });
  }
  if (events.length === 0) throw new DatasetError(`${name}: no actions in file`);
  return { userId: basename(source).replace(/\.tsv$/, ""), source, events };
}

/** Reads every *.tsv of a directory (sorted by name); fails on the first malformed file. */
export async function readDevactionsDir(dir: string): Promise<UserSequence[]> {
  let names: string[];
  try {
    if (!(await stat(dir)).isDirectory()) throw new DatasetError(`${dir} is not a directory`);
    names = (await readdir(dir)).filter((n) => n.endsWith(".tsv")).sort();
  } catch (err) {
    if (err instanceof DatasetError) throw err;
    throw new DatasetError(`cannot read dataset directory ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (names.length === 0) throw new DatasetError(`${dir} has no .tsv user files`);
  const out: UserSequence[] = [];
  for (const n of names) {
    const path = join(dir, n);
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      throw new DatasetError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    out.push(parseDevactions(text, path));
  }
  return out;
}

/** The last `evalFraction` of a user's events (by time order) are held back for evaluation. */
export function splitHoldout(seq: UserSequence, evalFraction: number): { train: UserSequence; eval: UserSequence } {
  if (!(evalFraction > 0 && evalFraction < 1)) throw new DatasetError(`eval fraction must be in (0, 1), got ${evalFraction}`);
  const cut = Math.max(1, Math.min(seq.events.length - 1, Math.round(seq.events.length * (1 - evalFraction))));
  return {
    train: { ...seq, events: seq.events.slice(0, cut) },
    eval: { ...seq, events: seq.events.slice(cut) },
  };
}
