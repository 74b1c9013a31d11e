import { LRUCache } from 'lru-cache'
import { toBase64, utf8 } from './bytes.js'
import { CogpayError } from './errors/cogpay-error.js'
import { ErrorCodes } from './errors/codes.js'
import type { PaymentHeaders } from './wire.js'
import { Headers } from './wire.js'
import type { HeaderSource } from './wire.js'

/**
 * Idempotent retries (draft-ietf-httpapi-idempotency-key-header): one logical request, one
 * payment. A paid route keeps a record per `Idempotency-Key`, scoped to the payer that sent it
 * (its address and secret), so a retry is never charged twice:
 *
 * - first attempt still under way: the retry gets 409 `COGPAY_IDEMPOTENCY_IN_PROGRESS`;
 * - first attempt paid and served, response small enough to keep: the retry gets that response
 *   again (`Cogpay-Replayed: response`), with no payment and without running the handler;
 * - first attempt paid, and its response not kept (too large, or it failed and the money was kept
 *   under `refund: 'never'`): the retry is served as already paid (`Cogpay-Replayed: payment`):
 *   the handler runs again, with no payment, at most `maxReplays` times;
 * - first attempt not paid, or paid and refunded: no record is kept, and the retry pays as new;
 * - same key, same payer, another request (method, path and query, or body length): 422
 *   `COGPAY_IDEMPOTENCY_KEY_REUSED`.
 */
export interface IdempotencyStore {
  /**
   * Atomically: when `key` has no record, stores `{ state: 'running', fingerprint }` for `ttlMs`
   * (the running TTL: the server writes it again with `complete` while the attempt runs) and
   * resolves `undefined`; otherwise resolves the record it has.
   */
  begin(key: string, fingerprint: string, ttlMs: number): Promise<IdempotencyRecord | undefined>
  /**
   * Atomically: when `key`'s record is done, marks it `running` (keeping all else it holds) for
   * `ttlMs` and resolves the done record; otherwise changes nothing and resolves `undefined`. A
   * retry served again as already paid claims the record first, so two at once never both run.
   */
  claim(key: string, ttlMs: number): Promise<IdempotencyRecord | undefined>
  /** Replaces the record of `key` with a finished one, kept for `ttlMs`. */
  complete(key: string, record: IdempotencyRecord, ttlMs: number): Promise<void>
  /** Forgets `key`: the attempt paid nothing (or was refunded), so a retry pays as new. */
  forget(key: string): Promise<void>
}

/** What a store keeps for one key. Plain data (strings, numbers, bytes), so any store can serialise it. */
export interface IdempotencyRecord {
  readonly state: 'running' | 'done'
  /** The request it was for: method, path and query, body length. */
  readonly fingerprint: string
  /** Once done: what the first attempt paid, in the server's units, as a decimal string. */
  readonly paid?: string
  readonly price?: string
  /** Once done, when it was small enough to keep: the response, to send again. */
  readonly response?: StoredResponse
  /** Times a retry was served again as already paid (its response was not kept). */
  readonly replays?: number
}

/** A response kept for replay. */
export interface StoredResponse {
  readonly status: number
  readonly headers: readonly (readonly [string, string])[]
  readonly body: Uint8Array
}

/** Options of {@link MemoryIdempotencyStore}. */
export interface MemoryIdempotencyStoreOptions {
  /** Most records kept; past this the least recently used goes. Default `10000`. */
  readonly maxRecords?: number
  /** Most bytes of stored responses kept in all. Default 32 MiB. */
  readonly maxBytes?: number
}

/**
 * The default store: in this process's memory, bounded in records and bytes, each record kept for
 * its TTL. Records are per process: behind a load balancer, give every instance one shared store
 * (a Redis store implements the same three methods with `SET NX PX`).
 */
export class MemoryIdempotencyStore implements IdempotencyStore {
  readonly #records: LRUCache<string, IdempotencyRecord>

  constructor(options: MemoryIdempotencyStoreOptions = {}) {
    this.#records = new LRUCache({
      max: options.maxRecords ?? 10_000,
      maxSize: options.maxBytes ?? 32 * 1024 * 1024,
      sizeCalculation: (record, key) => 256 + key.length + record.fingerprint.length + (record.response?.body.byteLength ?? 0),
    })
  }

  /** Records kept now. */
  get size(): number {
    return this.#records.size
  }

  async begin(key: string, fingerprint: string, ttlMs: number): Promise<IdempotencyRecord | undefined> {
    const existing = this.#records.get(key)
    if (existing) return existing
    this.#records.set(key, { state: 'running', fingerprint }, { ttl: ttlMs })
    return undefined
  }

  async claim(key: string, ttlMs: number): Promise<IdempotencyRecord | undefined> {
    const existing = this.#records.get(key)
    if (existing?.state !== 'done') return undefined
    this.#records.set(key, { ...existing, state: 'running' }, { ttl: ttlMs })
    return existing
  }

  async complete(key: string, record: IdempotencyRecord, ttlMs: number): Promise<void> {
    this.#records.set(key, record, { ttl: ttlMs })
  }

  async forget(key: string): Promise<void> {
    this.#records.delete(key)
  }
}

let shared: MemoryIdempotencyStore | undefined

/**
 * The store paid routes use when given none: one per process, shared by all routes, so that one
 * key sent to two routes is recognised as reused (422).
 */
export function defaultStore(): MemoryIdempotencyStore {
  shared ??= new MemoryIdempotencyStore()
  return shared
}

