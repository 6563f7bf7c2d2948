/** Reading the JSON files people hand to the CLI (run specs, policy bodies). */
import { readFileSync } from "node:fs";
import { CliError } from "./errors.ts";

/**
 * A leading U+FEFF (the UTF-8 byte-order mark some Windows editors write) is not part of the
 * text: JSON.parse would refuse it as an unexpected token although the JSON is valid.
 */
export function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** The parsed JSON in `path`; a file that cannot be read or parsed is one CliError line naming `what`. */
export function readJsonFile(path: string, what: string): unknown {
  try {
    return JSON.parse(stripBom(readFileSync(path, "utf8")));
  } catch (err) {
    // V8 quotes the text around a syntax error verbatim: in a pretty-printed file that excerpt
    // holds newlines (and a hostile file could put terminal escapes there). One line, no controls.
    throw new CliError(`cannot read ${what} ${path}: ${(err as Error).message.replace(/\p{Cc}+/gu, " ")}`);
  }
}
