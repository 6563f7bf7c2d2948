/**
 * Low-level input events → abstract action tokens (docs/DESIGN.md §3). Pure: no I/O, no clock (time
 * comes from the events, idleness from tick(now)), so it is tested exhaustively by property.
 *
 *   vscode:shortcut:ctrl+shift+p   ctrl/alt/meta chord, naming its key
 *   terminal:key:enter             a named non-printable key (shift+tab keeps its shift)
 *   chrome:click                   a mouse button press (chrome:click:right / :middle)
 *   app-switch:vscode>terminal     the focused application changed
 *   typing:burst:m                 a run of printable keys: ONLY its length bucket
 *
 * The rule that matters: a printable key typed as text (no ctrl/alt/meta; shift or AltGr do not
 * make a command) never becomes a character anywhere. Such keys only increment a counter; the
 * counter leaves as a bucket (s < 5 ≤ m < 20 ≤ l < 80 ≤ xl) when the run ends: on a named key,
 * a shortcut, a click, an app switch, or an idle gap. Which printable key was pressed does not
 * influence the output at all (the property test checks exactly that).
 */
import type { ActionKind, ActionRecord } from "../store/action-record.ts";
import { isModifierKey, KEY_ALTGR, NAMED_KEYS, PRINTABLE_KEYS } from "./key-names.ts";

export interface Modifiers {
  ctrl?: boolean;
  alt?: boolean;
  shift?: boolean;
  meta?: boolean;
}

/** One low-level event; keycodes are uiohook-napi's (libuiohook VC_*). */
export interface InputEvent {
  type: "keydown" | "keyup" | "click" | "app";
  /** ms since epoch. */
  at: number;
  keycode?: number;
  modifiers?: Modifiers;
  /** uiohook's button: 1 left, 2 right, 3 middle. */
  button?: number;
  /** For "app": the raw application name (WM_CLASS class); normalised here. */
  app?: string;
}

export type BurstBucket = "s" | "m" | "l" | "xl";

export function burstBucket(keys: number): BurstBucket {
  if (keys < 5) return "s";
  if (keys < 20) return "m";
  if (keys < 80) return "l";
  return "xl";
}

export const MAX_APP_NAME = 64;

/**
 * Application names as tokens carry them: lower-case, [a-z0-9._-] (anything else becomes "-",
 * runs collapse), at most 64 characters. Undefined if nothing usable is left.
 */
export function normalizeAppName(raw: string): string | undefined {
  const s = raw
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/-{2,}/g, "-")
    .replace(/^[-.]+|[-.]+$/g, "")
    .slice(0, MAX_APP_NAME)
    .replace(/[-.]+$/, "");
  return s.length > 0 ? s : undefined;
}

export interface TokenizerOptions {
  /** A pause this long ends a typing burst (default 2000 ms). */
  idleGapMs?: number;
}

export class Tokenizer {
  private current: string | undefined;
  private burstKeys = 0;
  private burstApp: string | undefined;
  private burstStart = 0;
  private lastKeyAt = 0;
  private altGr = false;
  private readonly idleGapMs: number;

  constructor(opts: TokenizerOptions = {}) {
    this.idleGapMs = opts.idleGapMs ?? 2000;
  }

  /** The current (normalised) application, if known. */
  get app(): string | undefined {
    return this.current;
  }

  /** When the pending typing burst (if any) becomes idle and tick() will end it. */
  burstIdleAt(): number | undefined {
    return this.burstKeys > 0 ? this.lastKeyAt + this.idleGapMs : undefined;
  }

  /** Feeds one event; returns the records it completes (possibly none), in time order. */
  push(ev: InputEvent): ActionRecord[] {
    const out: ActionRecord[] = [];
    if (this.burstKeys > 0 && ev.at - this.lastKeyAt >= this.idleGapMs) this.endBurst(out);
    switch (ev.type) {
      case "app":
        this.switchApp(ev, out);
        break;
      case "keyup":
        if (ev.keycode === KEY_ALTGR) this.altGr = false;
        break;
      case "keydown":
        this.keydown(ev, out);
        break;
      case "click":
        if (!this.current) break;
        this.endBurst(out);
        out.push(record(ev.at, this.current, "click", `${this.current}:click${ev.button === 2 ? ":right" : ev.button === 3 ? ":middle" : ev.button === undefined || ev.button === 1 ? "" : ":other"}`));
        break;
    }
    return out;
  }

