import { mkdir, open, readFile, rename } from 'node:fs/promises'
import { dirname } from 'node:path'
import { parseAmount } from './amount.js'
import { CogpayError } from './errors/cogpay-error.js'
import { ErrorCodes } from './errors/codes.js'

/** Where a lease stands. */
export type LeaseStatus = 'active' | 'stopped' | 'ended'

/**
 * A lease as a host keeps it: who pays (the payer's address and secret, so the host can reopen the
 * socket after a restart), the terms, and the money so far. Amounts are in the host's units.
 */
export interface LeaseRecord {
  readonly id: string
  /** The `Cogpay-Request-Id` of the request that opened it. */
  readonly requestId: string
  /** The payer's `Cogpay-Address`. */
  readonly address: string
  /** The payer's `Cogpay-Secret`, base64url. It lets its holder pull from the payer: keep the store private. */
  readonly secret: string
  /** Pulled at the start of each interval. */
  readonly amount: bigint
  readonly intervalMs: number
  readonly status: LeaseStatus
  /** Why it stopped (a `CogpayError` code), once stopped or ended. */
  readonly code?: string
  /** Asked for so far (written before each pull is asked for). */
  readonly asked: bigint
  /** Received so far. */
  readonly paid: bigint
  /** When the last interval was asked for (epoch ms); `0` before the first. */
  readonly lastAskAt: number
  readonly createdAt: number
  readonly updatedAt: number
  /** The application's own data about the resource (JSON), e.g. what to restart after a restart. */
  readonly meta?: Readonly<Record<string, unknown>>
}

/**
 * Where a host keeps its leases. `put` must be durable when it resolves if the store is to survive
 * a restart: the host writes what it is about to ask for *before* asking, so a restart never asks
 * twice for an interval. Implement it over any database; cogpay ships a memory store and a file store.
 */
export interface LeaseStore {
  get(id: string): Promise<LeaseRecord | undefined>
  put(record: LeaseRecord): Promise<void>
  /** Every lease kept (active ones first is not required). */
  list(): Promise<LeaseRecord[]>
}

/**
 * The default store: leases in memory, lost on restart. Keeps at most `maxRecords`; past that, the
 * oldest lease that is no longer active is forgotten.
 */
export class MemoryLeaseStore implements LeaseStore {
  readonly #records = new Map<string, LeaseRecord>()

  constructor(readonly maxRecords = 10_000) {}

  async get(id: string): Promise<LeaseRecord | undefined> {
    return this.#records.get(id)
  }

  async put(record: LeaseRecord): Promise<void> {
    this.#records.delete(record.id)
    this.#records.set(record.id, record)
    if (this.#records.size <= this.maxRecords) return
    for (const [id, old] of this.#records) {
      if (old.status !== 'active') {
        this.#records.delete(id)
        return
      }
    }
  }

  async list(): Promise<LeaseRecord[]> {
    return [...this.#records.values()]
  }
}

/**
 * Leases in one JSON file, so they survive a restart: each `put` resolves once the file holding it
 * has been written, synced and renamed into place (a crash leaves the old file or the new one,
 * never half of one). Writes are coalesced. The file is created with mode 0600: it holds payers'
 * secrets. Fine for one host process and thousands of leases; use a database beyond that.
 */
export class FileLeaseStore extends MemoryLeaseStore {
  #loaded: Promise<void> | undefined
  #dirty = false
  #writing: Promise<void> | undefined

  constructor(
    readonly path: string,
    maxRecords?: number,
  ) {
    super(maxRecords)
  }

  override async get(id: string): Promise<LeaseRecord | undefined> {
    await this.#load()
    return super.get(id)
  }

  override async list(): Promise<LeaseRecord[]> {
    await this.#load()
    return super.list()
  }

  override async put(record: LeaseRecord): Promise<void> {
    await this.#load()
    await super.put(record)
    this.#dirty = true
    while (this.#dirty) {
      if (this.#writing) {
        await this.#writing
        continue
      }
      this.#dirty = false
      this.#writing = this.#write().finally(() => (this.#writing = undefined))
      await this.#writing
    }
  }

  #load(): Promise<void> {
    this.#loaded ??= (async () => {
      let text: string
      try {
        text = await readFile(this.path, 'utf8')
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
        throw err
      }
      let records: LeaseRecord[]
      try {
        const json = JSON.parse(text) as { v?: unknown; leases?: unknown }
        if (json.v !== 1 || !Array.isArray(json.leases)) throw new Error('not a cogpay lease file (v 1)')
        records = json.leases.map(fromJson)
      } catch (cause) {
        throw new CogpayError(
          ErrorCodes.INVALID_OPTIONS,
          `lease store ${this.path} is unreadable: ${(cause as Error).message}`,
          { cause },
        )
      }
      for (const record of records) await super.put(record)
    })()
    return this.#loaded
  }

  async #write(): Promise<void> {
    const leases = (await super.list()).map(toJson)
    const temp = `${this.path}.${process.pid}.tmp`
    await mkdir(dirname(this.path), { recursive: true })
    const file = await open(temp, 'w', 0o600)
    try {
      await file.writeFile(JSON.stringify({ v: 1, leases }))
      await file.sync()
    } finally {
      await file.close()
    }
    await rename(temp, this.path)
  }
}

function toJson(record: LeaseRecord): Record<string, unknown> {
  return { ...record, amount: record.amount.toString(), asked: record.asked.toString(), paid: record.paid.toString() }
}

function fromJson(value: unknown): LeaseRecord {
  const json = value as Record<string, unknown>
  const text = (name: string) => {
    if (typeof json[name] !== 'string') throw new Error(`lease field ${name} is not a string`)
    return json[name] as string
  }
  const int = (name: string) => {
    if (!Number.isSafeInteger(json[name])) throw new Error(`lease field ${name} is not an integer`)
    return json[name] as number
  }
  const status = text('status')
  if (status !== 'active' && status !== 'stopped' && status !== 'ended') throw new Error(`lease status ${status}`)
  return {
    id: text('id'),
    requestId: text('requestId'),
    address: text('address'),
    secret: text('secret'),
    amount: parseAmount(json.amount, 'amount'),
    intervalMs: int('intervalMs'),
    status,
    ...(typeof json.code === 'string' ? { code: json.code } : {}),
    asked: parseAmount(json.asked, 'asked'),
    paid: parseAmount(json.paid, 'paid'),
    lastAskAt: int('lastAskAt'),
    createdAt: int('createdAt'),
    updatedAt: int('updatedAt'),
    ...(typeof json.meta === 'object' && json.meta !== null ? { meta: json.meta as Record<string, unknown> } : {}),
  }
}
