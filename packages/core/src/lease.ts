import { EventEmitter } from 'eventemitter3'
import { parseAmount, type AmountLike } from './amount.js'
import { fromBase64, randomBytes, toBase64 } from './bytes.js'
import { CogpayError, isCogpayError } from './errors/cogpay-error.js'
import { ErrorCodes } from './errors/codes.js'
import { MemoryLeaseStore, type LeaseRecord, type LeaseStatus, type LeaseStore } from './lease-store.js'
import type { LeaseReceiver, LeaseStream } from './receiver.js'
import type { PaymentHeaders } from './wire.js'

/** Options of a {@link LeaseHost}. */
export interface LeaseHostOptions {
  /** The payment side that opens lease streams: `@cogpay/ilp`'s `PaymentServer`. */
  readonly receiver: LeaseReceiver
  /** Where leases are kept. Default: in memory (lost on restart). Use `FileLeaseStore` to survive one. */
  readonly store?: LeaseStore
  /**
   * How long the host waits on the payer before it stops a lease: an interval asked for and not
   * paid this long (`COGPAY_PAYMENT_STALLED`), or no answer from the payer this long
   * (`COGPAY_PAYER_UNREACHABLE`; the host sends keep-alives while it has nothing to ask).
   * Default `5000` ms.
   */
  readonly graceMs?: number
}

/** Terms of a lease, for {@link LeaseHost.open}. */
export interface LeaseOptions {
  /** Pulled per second, in the host's units. Give this or `amount`. */
  readonly ratePerSecond?: AmountLike
  /** Pulled per interval, in the host's units. Give this or `ratePerSecond`. */
  readonly amount?: AmountLike
  /** Each interval is paid at its start. Default `1000` ms. */
  readonly intervalMs?: number
  /** The application's data about the resource (JSON), kept with the lease in the store. */
  readonly meta?: Record<string, unknown>
}

/** Events of a {@link LeaseHost}. */
export interface LeaseHostEvents {
  /** Money arrived on a lease: `paid` is its new total. */
  payment: [lease: Lease, paid: bigint]
  /** A lease stopped (payment stopped, or the host ended it); `reason.code` says why. */
  stop: [lease: Lease, reason: CogpayError]
  /** The store failed to save a lease (the lease is stopped). Not `error`: an unheard one would throw. */
  storeError: [error: unknown]
}

/**
 * Leases on the host: a resource (a process, a container, a job) that a payer pays for while it
 * runs. Each lease pulls `amount` at the start of every interval over a reverse payment stream to
 * the payer, and its `signal` fires when payment stops; stop the resource then. With a persistent
 * store, `resume()` after a restart reopens every active lease where it left off.
 */
export class LeaseHost extends EventEmitter<LeaseHostEvents> {
  readonly store: LeaseStore
  readonly receiver: LeaseReceiver
  readonly graceMs: number
  readonly #live = new Map<string, Lease>()

  constructor(options: LeaseHostOptions) {
    super()
    if (typeof options?.receiver?.openLease !== 'function') {
      throw new CogpayError(ErrorCodes.INVALID_OPTIONS, 'receiver must implement openLease()')
    }
    this.receiver = options.receiver
    this.store = options.store ?? new MemoryLeaseStore()
    this.graceMs = positiveInt(options.graceMs ?? 5000, 'graceMs')
  }

