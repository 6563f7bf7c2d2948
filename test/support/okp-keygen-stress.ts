/**
 * Test support (run as a child process by test/okp-keys.test.ts): makes argv[2] X25519 key
 * pairs, and an Ed25519 pair every tenth time, the way SecAgg devices and enrollment do, then
 * prints "done". Run with a tiny young generation so garbage collections land inside key exports.
 */
import { generateEd25519 } from "../../shared/crypto/index.ts";
import { generateX25519 } from "../../shared/secagg/x25519.ts";

const n = Number(process.argv[2]);
for (let i = 0; i < n; i++) {
  generateX25519();
  if (i % 10 === 0) generateEd25519();
}
process.stdout.write("done\n");
