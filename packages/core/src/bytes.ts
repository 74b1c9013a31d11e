// Bytes without Node's Buffer: Web APIs that Node, browsers and edge runtimes all have
// (TextEncoder, atob/btoa, crypto.getRandomValues), so that core runs in any of them.

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** UTF-8 bytes of a string. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text)
}

/** A string of UTF-8 bytes, or the string itself. */
export function text(value: Uint8Array | string): string {
  return typeof value === 'string' ? value : decoder.decode(value)
}

/** How many bytes `value` takes in UTF-8. */
export function byteLength(value: Uint8Array | string): number {
  return typeof value === 'string' ? encoder.encode(value).length : value.length
}

/** Base64 (`+/`, padded) or, with `url`, base64url (`-_`, unpadded) of bytes. */
export function toBase64(bytes: Uint8Array, url = false): string {
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  const base64 = btoa(binary)
  return url ? base64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '') : base64
}

/**
 * Bytes of base64 or base64url text (padding optional), or `undefined` when it is not that.
 * Lenient like Node's decoder about trailing bits; callers that need the canonical text compare.
 */
export function fromBase64(value: string): Uint8Array | undefined {
  const standard = value.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '')
  if (!/^[A-Za-z0-9+/]*$/.test(standard) || standard.length % 4 === 1) return undefined
  const binary = atob(standard + '='.repeat((4 - (standard.length % 4)) % 4))
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

/** `length` random bytes from the platform's CSPRNG. */
export function randomBytes(length: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(length))
}