  /** Leases running in this process. */
  get leases(): Lease[] {
    return [...this.#live.values()]
  }

  /** A lease running in this process. */
  get(id: string): Lease | undefined {
    return this.#live.get(id)
  }

  /**
   * Opens a lease with the payer named by `payment` (a request's payment headers) and resolves once
   * the first interval is paid: start the resource then, not before. Rejects with a `CogpayError`:
   * `COGPAY_RATE_TOO_HIGH`, `COGPAY_CAP_TOO_LOW`, `COGPAY_PAYER_REFUSED`, `COGPAY_PAYMENT_STALLED`
   * (402), `COGPAY_PAYER_UNREACHABLE` (502), `COGPAY_UPLINK_UNAVAILABLE` (503).
   */
  async open(payment: PaymentHeaders, options: LeaseOptions): Promise<Lease> {
    const { amount, intervalMs } = leaseTerms(options)
    const now = Date.now()
    const record: LeaseRecord = {
      id: toBase64(randomBytes(16), true),
      requestId: payment.requestId,
      address: payment.address,
      secret: toBase64(payment.secret, true),
      amount,
      intervalMs,
      status: 'active',
      asked: 0n,
      paid: 0n,
      lastAskAt: 0,
      createdAt: now,
      updatedAt: now,
      ...(options.meta ? { meta: options.meta } : {}),
    }
    const lease = this.#track(record)
    await lease._save({})
    await lease._start(payment, false)
    return lease
  }

  /**
   * Reopens every lease the store has as active but that is not running here (after a restart).
   * Each resumes where it was: what was paid is not asked again, and an interval asked for but not
   * yet paid is asked for again. Resolves with the leases that are running again; the others are
   * stopped, with their reason on their signal.
   */
  async resume(): Promise<Lease[]> {
    const records = (await this.store.list()).filter((r) => r.status === 'active' && !this.#live.has(r.id))
    const leases = records.map((record) => this.#track(record))
    await Promise.allSettled(
      leases.map((lease) =>
        lease._start(
          {
            address: lease.record.address,
            // A record whose secret is not base64url gets an empty one: STREAM then fails to connect.
            secret: fromBase64(lease.record.secret) ?? new Uint8Array(0),
            requestId: lease.record.requestId,
          },
          true,
        ),
      ),
    )
    return leases.filter((lease) => lease.status === 'active')
  }

  /**
   * Lets go of every running lease without ending it: timers stop and streams close without a
   * final message, so the payer keeps the lease for a resume. Call it on shutdown; the leases
   * stay active in the store.
   */
  async close(): Promise<void> {
    for (const lease of this.#live.values()) lease._suspend()
    this.#live.clear()
  }

  #track(record: LeaseRecord): Lease {
    const lease = new Lease(record, this)
    this.#live.set(record.id, lease)
    lease.signal.addEventListener('abort', () => this.#live.delete(record.id), { once: true })
    return lease
  }
}

/**
 * One lease on the host. `signal` fires when payment stops (`reason.code`: `COGPAY_CAP_TOO_LOW`,
 * `COGPAY_AUTHORIZATION_REVOKED`, `COGPAY_RATE_TOO_HIGH`, `COGPAY_PAYMENT_STALLED`,
 * `COGPAY_PAYER_UNREACHABLE`, `COGPAY_CLIENT_ABORTED`, `COGPAY_PAYMENT_FAILED`) or when the host
 * ends it (`COGPAY_LEASE_ENDED`).
 */
export class Lease {
  #record: LeaseRecord
  readonly #host: LeaseHost
  readonly #controller = new AbortController()
  #stream: LeaseStream | undefined
  /** Paid on earlier streams: this stream's totals start from here. */
  #base = 0n
  #tick: NodeJS.Timeout | undefined
  #watch: NodeJS.Timeout | undefined
  /** When the oldest unpaid ask was made. */
  #stallSince: number | undefined
  #lastPingAt = 0
  #writes: Promise<void> = Promise.resolve()
  #current: { resolve: () => void; reject: (err: unknown) => void } | undefined
  #suspended = false

  /** @internal Made by {@link LeaseHost}. */
  constructor(record: LeaseRecord, host: LeaseHost) {
    this.#record = record
    this.#host = host
  }

  get id(): string {
    return this.#record.id
  }
  /** Pulled per interval, in the host's units. */
  get amount(): bigint {
    return this.#record.amount
  }
  get intervalMs(): number {
    return this.#record.intervalMs
  }
  get status(): LeaseStatus {
    return this.#record.status
  }
  /** Received so far, in the host's units. */
  get paid(): bigint {
    return this.#record.paid
  }
  /** Asked for so far. */
  get asked(): bigint {
    return this.#record.asked
  }
  /** Intervals paid in full. */
  get intervals(): bigint {
    return this.#record.paid / this.#record.amount
  }
  get meta(): Readonly<Record<string, unknown>> | undefined {
    return this.#record.meta
  }
  /** The lease as stored (it includes the payer's secret: do not show it to anyone). */
  get record(): LeaseRecord {
    return this.#record
  }
  /** Fires when payment stops or the host ends the lease; `reason` is a `CogpayError`. */
  get signal(): AbortSignal {
    return this.#controller.signal
  }

  /** A public view: no address, no secret. */
  toJSON(): Record<string, unknown> {
    const r = this.#record
    return {
      id: r.id,
      status: r.status,
      ...(r.code ? { code: r.code } : {}),
      amount: r.amount.toString(),
      intervalMs: r.intervalMs,
      asked: r.asked.toString(),
      paid: r.paid.toString(),
      createdAt: new Date(r.createdAt).toISOString(),
    }
  }

  /** Ends the lease: no more is asked for, and the payer hears that it is over. Idempotent. */
  async end(): Promise<void> {
    await this.#finish(
      new CogpayError(ErrorCodes.LEASE_ENDED, 'the host ended the lease', { status: 410 }),
      'ended',
    )
  }

  /** Stops the lease as if payment had stopped for `reason`. Idempotent. */
  async stop(reason: CogpayError): Promise<void> {
    await this.#finish(reason, 'stopped')
  }

  /** @internal Saves the record with `changes`; saves are applied in order. */
  _save(changes: Partial<LeaseRecord>): Promise<void> {
    this.#record = { ...this.#record, ...changes, updatedAt: Date.now() }
    const record = this.#record
    const write = this.#writes.then(() => this.#host.store.put(record))
    this.#writes = write.catch(() => {})
    return write
  }

  /** @internal Opens the stream and runs; resolves once what is asked so far is paid. */
  async _start(payment: PaymentHeaders, resume: boolean): Promise<void> {
    const current = new Promise<void>((resolve, reject) => (this.#current = { resolve, reject }))
    current.catch(() => {})
    let stream: LeaseStream
    try {
      stream = await this.#host.receiver.openLease({
        payment,
        lease: { id: this.id, amount: this.amount, intervalMs: this.intervalMs, ...(resume ? { resume } : {}) },
      })
    } catch (err) {
      await this.stop(asCogpayError(err))
      throw err
    }
    if (this.status !== 'active' || this.#suspended) {
      stream.close()
      throw this.signal.reason
    }
    this.#stream = stream
    void stream.stopped.then((reason) => this.stop(reason))
    this.#watch = setInterval(() => this.#check(), Math.min(1000, Math.max(10, Math.floor(this.#host.graceMs / 4))))
    this.#watch.unref()
    // The payer says what it has paid on this lease: take it when it lies between what we recorded
    // and what we asked for (money that arrived just before a crash, before we wrote it down).
    const first = await Promise.race([
      stream.report.then((report) => ({ report })),
      stream.stopped.then((error) => ({ error })),
      delay(this.#host.graceMs).then(() => ({ report: undefined })),
    ])
    if ('error' in first) await this.stop(first.error)
    if (this.status !== 'active' || 'error' in first) throw this.signal.reason
    const report = first.report
    const changes: { paid?: bigint; address?: string; secret?: string } = {}
    const received = report?.received
    if (received !== undefined && received > this.paid && received <= this.asked) changes.paid = received
    // Where to reopen it after a restart: written down before anything is asked on this stream.
    if (report?.resume) Object.assign(changes, report.resume)
    if (changes.paid !== undefined || changes.address) await this.#guard(this._save(changes))
    if (this.status !== 'active') throw this.signal.reason
    this.#base = this.paid
    stream.onMoney((received) => this.#onMoney(this.#base + received))
    if (this.paid < this.asked) this.#ask()
    else if (this.asked > 0n) this.#current?.resolve()
    this.#schedule()
    await current
  }

  /** @internal Lets go without ending (host shutdown). */
  _suspend(): void {
    this.#suspended = true
    this.#clearTimers()
    this.#stream?.close()
    this.#current?.reject(new CogpayError(ErrorCodes.UPLINK_UNAVAILABLE, 'the host is shutting down', { status: 503 }))
  }

  #onMoney(total: bigint): void {
    if (this.#suspended || total <= this.paid) return
    // Money in flight when the lease stopped still arrives (STREAM cannot lower what was asked):
    // it is counted, so the record matches what the payer paid.
    if (this.status !== 'active') {
      void this._save({ paid: total }).catch((err: unknown) => this.#host.emit('storeError', err))
      return
    }
    void this.#guard(this._save({ paid: total }))
    this.#host.emit('payment', this, total)
    if (total >= this.asked) {
      this.#stallSince = undefined
      this.#current?.resolve()
      // The next interval was due while this one was unpaid: ask for it now.
      if (!this.#tick) this.#schedule()
    }
  }

  /** Asks for the next interval when it is due, but never while one is unpaid. */
  #schedule(): void {
    if (this.status !== 'active' || this.#suspended || this.#tick || this.paid < this.asked) return
    const due = this.#record.lastAskAt === 0 ? 0 : this.#record.lastAskAt + this.intervalMs - Date.now()
    this.#tick = setTimeout(() => void this.#next(), Math.max(0, due))
  }

  async #next(): Promise<void> {
    this.#tick = undefined
    if (this.status !== 'active' || this.#suspended) return
    // Written down before it is asked for, so a restart never asks twice for this interval.
    await this.#guard(this._save({ asked: this.asked + this.amount, lastAskAt: Date.now() }))
    if (this.status !== 'active' || this.#suspended) return
    this.#ask()
  }

  #ask(): void {
    this.#stallSince ??= Date.now()
    this.#stream?.ask(this.asked - this.#base)
  }

  #check(): void {
    const stream = this.#stream
    if (!stream || this.status !== 'active') return
    const now = Date.now()
    const grace = this.#host.graceMs
    if (this.#stallSince !== undefined && now - this.#stallSince > grace) {
      void this.stop(
        new CogpayError(
          ErrorCodes.PAYMENT_STALLED,
          `the payer did not pay an interval within ${grace} ms: asked=${this.asked} paid=${this.paid}`,
          { status: 402 },
        ),
      )
      return
    }
    const quiet = now - stream.lastAnswerAt
    if (quiet > grace) {
      void this.stop(
        new CogpayError(ErrorCodes.PAYER_UNREACHABLE, `the payer has not answered for ${quiet} ms`, { status: 502 }),
      )
      return
    }
    const pingEvery = Math.max(10, Math.floor(grace / 3))
    if (quiet >= pingEvery && now - this.#lastPingAt >= pingEvery) {
      this.#lastPingAt = now
      stream.ping()
    }
  }

  async #finish(reason: CogpayError, status: 'stopped' | 'ended'): Promise<void> {
    if (this.status !== 'active') return
    this.#clearTimers()
    const save = this._save({ status, code: reason.code })
    const stream = this.#stream
    if (stream) {
      // A payer that is gone gets nothing more: not even a close.
      if (reason.code === ErrorCodes.PAYER_UNREACHABLE) stream.destroy()
      else {
        stream.close({
          v: 1,
          final: status === 'ended' ? 'complete' : 'stopped',
          ...(status === 'stopped' ? { code: reason.code } : {}),
          charged: this.asked - this.#base,
          paid: this.paid - this.#base,
        })
      }
    }
    this.#current?.reject(reason)
    this.#controller.abort(reason)
    this.#host.emit('stop', this, reason)
    await save.catch((err: unknown) => this.#host.emit('storeError', err))
  }

  #clearTimers(): void {
    clearTimeout(this.#tick)
    clearInterval(this.#watch)
    this.#tick = undefined
  }

  /** A save that fails stops the lease: without its record, a restart could ask twice. */
  async #guard(save: Promise<void>): Promise<void> {
    try {
      await save
    } catch (err) {
      this.#host.emit('storeError', err)
      await this.stop(
        new CogpayError(ErrorCodes.PAYMENT_FAILED, `the lease store failed: ${(err as Error)?.message ?? err}`, {
          status: 500,
          cause: err,
        }),
      )
    }
  }
}

/** Parses lease terms; throws `COGPAY_INVALID_OPTIONS`. */
export function leaseTerms(options: LeaseOptions): { amount: bigint; intervalMs: number } {
  const intervalMs = positiveInt(options.intervalMs ?? 1000, 'intervalMs')
  if ((options.amount === undefined) === (options.ratePerSecond === undefined)) {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, 'give exactly one of amount (per interval) and ratePerSecond')
  }
  let amount: bigint
  try {
    if (options.amount !== undefined) amount = parseAmount(options.amount, 'amount')
    else {
      const rate = parseAmount(options.ratePerSecond, 'ratePerSecond')
      if ((rate * BigInt(intervalMs)) % 1000n !== 0n) {
        throw new Error(`ratePerSecond ${rate} does not divide into whole units per ${intervalMs} ms interval`)
      }
      amount = (rate * BigInt(intervalMs)) / 1000n
    }
  } catch (cause) {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, (cause as Error).message, { cause })
  }
  if (amount === 0n) throw new CogpayError(ErrorCodes.INVALID_OPTIONS, 'a lease must cost more than 0 per interval')
  return { amount, intervalMs }
}

function positiveInt(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `${name} must be a positive integer, got ${value}`)
  }
  return value
}

function asCogpayError(err: unknown): CogpayError {
  return isCogpayError(err)
    ? err
    : new CogpayError(ErrorCodes.PAYMENT_FAILED, `the lease could not open: ${(err as Error)?.message ?? err}`, {
        status: 502,
        cause: err,
      })
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}
