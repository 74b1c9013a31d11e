import { CogpayError, ErrorCodes } from '@cogpay/core'

/**
 * Per-client admission: how many payments each client may have unsettled at once, counted by
 * every key that names it (its remote IP, its payer's account on the ILP network). One client's
 * slow or never-answering requests then use up its own share, not the server-wide limits that
 * every other client needs. Memory is bounded by the requests under way: a key at zero is dropped.
 */
export class ClientLimits {
  readonly #counts = new Map<string, number>()

  constructor(readonly max: number) {}

  /**
   * Takes one slot under each key, or throws 429 `COGPAY_TOO_MANY_REQUESTS` (with `Retry-After`)
   * naming the key that is full. Returns the release, which is idempotent.
   */
  take(keys: readonly (readonly [what: string, key: string | undefined])[]): () => void {
    const names = keys.flatMap(([what, key]) => (key === undefined ? [] : [`${what} ${key}`]))
    const full = names.find((name) => (this.#counts.get(name) ?? 0) >= this.max)
    if (full !== undefined) {
      const error = new CogpayError(
        ErrorCodes.TOO_MANY_REQUESTS,
        `too many payments under way from ${full} (limit ${this.max}); try again shortly`,
        { status: 429 },
      )
      error.headers['Retry-After'] = '1'
      throw error
    }
    for (const name of names) this.#counts.set(name, (this.#counts.get(name) ?? 0) + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      for (const name of names) {
        const left = (this.#counts.get(name) ?? 1) - 1
        if (left > 0) this.#counts.set(name, left)
        else this.#counts.delete(name)
      }
    }
  }
}

/** The account a payer's address belongs to: all but its last segment (the payer's own token). */
export function payerAccount(address: string): string {
  const dot = address.lastIndexOf('.')
  return dot > 0 ? address.slice(0, dot) : address
}
