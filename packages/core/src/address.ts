/** Longest ILP address (RFC 15). */
export const MAX_ADDRESS_LENGTH = 1023

// RFC 15: an allocation scheme, then one or more segments of [a-zA-Z0-9_~-].
const ILP_ADDRESS = /^(g|private|example|peer|self|test[1-3]?|local)(\.[a-zA-Z0-9_~-]+)+$/

/** True when `value` is a well-formed ILP address (RFC 15). */
export function isIlpAddress(value: string): boolean {
  return value.length <= MAX_ADDRESS_LENGTH && ILP_ADDRESS.test(value)
}

/** True when `address` is `prefix` itself or lies under it (`test.a.b` is under `test.a`). */
export function isUnderAddress(address: string, prefix: string): boolean {
  return address === prefix || address.startsWith(`${prefix}.`)
}
