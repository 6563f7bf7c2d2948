/**
 * Applying a mask: acc ± AES-128-CTR keystream (mod 2^bits), the inner loop of both the device's
 * masking and the coordinator's unmasking. The keystream is produced and added in 64 KiB slices,
 * so it is never materialised whole (no 400 KB buffers per mask for the GC) and each slice is
 * added while it is still in cache. Same keystream, same words as `expandMask`.
 */
import { createCipheriv } from "node:crypto";
import { addWordsInPlace } from "../modular/index.ts";

const SLICE_BYTES = 65_536;
/** Zero plaintext for the keystream; read-only, shared by every call. */
const ZEROS = Buffer.alloc(SLICE_BYTES);

/** acc += sign · keystream(keyAndIv) word by word, mod 2^bits (acc in `ModularVector` limb layout). */
export function addMaskInPlace(bits: number, acc: Uint32Array, keyAndIv: Uint8Array, sign: 1 | -1): void {
  const cipher = createCipheriv("aes-128-ctr", keyAndIv.subarray(0, 16), keyAndIv.subarray(16, 32));
  const totalBytes = acc.length * 4;
  const aligned = new Uint32Array(SLICE_BYTES / 4);
  for (let off = 0; off < totalBytes; off += SLICE_BYTES) {
    const len = Math.min(SLICE_BYTES, totalBytes - off);
    const ks = cipher.update(len === SLICE_BYTES ? ZEROS : ZEROS.subarray(0, len));
    const words = len / 4;
    // update's result is usually 4-byte aligned; if not, copy it into an aligned slice.
    let view: Uint32Array;
    if (ks.byteOffset % 4 === 0) view = new Uint32Array(ks.buffer, ks.byteOffset, words);
    else {
      new Uint8Array(aligned.buffer, 0, len).set(ks);
      view = aligned.subarray(0, words);
    }
    addWordsInPlace(bits, acc.subarray(off / 4, off / 4 + words), view, sign);
  }
}
