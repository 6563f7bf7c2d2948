/**
 * The tokenizer: tables of cases for each token shape, and properties over random event
 * sequences — which printable key was typed never changes the output (non-interference), and
 * no canary text typed among other actions appears in any token.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { UiohookKey as K } from "uiohook-napi";
import { burstBucket, normalizeAppName, tokenize, Tokenizer, type InputEvent } from "../client/capture/tokenizer.ts";
import { NAMED_KEYS, PRINTABLE_KEYS } from "../client/capture/key-names.ts";

const T = 1_700_000_000_000;
const app = (at: number, name: string): InputEvent => ({ type: "app", at, app: name });
const down = (at: number, keycode: number, modifiers: InputEvent["modifiers"] = {}): InputEvent => ({ type: "keydown", at, keycode, modifiers });
const up = (at: number, keycode: number): InputEvent => ({ type: "keyup", at, keycode });
const click = (at: number, button = 1): InputEvent => ({ type: "click", at, button });
const tokens = (evs: InputEvent[]): string[] => tokenize(evs).map((r) => r.token);

/** US layout: character → [keycode, shift]. */
const US: Record<string, [number, boolean]> = {};
"abcdefghijklmnopqrstuvwxyz".split("").forEach((c) => {
  const code = (K as Record<string, number>)[c.toUpperCase()]!;
  US[c] = [code, false];
  US[c.toUpperCase()] = [code, true];
});
"0123456789".split("").forEach((c) => (US[c] = [(K as Record<string, number>)[c]!, false]));
")!@#$%^&*(".split("").forEach((c, i) => (US[c] = [(K as Record<string, number>)[String(i)]!, true]));
const punct: [string, string, number][] = [
  [";", ":", K.Semicolon], ["=", "+", K.Equal], [",", "<", K.Comma], ["-", "_", K.Minus], [".", ">", K.Period],
  ["/", "?", K.Slash], ["`", "~", K.Backquote], ["[", "{", K.BracketLeft], ["\\", "|", K.Backslash], ["]", "}", K.BracketRight], ["'", '"', K.Quote],
];
for (const [plain, shifted, code] of punct) {
  US[plain] = [code, false];
  US[shifted] = [code, true];
}
US[" "] = [K.Space, false];

function typeText(at: number, text: string, stepMs = 80): InputEvent[] {
  return [...text].flatMap((ch, i) => {
    const [code, shift] = US[ch]!;
    const t = at + i * stepMs;
    return shift ? [down(t, K.Shift, { shift: true }), down(t, code, { shift: true }), up(t + 5, code), up(t + 6, K.Shift)] : [down(t, code), up(t + 5, code)];
  });
}