  /** Ends a typing burst idle since at least `idleGapMs` before `now`. */
  tick(now: number): ActionRecord[] {
    const out: ActionRecord[] = [];
    if (this.burstKeys > 0 && now - this.lastKeyAt >= this.idleGapMs) this.endBurst(out);
    return out;
  }

  /** Ends a pending typing burst now (before a pause, on leaving for a non-consented app, at stop). */
  flush(): ActionRecord[] {
    const out: ActionRecord[] = [];
    this.endBurst(out);
    return out;
  }

  /** Forgets everything (after a pause): the next app event names no previous app. */
  reset(): void {
    this.current = undefined;
    this.burstKeys = 0;
    this.burstApp = undefined;
    this.altGr = false;
  }

  private switchApp(ev: InputEvent, out: ActionRecord[]): void {
    const next = ev.app === undefined ? undefined : normalizeAppName(ev.app);
    if (next === this.current) return;
    this.endBurst(out);
    if (this.current && next) out.push(record(ev.at, next, "app-switch", `app-switch:${this.current}>${next}`));
    this.current = next;
  }

  private keydown(ev: InputEvent, out: ActionRecord[]): void {
    const code = ev.keycode;
    if (code === undefined) return;
    if (code === KEY_ALTGR) this.altGr = true;
    if (isModifierKey(code) || !this.current) return;
    const m = ev.modifiers ?? {};
    // AltGr arrives as alt; with it held a printable key types a character (@, {, €), so only
    // ctrl or meta (or a left alt without AltGr) makes a chord a command.
    const alt = !!m.alt && !this.altGr;
    const command = !!m.ctrl || !!m.meta || alt;
    const printable = PRINTABLE_KEYS.get(code);
    if (printable !== undefined) {
      if (!command) {
        this.typed(ev.at);
        return;
      }
      this.endBurst(out);
      out.push(record(ev.at, this.current, "shortcut", `${this.current}:shortcut:${chord(m.ctrl, alt, m.shift, m.meta)}${printable}`));
      return;
    }
    const named = NAMED_KEYS.get(code);
    if (named === undefined) return; // caps lock, print screen, media keys…: not an action
    this.endBurst(out);
    if (command) out.push(record(ev.at, this.current, "shortcut", `${this.current}:shortcut:${chord(m.ctrl, alt, m.shift, m.meta)}${named}`));
    else out.push(record(ev.at, this.current, "key", `${this.current}:key:${m.shift ? "shift+" : ""}${named}`));
  }

  private typed(at: number): void {
    if (this.burstKeys === 0) {
      this.burstStart = at;
      this.burstApp = this.current;
    }
    this.burstKeys++;
    this.lastKeyAt = at;
  }

  private endBurst(out: ActionRecord[]): void {
    if (this.burstKeys > 0 && this.burstApp) out.push(record(this.burstStart, this.burstApp, "typing-burst", `typing:burst:${burstBucket(this.burstKeys)}`));
    this.burstKeys = 0;
    this.burstApp = undefined;
  }
}

function chord(ctrl?: boolean, alt?: boolean, shift?: boolean, meta?: boolean): string {
  return `${ctrl ? "ctrl+" : ""}${alt ? "alt+" : ""}${shift ? "shift+" : ""}${meta ? "meta+" : ""}`;
}

function record(at: number, app: string, kind: ActionKind, token: string): ActionRecord {
  return { at, app, kind, token };
}

/** Tokenizes a whole sequence (and ends a trailing burst). */
export function tokenize(events: Iterable<InputEvent>, opts?: TokenizerOptions): ActionRecord[] {
  const t = new Tokenizer(opts);
  const out: ActionRecord[] = [];
  for (const ev of events) out.push(...t.push(ev));
  out.push(...t.flush());
  return out;
}
