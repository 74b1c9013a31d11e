import type { Buffer } from 'node:buffer'
import { LRUCache } from 'lru-cache'
import type { StreamListener } from '@cogpay/stream'

/** Resume tokens kept per origin (a host resuming its leases after restarts); the oldest go first. */
const MAX_ALIASES = 16

/** One origin's credentials: what its server connects to, and the token in the address that names the origin. */
export interface Credentials {
  /** The token (the address's last segment): a connection to it is this origin's. */
  readonly name: string
  readonly address: string
  readonly secret: Buffer
}

/**
 * The payer's credentials per server origin: one address and secret each, so a server keeps one
 * socket to the payer. The `max` most recently used are kept (lru-cache), and the least recently
 * used is forgotten first, with one exception: an origin with a live lease is never forgotten,
 * since its host resumes the lease on a new connection that carries the origin's connection tag.
 * lru-cache evicts whatever is least recently used, so an origin it evicts while one of its
 * leases is live is pinned in a map of its own instead, until it is used again (it then goes
 * back into the cache) or a new origin arrives after its leases have ended (it is then forgotten).
 */
export class OriginCredentials {
  readonly #recent: LRUCache<string, Credentials>
  /** Origins the cache evicted while they had a live lease: forgotten once their leases end. */
  readonly #pinned = new Map<string, Credentials>()
  /** The origin of each token, cached or pinned: which origin a new connection is for. */
  readonly #byName = new Map<string, string>()
  /** Further tokens of an origin (for leases resumed on a new connection), forgotten with it. */
  readonly #aliases = new Map<string, string[]>()
  readonly #leasedOrigins: () => ReadonlySet<string>

  /** `leasedOrigins` says which origins have a live lease now. */
  constructor(max: number, leasedOrigins: () => ReadonlySet<string>) {
    this.#leasedOrigins = leasedOrigins
    this.#recent = new LRUCache({
      // At most `max` entries, each of size 1: bounded as by `max`, which lru-cache would
      // preallocate (tens of KiB per payer before it has paid anything).
      maxSize: max,
      sizeCalculation: () => 1,
      dispose: (credentials, origin, reason) => {
        if (reason === 'evict') this.#evicted(origin, credentials)
      },
    })
  }

  /** The credentials of `origin`, made with `listener` the first time it is seen. */
  get(origin: string, listener: Pick<StreamListener, 'generateCredentials'>): Credentials {
    const known = this.#recent.get(origin)
    if (known) return known
    const pinned = this.#pinned.get(origin)
    if (pinned) {
      // Used again: the most recently used now (the cache may evict, or pin, another for it).
      this.#pinned.delete(origin)
      this.#recent.set(origin, pinned)
      return pinned
    }
    const { destinationAccount, sharedSecret, token: name } = listener.generateCredentials()
    const credentials: Credentials = { name, address: destinationAccount, secret: sharedSecret }
    this.#byName.set(name, origin)
    this.#recent.set(origin, credentials)
    this.#unpinEnded()
    return credentials
  }

  /**
   * New credentials for a known origin (a host resuming a lease on a new connection, which must
   * not land on the old one): another token that names the same origin.
   */
  alias(origin: string, listener: Pick<StreamListener, 'generateCredentials'>): Credentials {
    const { destinationAccount, sharedSecret, token: name } = listener.generateCredentials()
    const aliases = this.#aliases.get(origin) ?? []
    aliases.push(name)
    if (aliases.length > MAX_ALIASES) this.#byName.delete(aliases.shift()!)
    this.#aliases.set(origin, aliases)
    this.#byName.set(name, origin)
    return { name, address: destinationAccount, secret: sharedSecret }
  }

  /** The origin a token names, while its credentials are kept. Does not count as a use. */
  originOf(name: string): string | undefined {
    return this.#byName.get(name)
  }

  /** How many origins are kept, pinned ones included. */
  get size(): number {
    return this.#recent.size + this.#pinned.size
  }

  #evicted(origin: string, credentials: Credentials): void {
    if (this.#leasedOrigins().has(origin)) this.#pinned.set(origin, credentials)
    else this.#forget(origin, credentials)
  }

  #forget(origin: string, credentials: Credentials): void {
    this.#byName.delete(credentials.name)
    for (const alias of this.#aliases.get(origin) ?? []) this.#byName.delete(alias)
    this.#aliases.delete(origin)
  }

  /** Forgets the pinned origins whose leases have all ended: they were used less recently than any cached one. */
  #unpinEnded(): void {
    if (this.#pinned.size === 0) return
    const leased = this.#leasedOrigins()
    for (const [origin, credentials] of this.#pinned) {
      if (leased.has(origin)) continue
      this.#pinned.delete(origin)
      this.#forget(origin, credentials)
    }
  }
}
