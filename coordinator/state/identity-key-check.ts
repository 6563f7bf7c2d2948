/**
 * Refuses ed25519 public keys that prove nothing. A point of small order (the identity, order
 * 2, 4 and 8 points) verifies signatures that need no private key — with the identity point as
 * key, R = identity and S = 0 verify for every message — and a non-canonical encoding
 * (y ≥ p) names a point twice. This is a check of an encoding against the known small-order
 * y-coordinates (the list libsodium's ge25519_has_small_order uses), not a new primitive.
 */
const P = (1n << 255n) - 19n;
/** y of the order-8 points (±); the other small-order points have y ∈ {0, 1, p − 1}. */
const Y_ORDER_8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022n;
const SMALL_ORDER_Y = new Set([0n, 1n, P - 1n, Y_ORDER_8, P - Y_ORDER_8]);

function littleEndian(bytes: Uint8Array): bigint {
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
  return v;
}

/** Why `raw` is not acceptable as an identity key, or undefined when it is. */
export function weakIdentityKeyReason(raw: Uint8Array): string | undefined {
  if (raw.length !== 32) return "identity public key must be 32 raw ed25519 bytes";
  const y = littleEndian(raw) & ((1n << 255n) - 1n); // the top bit is the sign of x
  if (y >= P) return "identity public key is a non-canonical encoding";
  if (SMALL_ORDER_Y.has(y)) return "identity public key is a small-order point: anyone could sign as it";
  return undefined;
}