describe("tokenizer: token shapes", () => {
  it.each<[string, InputEvent[], string[]]>([
    ["shortcut naming its key", [app(T, "Code"), down(T + 1, K.Ctrl, { ctrl: true }), down(T + 2, K.Shift, { ctrl: true, shift: true }), down(T + 3, K.P, { ctrl: true, shift: true })], ["code:shortcut:ctrl+shift+p"]],
    ["ctrl+s is a command", [app(T, "Code"), down(T + 1, K.S, { ctrl: true })], ["code:shortcut:ctrl+s"]],
    ["alt chord", [app(T, "Code"), down(T + 1, K.F, { alt: true })], ["code:shortcut:alt+f"]],
    ["meta chord", [app(T, "Code"), down(T + 1, K.Slash, { meta: true })], ["code:shortcut:meta+slash"]],
    ["named key", [app(T, "Gnome-terminal"), down(T + 1, K.Enter)], ["gnome-terminal:key:enter"]],
    ["keypad enter is enter", [app(T, "xterm"), down(T + 1, 3612)], ["xterm:key:enter"]],
    ["shift+tab keeps its shift", [app(T, "code"), down(T + 1, K.Tab, { shift: true })], ["code:key:shift+tab"]],
    ["ctrl+named key is a shortcut", [app(T, "code"), down(T + 1, K.Enter, { ctrl: true })], ["code:shortcut:ctrl+enter"]],
    ["f-keys, arrows, paging", [app(T, "code"), down(T + 1, K.F5), down(T + 2, K.ArrowUp), down(T + 3, K.PageDown), down(T + 4, K.Home), down(T + 5, K.Delete), down(T + 6, K.Escape), down(T + 7, K.Backspace), down(T + 8, K.F12)], ["code:key:f5", "code:key:up", "code:key:pagedown", "code:key:home", "code:key:delete", "code:key:escape", "code:key:backspace", "code:key:f12"]],
    ["clicks by button", [app(T, "Google-chrome"), click(T + 1), click(T + 2, 2), click(T + 3, 3)], ["google-chrome:click", "google-chrome:click:right", "google-chrome:click:middle"]],
    ["app switch", [app(T, "code"), app(T + 1, "Gnome-terminal"), app(T + 2, "gnome-terminal")], ["app-switch:code>gnome-terminal"]],
    ["typing burst then enter", [app(T, "xterm"), ...typeText(T + 1, "ls -la /tmp"), down(T + 2000, K.Enter)], ["typing:burst:m", "xterm:key:enter"]],
    ["shift+letter is typing, not a shortcut", [app(T, "xterm"), ...typeText(T + 1, "Hi")], ["typing:burst:s"]],
    ["modifier alone and caps lock produce nothing", [app(T, "xterm"), down(T + 1, K.Ctrl, { ctrl: true }), down(T + 2, K.CapsLock), down(T + 3, K.Shift, { shift: true })], []],
    ["nothing before the first app is known", [down(T, K.Enter), click(T + 1), ...typeText(T + 2, "secret"), app(T + 1000, "xterm"), down(T + 1001, K.Enter)], ["xterm:key:enter"]],
    ["a click ends a burst", [app(T, "code"), ...typeText(T + 1, "abc"), click(T + 500)], ["typing:burst:s", "code:click"]],
    ["a shortcut ends a burst", [app(T, "code"), ...typeText(T + 1, "abcdef"), down(T + 900, K.S, { ctrl: true })], ["typing:burst:m", "code:shortcut:ctrl+s"]],
    ["an app switch ends a burst, under the app typed in", [app(T, "code"), ...typeText(T + 1, "abc"), app(T + 500, "xterm")], ["typing:burst:s", "app-switch:code>xterm"]],
    ["an idle gap splits bursts", [app(T, "code"), ...typeText(T + 1, "abcdef"), ...typeText(T + 10_000, "ab")], ["typing:burst:m", "typing:burst:s"]],
  ])("%s", (_name, evs, expected) => {
    expect(tokens(evs)).toEqual(expected);
  });

  it("AltGr (right alt) + a printable key types a character, not a chord", () => {
    const evs = [app(T, "code"), down(T + 1, 3640, { alt: true }), down(T + 2, K.Q, { alt: true }), up(T + 3, K.Q), up(T + 4, 3640), down(T + 5, K.Q, { alt: true })];
    expect(tokens(evs)).toEqual(["typing:burst:s", "code:shortcut:alt+q"]);
  });

  it("records carry the app, kind and time; a burst is dated at its first key", () => {
    const recs = tokenize([app(T, "code"), ...typeText(T + 10, "hello"), down(T + 900, K.Enter), app(T + 950, "xterm")]);
    expect(recs).toEqual([
      { at: T + 10, app: "code", kind: "typing-burst", token: "typing:burst:m" },
      { at: T + 900, app: "code", kind: "key", token: "code:key:enter" },
      { at: T + 950, app: "xterm", kind: "app-switch", token: "app-switch:code>xterm" },
    ]);
  });

  it.each([
    [0, "s"], [1, "s"], [4, "s"], [5, "m"], [19, "m"], [20, "l"], [79, "l"], [80, "xl"], [5000, "xl"],
  ])("burst of %i keys is bucket %s", (n, bucket) => {
    expect(burstBucket(n)).toBe(bucket);
    if (n > 0) expect(tokens([app(T, "x"), ...Array.from({ length: n }, (_, i) => down(T + 1 + i, K.A))])).toEqual([`typing:burst:${bucket}`]);
  });

  it("tick ends an idle burst; flush ends it now; reset forgets the app", () => {
    const t = new Tokenizer({ idleGapMs: 1000 });
    t.push(app(T, "code"));
    for (const e of typeText(T + 1, "abc")) expect(t.push(e)).toEqual([]);
    expect(t.tick(T + 500)).toEqual([]);
    expect(t.tick(T + 1500).map((r) => r.token)).toEqual(["typing:burst:s"]);
    t.push(down(T + 2000, K.A));
    expect(t.flush().map((r) => r.token)).toEqual(["typing:burst:s"]);
    t.reset();
    expect(t.push(app(T + 3000, "xterm"))).toEqual([]);
    expect(t.app).toBe("xterm");
  });

  it.each<[string, string | undefined]>([
    ["Code", "code"],
    ["Google-chrome", "google-chrome"],
    ["Gnome-terminal", "gnome-terminal"],
    ["Firefox ESR", "firefox-esr"],
    ["jetbrains-idea-ce", "jetbrains-idea-ce"],
    ["org.gnome.Nautilus", "org.gnome.nautilus"],
    ["  Weird//App:Name>x ", "weird-app-name-x"],
    ["日本語", undefined],
    ["", undefined],
    ["a".repeat(100), "a".repeat(64)],
    ["evil\u0000app\nname", "evil-app-name"],
  ])("normalises app name %j to %j", (raw, want) => {
    expect(normalizeAppName(raw)).toBe(want);
  });
});

