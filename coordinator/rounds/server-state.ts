/** Server-optimizer state (momentum / Adam moments) ↔ JSON for the checkpoint metadata. */
import type { ServerOptimizerState } from "../../shared/model/index.ts";

interface StateJson {
  step: number;
  m?: string;
  v?: string;
}

const enc = (a: Float32Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
const dec = (s: string): Float32Array => {
  const b = Buffer.from(s, "base64");
  const out = new Float32Array(b.length / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
};

export function serverStateToJson(s: ServerOptimizerState): StateJson {
  return { step: s.step, ...(s.m ? { m: enc(s.m) } : {}), ...(s.v ? { v: enc(s.v) } : {}) };
}

export function serverStateFromJson(x: unknown): ServerOptimizerState | null {
  if (!x || typeof x !== "object") return null;
  const j = x as StateJson;
  return { step: Number(j.step) || 0, ...(j.m ? { m: dec(j.m) } : {}), ...(j.v ? { v: dec(j.v) } : {}) };
}
