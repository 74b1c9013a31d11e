import { parseAmount } from './amount.js'

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

/** A lease record as JSON: amounts as decimal strings. For stores that keep JSON (files, Redis). */
export function leaseRecordToJson(record: LeaseRecord): Record<string, unknown> {
  return { ...record, amount: record.amount.toString(), asked: record.asked.toString(), paid: record.paid.toString() }
}

/** A lease record from its JSON; throws on a field that is missing or of the wrong type. */
export function leaseRecordFromJson(value: unknown): LeaseRecord {
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
