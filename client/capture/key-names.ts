/**
 * uiohook-napi keycodes (libuiohook VC_* codes, the same on every platform) sorted into the
 * classes the tokenizer needs: printable keys (text: never named), named keys (commands:
 * named), modifiers (folded into chords) and everything else (ignored).
 *
 * Printable-key names exist ONLY for shortcut chords (ctrl+s is a command, not text); the
 * tokenizer never uses them for a key typed without ctrl/alt/meta.
 */

/** Keys that produce text when typed without ctrl/alt/meta, with their chord name. */
export const PRINTABLE_KEYS: ReadonlyMap<number, string> = new Map<number, string>([
  // letters
  [30, "a"], [48, "b"], [46, "c"], [32, "d"], [18, "e"], [33, "f"], [34, "g"], [35, "h"], [23, "i"], [36, "j"], [37, "k"], [38, "l"], [50, "m"],
  [49, "n"], [24, "o"], [25, "p"], [16, "q"], [19, "r"], [31, "s"], [20, "t"], [22, "u"], [47, "v"], [17, "w"], [45, "x"], [21, "y"], [44, "z"],
  // digit row
  [11, "0"], [2, "1"], [3, "2"], [4, "3"], [5, "4"], [6, "5"], [7, "6"], [8, "7"], [9, "8"], [10, "9"],
  // punctuation and space
  [57, "space"], [39, "semicolon"], [13, "equal"], [51, "comma"], [12, "minus"], [52, "period"], [53, "slash"], [41, "backquote"],
  [26, "bracketleft"], [43, "backslash"], [27, "bracketright"], [40, "quote"], [3654, "lessgreater"],
  // numeric keypad digits and operators (with NumLock they type)
  [82, "kp0"], [79, "kp1"], [80, "kp2"], [81, "kp3"], [75, "kp4"], [76, "kp5"], [77, "kp6"], [71, "kp7"], [72, "kp8"], [73, "kp9"],
  [55, "kpmultiply"], [78, "kpadd"], [74, "kpsubtract"], [83, "kpdecimal"], [3637, "kpdivide"], [3597, "kpequal"],
]);

/** Non-printable keys that become key tokens (or chords) under their name. */
export const NAMED_KEYS: ReadonlyMap<number, string> = new Map<number, string>([
  [28, "enter"], [3612, "enter"], [15, "tab"], [1, "escape"], [14, "backspace"], [3667, "delete"], [3666, "insert"],
  [57419, "left"], [57416, "up"], [57421, "right"], [57424, "down"],
  [3655, "home"], [3663, "end"], [3657, "pageup"], [3665, "pagedown"],
  [59, "f1"], [60, "f2"], [61, "f3"], [62, "f4"], [63, "f5"], [64, "f6"], [65, "f7"], [66, "f8"], [67, "f9"], [68, "f10"], [87, "f11"], [88, "f12"],
]);

export const KEY_CTRL = [29, 3613] as const;
export const KEY_ALT = 56;
/** Right Alt is AltGr on most non-US layouts: with it held, a printable key types a character (@, €, {). */
export const KEY_ALTGR = 3640;
export const KEY_SHIFT = [42, 54] as const;
export const KEY_META = [3675, 3676] as const;

const MODIFIER_CODES = new Set<number>([...KEY_CTRL, KEY_ALT, KEY_ALTGR, ...KEY_SHIFT, ...KEY_META]);

export function isModifierKey(keycode: number): boolean {
  return MODIFIER_CODES.has(keycode);
}
