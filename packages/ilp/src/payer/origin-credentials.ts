import type { Buffer } from 'node:buffer'
import { randomBytes } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { Server } from 'ilp-protocol-stream'

/** One origin's credentials: what its server connects to, and the connection tag that names the origin. */
export interface Credentials {
  /** The STREAM connection tag: a connection that carries it is this origin's. */
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
  /** The origin of each connection tag, cached or pinned: which origin a new connection is for. */
  readonly #byName = new Map<string, string>()
  readonly #leasedOrigins: () => ReadonlySet<string>

  /** `leasedOrigins` says which origins have a live lease now. */
  constructor(max: number, leasedOrigins: () => ReadonlySet<string>) {
    this.#leasedOrigins = leasedOrigins
    this.#recent = new LRUCache({
      max,
      dispose: (credentials, origin, reason) => {
        if (reason === 'evict') this.#evicted(origin, credentials)
      },
    })
  }

  /** The credentials of `origin`, made with `server` the first time it is seen. */
  get(origin: string, server: Pick<Server, 'generateAddressAndSecret'>): Credentials {
    const known = this.#recent.get(origin)
    if (known) return known
    const pinned = this.#pinned.get(origin)
    if (pinned) {
      // Used again: the most recently used now (the cache may evict, or pin, another for it).
      this.#pinned.delete(origin)
      this.#recent.set(origin, pinned)
      return pinned
    }
    const name = randomBytes(8).toString('hex')
    const { destinationAccount, sharedSecret } = server.generateAddressAndSecret({ connectionTag: name })
    const credentials: Credentials = { name, address: destinationAccount, secret: sharedSecret }
    this.#byName.set(name, origin)
    this.#recent.set(origin, credentials)
    this.#unpinEnded()
    return credentials
  }

  /** The origin a connection tag names, while its credentials are kept. Does not count as a use. */
  originOf(name: string): string | undefined {
    return this.#byName.get(name)
  }

  /** How many origins are kept, pinned ones included. */
  get size(): number {
    return this.#recent.size + this.#pinned.size
  }

  #evicted(origin: string, credentials: Credentials): void {
    if (this.#leasedOrigins().has(origin)) this.#pinned.set(origin, credentials)
    else this.#byName.delete(credentials.name)
  }

  /** Forgets the pinned origins whose leases have all ended: they were used less recently than any cached one. */
  #unpinEnded(): void {
    if (this.#pinned.size === 0) return
    const leased = this.#leasedOrigins()
    for (const [origin, credentials] of this.#pinned) {
      if (leased.has(origin)) continue
      this.#pinned.delete(origin)
      this.#byName.delete(credentials.name)
    }
  }
}
