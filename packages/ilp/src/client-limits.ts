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
    const taken = keys.filter((entry): entry is readonly [string, string] => entry[1] !== undefined)
    for (const [what, key] of taken) {
      if ((this.#counts.get(`${what} ${key}`) ?? 0) >= this.max) {
        const error = new CogpayError(
          ErrorCodes.TOO_MANY_REQUESTS,
          `too many payments under way from ${what} ${key} (limit ${this.max}); try again shortly`,
          { status: 429 },
        )
        error.headers['Retry-After'] = '1'
        throw error
      }
    }
    for (const [what, key] of taken) this.#counts.set(`${what} ${key}`, (this.#counts.get(`${what} ${key}`) ?? 0) + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      for (const [what, key] of taken) {
        const left = (this.#counts.get(`${what} ${key}`) ?? 1) - 1
        if (left > 0) this.#counts.set(`${what} ${key}`, left)
        else this.#counts.delete(`${what} ${key}`)
      }
    }
  }

  /** Keys with payments under way (for tests and metrics). */
  get size(): number {
    return this.#counts.size
  }
}

/** The account a payer's address belongs to: all but its last segment (the payer's own token). */
export function payerAccount(address: string): string {
  const dot = address.lastIndexOf('.')
  return dot > 0 ? address.slice(0, dot) : address
}