// ---- properties ---------------------------------------------------------------------------

const printableCodes = [...PRINTABLE_KEYS.keys()];
const namedCodes = [...NAMED_KEYS.keys()];
const APPS = ["code", "xterm", "google-chrome", "gnome-terminal", "slack"];

/** One abstract step; "text" steps are the ones whose key choice must not matter. */
type Step =
  | { k: "text"; code: number; shift: boolean }
  | { k: "chord"; code: number; ctrl: boolean; alt: boolean; meta: boolean; shift: boolean }
  | { k: "named"; code: number; ctrl: boolean; shift: boolean }
  | { k: "mod"; code: number }
  | { k: "keyup"; code: number }
  | { k: "click"; button: number }
  | { k: "app"; app: string }
  | { k: "altgr"; down: boolean };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ k: fc.constant("text" as const), code: fc.constantFrom(...printableCodes), shift: fc.boolean() }) },
  {
    weight: 2,
    arbitrary: fc
      .record({ k: fc.constant("chord" as const), code: fc.constantFrom(...printableCodes), ctrl: fc.boolean(), alt: fc.boolean(), meta: fc.boolean(), shift: fc.boolean() })
      .filter((s) => s.ctrl || s.alt || s.meta),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("named" as const), code: fc.constantFrom(...namedCodes), ctrl: fc.boolean(), shift: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("mod" as const), code: fc.constantFrom(K.Ctrl, K.Shift, K.Alt, K.Meta, K.CapsLock, 3640) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("keyup" as const), code: fc.constantFrom(...printableCodes, ...namedCodes) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("click" as const), button: fc.integer({ min: 1, max: 5 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("app" as const), app: fc.constantFrom(...APPS) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("altgr" as const), down: fc.boolean() }) },
);

function toEvents(steps: readonly Step[], gaps: readonly number[]): InputEvent[] {
  let at = T;
  return steps.map((s, i) => {
    at += gaps[i % gaps.length]!;
    switch (s.k) {
      case "text":
        return down(at, s.code, s.shift ? { shift: true } : {});
      case "chord":
        return down(at, s.code, { ctrl: s.ctrl, alt: s.alt, meta: s.meta, shift: s.shift });
      case "named":
        return down(at, s.code, { ctrl: s.ctrl, shift: s.shift });
      case "mod":
        return down(at, s.code);
      case "keyup":
        return up(at, s.code);
      case "click":
        return { type: "click", at, button: s.button };
      case "app":
        return app(at, s.app);
      case "altgr":
        return s.down ? down(at, 3640, { alt: true }) : up(at, 3640);
    }
  });
}

