/**
 * Picks the tfjs backend at run time: `tensorflow` if @tensorflow/tfjs-node loads (it needs
 * libtensorflow, which cannot be installed everywhere), else WebAssembly (SIMD; its .wasm
 * files ship inside the package), else the pure-JS `cpu` backend.
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
// tfjs-core's Node bundle ships no gradient kernels; the union package's Node bundle registers
// them (its ES-module path cannot be imported by Node directly).
import "@tensorflow/tfjs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

export type BackendName = "tensorflow" | "wasm" | "cpu";

let chosen: BackendName | undefined;

async function tryTensorflow(): Promise<boolean> {
  try {
    const name = "@tensorflow/tfjs-node";
    await import(/* @vite-ignore */ name);
    return tf.findBackend("tensorflow") !== null && (await tf.setBackend("tensorflow"));
  } catch {
    return false;
  }
}

async function tryWasm(): Promise<boolean> {
  try {
    const wasm = await import("@tensorflow/tfjs-backend-wasm");
    const require = createRequire(import.meta.url);
    const dist = dirname(require.resolve("@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm"));
    // Single-threaded SIMD build: each device trains on its own thread already.
    wasm.setWasmPaths(
      {
        "tfjs-backend-wasm.wasm": join(dist, "tfjs-backend-wasm.wasm"),
        "tfjs-backend-wasm-simd.wasm": join(dist, "tfjs-backend-wasm-simd.wasm"),
        "tfjs-backend-wasm-threaded-simd.wasm": join(dist, "tfjs-backend-wasm-threaded-simd.wasm"),
      },
      // false: let emscripten read the files with fs (Node's fetch cannot read local paths).
      false,
    );
    tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
    return await tf.setBackend("wasm");
  } catch {
    return false;
  }
}

/** Initialises (once per thread) and returns the backend in use. */
export async function initBackend(preferred?: BackendName): Promise<BackendName> {
  if (chosen && (!preferred || preferred === chosen)) return chosen;
  const order: BackendName[] = preferred ? [preferred, "tensorflow", "wasm", "cpu"] : ["tensorflow", "wasm", "cpu"];
  for (const b of order) {
    const ok = b === "tensorflow" ? await tryTensorflow() : b === "wasm" ? await tryWasm() : await tf.setBackend("cpu");
    if (ok) {
      await tf.ready();
      chosen = b;
      return b;
    }
  }
  throw new Error("no tfjs backend could be initialised");
}
