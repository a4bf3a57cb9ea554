/** Random ids (request ids, idempotency keys) from the Web Crypto API, in Node.js 18 too. */

interface RandomSource {
  getRandomValues<T extends Uint8Array>(array: T): T;
}

const globalCrypto = (globalThis as { crypto?: RandomSource }).crypto;
// Node.js 18 has Web Crypto only as node:crypto's webcrypto, not as a global
const source: RandomSource | undefined =
  globalCrypto?.getRandomValues !== undefined
    ? globalCrypto
    : typeof process !== "undefined" && process.versions?.node
      ? ((await import("node:crypto")).webcrypto as unknown as RandomSource)
      : undefined;

/** `bytes` random bytes as lowercase hex. */
export function randomHex(bytes: number): string {
  const data = new Uint8Array(bytes);
  if (source !== undefined) source.getRandomValues(data);
  else for (let i = 0; i < bytes; i += 1) data[i] = Math.floor(Math.random() * 256);
  return Array.from(data, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