/** Options of a paid route's idempotency (`paidRoute(price, { idempotency })`). */
export interface IdempotencyOptions {
  /** Where records are kept. Default: one {@link MemoryIdempotencyStore} per process, shared by every route. */
  readonly store?: IdempotencyStore
  /** How long a finished record is kept. Default 24 h. */
  readonly ttlMs?: number
  /**
   * How long the record of an attempt still under way lasts without news: the server writes it
   * again every third of this while the attempt runs, so a server that crashed mid-attempt frees
   * the key (its retries stop getting 409) within this. Default 60 s.
   */
  readonly runningTtlMs?: number
  /** Largest response body kept for replay, in bytes; a larger one is served as paid on a retry. Default 64 KiB. */
  readonly maxReplayBytes?: number
  /**
   * How many times a retry may be served again as already paid (its response was not kept): past
   * this, 422 `COGPAY_IDEMPOTENCY_REPLAYS_EXHAUSTED`, so one payment cannot buy the work over and
   * over. Default `3`.
   */
  readonly maxReplays?: number
}

/** The longest `Idempotency-Key` accepted, in characters (its quotes excluded). */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255

/**
 * Reads `Idempotency-Key`: `undefined` when absent; the key (an sf-string's content, or a bare
 * token) when valid; a 400 `COGPAY_INVALID_IDEMPOTENCY_KEY` when sent twice, empty, too long, or
 * not visible ASCII.
 */
export function readIdempotencyKey(get: HeaderSource): string | CogpayError | undefined {
  const raw = get(Headers.idempotencyKey.toLowerCase())
  if (raw === undefined) return undefined
  const list = typeof raw === 'string' ? [raw] : raw
  if (list.length === 0) return undefined
  const bad = (why: string) =>
    new CogpayError(ErrorCodes.INVALID_IDEMPOTENCY_KEY, `${Headers.idempotencyKey} ${why}`, {
      status: 400,
    })
  if (list.length > 1) return bad(`was sent ${list.length} times; send it once`)
  let value = (list[0] ?? '').replace(/^[ \t]+/, '')
  while (value.endsWith(' ') || value.endsWith('\t')) value = value.slice(0, -1)
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1)
  if (value.length === 0) return bad('is empty')
  if (value.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    return bad(`is ${value.length} characters long; the limit is ${MAX_IDEMPOTENCY_KEY_LENGTH}`)
  }
  if (!/^[\x21-\x7e]+$/.test(value) || value.includes('"') || value.includes('\\')) {
    return bad('must be visible ASCII characters, without quotes or backslashes inside')
  }
  return value
}

/**
 * The store key of a request: its `Idempotency-Key` scoped to the payer's credentials, hashed
 * (SHA-256), so a store never holds a payer's secret and one payer's key never names another's
 * record.
 */
export function idempotencyScope(key: string, payment: PaymentHeaders): Promise<string> {
  return sha256(`cogpay-idempotency\n${payment.address}\n${toBase64(payment.secret)}\n${key}`)
}

/**
 * @internal SHA-256 of a text, base64: with the runtime's own synchronous hash where it has one
 * (`process.getBuiltinModule('node:crypto')`: Node, Bun, Deno), else Web Crypto (any runtime).
 * Web Crypto's digest is a job on Node's thread pool: two of them cost every paid request with an
 * `Idempotency-Key` two trips through it (6 % of a paid server's CPU in the bench).
 */
export async function sha256(text: string): Promise<string> {
  const bytes = new Uint8Array(utf8(text))
  const nodeHash = nodeCreateHash()
  if (nodeHash) return toBase64(new Uint8Array(nodeHash('sha256').update(bytes).digest()))
  const digest = await globalThis.crypto.subtle.digest('SHA-256', bytes)
  return toBase64(new Uint8Array(digest))
}

type CreateHash = (algorithm: string) => { update(data: Uint8Array): { digest(): Uint8Array } }
let createHash: CreateHash | null | undefined

/** node:crypto's createHash, when the runtime can hand it out without an import; else null. */
function nodeCreateHash(): CreateHash | null {
  if (createHash === undefined) {
    try {
      const runtime = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process
      const crypto = runtime?.getBuiltinModule?.('node:crypto') as { createHash?: CreateHash } | undefined
      createHash = typeof crypto?.createHash === 'function' ? crypto.createHash : null
    } catch {
      createHash = null
    }
  }
  return createHash
}

/** @internal Checks idempotency options; `false` turns it off. */
export function idempotencyOptions(value: IdempotencyOptions | false | undefined): Required<IdempotencyOptions> | undefined {
  if (value === false) return undefined
  const ttlMs = value?.ttlMs ?? 24 * 60 * 60 * 1000
  const maxReplayBytes = value?.maxReplayBytes ?? 64 * 1024
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `idempotency.ttlMs must be a positive integer, got ${ttlMs}`)
  }
  if (!Number.isSafeInteger(maxReplayBytes) || maxReplayBytes < 0) {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `idempotency.maxReplayBytes must be an integer >= 0, got ${maxReplayBytes}`)
  }
  const runningTtlMs = value?.runningTtlMs ?? 60_000
  if (!Number.isSafeInteger(runningTtlMs) || runningTtlMs < 3) {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `idempotency.runningTtlMs must be an integer >= 3, got ${runningTtlMs}`)
  }
  const maxReplays = value?.maxReplays ?? 3
  if (!Number.isSafeInteger(maxReplays) || maxReplays < 0) {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `idempotency.maxReplays must be an integer >= 0, got ${maxReplays}`)
  }
  const store = value?.store ?? defaultStore()
  for (const method of ['begin', 'claim', 'complete', 'forget'] as const) {
    if (typeof store[method] !== 'function') {
      throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `idempotency.store must implement begin(), claim(), complete() and forget()`)
    }
  }
  return { store, ttlMs, runningTtlMs, maxReplayBytes, maxReplays }
}