const gapsArb = fc.array(fc.integer({ min: 0, max: 4000 }), { minLength: 1, maxLength: 20 });

describe("tokenizer: properties", () => {
  it("non-interference: replacing which printable key was typed never changes the output", () => {
    fc.assert(
      fc.property(
        fc.array(stepArb, { maxLength: 120 }),
        gapsArb,
        fc.array(fc.tuple(fc.constantFrom(...printableCodes), fc.boolean()), { minLength: 1, maxLength: 50 }),
        (steps, gaps, replacements) => {
          let j = 0;
          const other = steps.map((s): Step => {
            if (s.k !== "text") return s;
            const [code, shift] = replacements[j++ % replacements.length]!;
            return { k: "text", code, shift };
          });
          expect(tokenize(toEvents(other, gaps))).toEqual(tokenize(toEvents(steps, gaps)));
        },
      ),
      { numRuns: 400 },
    );
  });

  it("no substring (≥ 3 chars) of a canary text typed among other actions appears in any token", () => {
    const typable = Object.keys(US).join("");
    // The fixed vocabulary: every token the tokenizer can emit from non-text events (and the
    // burst tokens), chords spelled out in full. A canary piece found among these 3-grams ("del"
    // of "delete", "t:a" of "shortcut:alt+a") is vocabulary, not a leak; any other is a leak.
    const mods = ["ctrl+", "alt+", "shift+", "meta+"];
    const chords = [""];
    for (const m of mods) chords.push(...chords.map((c) => c + m));
    const keyNames = [...NAMED_KEYS.values(), ...PRINTABLE_KEYS.values()];
    const vocabTokens = [
      ...["s", "m", "l", "xl"].map((b) => `typing:burst:${b}`),
      ...APPS.flatMap((a) => APPS.map((b) => `app-switch:${a}>${b}`)),
      ...APPS.flatMap((a) => [
        ...chords.flatMap((c) => keyNames.map((k) => `${a}:shortcut:${c}${k}`)),
        ...[...NAMED_KEYS.values()].flatMap((k) => [`${a}:key:${k}`, `${a}:key:shift+${k}`]),
        ...["", ":right", ":middle", ":other"].map((b) => `${a}:click${b}`),
      ]),
    ];
    const vocabulary = new Set<string>();
    for (const t of vocabTokens) for (let i = 0; i + 3 <= t.length; i++) vocabulary.add(t.slice(i, i + 3));
    fc.assert(
      fc.property(
        fc.stringOf(fc.constantFrom(...typable), { minLength: 3, maxLength: 60 }),
        fc.array(fc.tuple(fc.nat(), stepArb.filter((s) => s.k !== "text")), { maxLength: 30 }),
        gapsArb,
        (canary, inserts, gaps) => {
          const textSteps: { pos: number; steps: Step[] }[] = [...canary].map((ch, pos) => {
            const [code, shift] = US[ch]!;
            return { pos, steps: [{ k: "text", code, shift }] };
          });
          for (const [n, s] of inserts) textSteps[n % textSteps.length]!.steps.push(s);
          const steps: Step[] = [{ k: "app", app: "code" }, ...textSteps.flatMap((x) => x.steps)];
          const out = tokenize(toEvents(steps, gaps)).flatMap((r) => [r.app, r.token]);
          const lower = canary.toLowerCase();
          for (let i = 0; i + 3 <= lower.length; i++) {
            const sub = lower.slice(i, i + 3);
            if (vocabulary.has(sub)) continue;
            for (const t of out) expect(t.includes(sub), `"${sub}" of canary ${JSON.stringify(canary)} in ${t}`).toBe(false);
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it("a canary sentence alone yields only burst tokens", () => {
    const sentence = "The quick brown fox jumps over the lazy dog; my password is hunter2!";
    const out = tokens([app(T, "code"), ...typeText(T + 1, sentence)]);
    expect(out).toEqual(["typing:burst:l"]);
  });
});
