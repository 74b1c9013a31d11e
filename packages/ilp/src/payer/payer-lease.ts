import type { MoneyStream } from '@cogpay/stream'
import { CloseReasons, decodeFinal, encodeLeaseReport, type LeaseTerms } from '@cogpay/core'
import type { Budget, Reservation } from './budget.js'
import { readLines, refuseStream } from './payer-streams.js'

/**
 * Where a lease stands, from the payer's side:
 * - `active`: the host is pulling on it;
 * - `interrupted`: its stream closed without an end (the host restarted, or lost its socket); the
 *   host may resume it on a new stream;
 * - `ended`: the host ended it; `stopped`: the payer stopped paying (`code` says why);
 * - `revoked`: the payer revoked it.
 */
export type PayerLeaseStatus = 'active' | 'interrupted' | 'ended' | 'stopped' | 'revoked'

/** A lease as {@link Payer.leases} lists it. */
export interface LeaseView {
  readonly id: string
  readonly origin: string
  readonly status: PayerLeaseStatus
  readonly code?: string
  /** The host's terms: `amount` (its units) every `intervalMs`. */
  readonly amount: bigint
  readonly intervalMs: number
  /** The most this lease may be paid, when the request that opened it set one. */
  readonly max?: bigint
  /** Paid on this lease, in the payer's units. */
  readonly spent: bigint
  /** What the host acknowledged receiving, in its units. */
  readonly received: bigint
  readonly startedAt: Date
}

/** How a payer's lease sees the payer: its budget for the host and its hooks. @internal */
export interface LeaseContext {
  readonly budget: Budget
  /** Same asset code and scale on both sides: host amounts compare with ours directly. */
  readonly sameAsset: boolean
  /** Called with every amount paid, in the payer's units. */
  onSpend(amount: bigint): void
  /** Fresh credentials for this host, for the next stream of this lease. */
  resumeCredentials(): { address: string; secret: string }
}

/**
 * One lease, the payer's side: the host pulls on a stream; the payer pays what it asks within the
 * host's budget (its total and its rate cap, shared with the host's requests) and this lease's own
 * cap. It outlives the stream: a host that restarts resumes it on a new one, and the
 * payer tells it what it had already received, so no interval is paid twice.
 */
export class PayerLease {
  status: PayerLeaseStatus = 'active'
  code: string | undefined
  spent = 0n
  /** Acknowledged by the host on earlier streams, in its units. */
  received = 0n
  stream: MoneyStream | undefined
  readonly startedAt = new Date()
  #reservation: Reservation | undefined
  #timer: NodeJS.Timeout | undefined

  constructor(
    readonly id: string,
    readonly origin: string,
    public terms: LeaseTerms,
    /** The most this lease may be paid in all, in the payer's units (besides the host's budget). */
    readonly max: bigint | undefined,
  ) {}

  get live(): boolean {
    return this.status === 'active' || this.status === 'interrupted'
  }

  view(): LeaseView {
    return {
      id: this.id,
      origin: this.origin,
      status: this.status,
      ...(this.code ? { code: this.code } : {}),
      amount: this.terms.amount,
      intervalMs: this.terms.intervalMs,
      ...(this.max === undefined ? {} : { max: this.max }),
      spent: this.spent,
      received: this.received,
      startedAt: this.startedAt,
    }
  }

  /**
   * Takes a (new) stream for this lease: reports what the host has received so far, then pays as
   * the host asks, within the rate cap and the budget.
   */
  attach(stream: MoneyStream, rest: Uint8Array, context: LeaseContext): void {
    const old = this.stream
    if (old && old.isOpen) old.destroy()
    this.stream = stream
    this.status = 'active'
    const receivedBefore = this.received
    stream.write(encodeLeaseReport({ v: 1, lease: this.id, received: this.received, resume: context.resumeCredentials() }))
    readLines(stream, rest, (line) => {
      const final = decodeFinal(line)
      if (!final || !this.live) return
      this.status = final.final === 'complete' ? 'ended' : 'stopped'
      if (final.code) this.code = final.code
      this.#detach()
    })
    const every = context.budget.rate ? Math.floor(context.budget.rate.intervalMs / 10) : 100
    /** While the host waits on the rate cap (or another asset), look again as tokens come back. */
    const waiting = (on: boolean) => {
      if (on && !this.#timer) {
        this.#timer = setInterval(check, Math.min(1000, Math.max(10, every)))
        this.#timer.unref()
      } else if (!on && this.#timer) {
        clearInterval(this.#timer)
        this.#timer = undefined
      }
    }
    const check = () => {
      if (this.stream !== stream || this.status !== 'active' || !stream.isOpen) return
      const outstanding = stream.remoteReceiveMax - stream.remoteReceived
      // Consent to pull over time withdrawn (authorized again without a rate cap): no more.
      if (outstanding > 0n && !context.budget.rate) return this.stop(CloseReasons.leaseNotAuthorized)
      if (outstanding <= 0n) {
        // Paid up: give back what was held, so the host's other requests may use it.
        this.#reservation?.release()
        this.#reservation = undefined
        waiting(false)
        return
      }
      if (context.sameAsset) {
        // A host asking for more than one interval at once breaks its own terms.
        if (outstanding > this.terms.amount) return this.stop(CloseReasons.rateTooHigh)
        // More than the budget, or this lease's own cap, has left: it can never be paid in full.
        if (context.budget.total - context.budget.spent < outstanding) return this.stop(CloseReasons.capTooLow)
        if (this.max !== undefined && this.max - this.spent < outstanding) return this.stop(CloseReasons.capTooLow)
      }
      const allowed = this.#refresh(stream, context, outstanding)
      waiting(!context.sameAsset || allowed < outstanding)
    }
    stream.on('outgoingMoney', (amount) => {
      this.spent += amount
      // Money in flight when the reservation was let go still counts against the budget.
      if (this.#reservation) this.#reservation.spend(amount)
      else context.budget.record(amount)
      this.received = receivedBefore + stream.remoteReceived
      context.onSpend(amount)
      check()
    })
    // The host raising its ask arrives as its StreamMaxMoney.
    stream.on('remoteReceiveMax', () => {
      this.received = receivedBefore + stream.remoteReceived
      check()
    })
    stream.once('close', () => {
      if (this.stream === stream) {
        if (this.status === 'active') this.status = 'interrupted'
        this.#detach()
      }
    })
    // Nothing is allowed before the host asks: sendMax rises only when an ask is seen (its
    // StreamMaxMoney), and only if the whole ask fits in the budget, so an interval
    // that can never be paid in full is not paid in part.
    check()
  }

  /** Stops paying on this lease for good (`reason` is a close reason the host maps to an error). */
  stop(reason: string, status: PayerLeaseStatus = 'stopped'): void {
    if (!this.live) return
    this.status = status
    this.code = reason
    const stream = this.stream
    this.#detach()
    if (stream) refuseStream(stream, reason)
  }

  /** Drops the stream without a word (the payer is closing). */
  destroy(): void {
    const stream = this.stream
    this.#detach()
    stream?.destroy()
  }

  /** Re-reserves what this ask needs (within the budget, its rate cap and this lease's cap) and lets STREAM send it. */
  #refresh(stream: MoneyStream, context: LeaseContext, outstanding: bigint): bigint {
    this.#reservation?.release()
    let want = context.sameAsset ? outstanding : context.budget.total
    if (this.max !== undefined && this.max - this.spent < want) want = this.max - this.spent
    this.#reservation = context.budget.reserve(want > 0n ? want : 0n)
    // STREAM enforces sendMax in our own units: at most what was reserved.
    stream.setSendMax(stream.totalSent + this.#reservation.limit)
    return this.#reservation.limit
  }

  #detach(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#reservation?.release()
    this.#reservation = undefined
    const stream = this.stream
    if (stream?.isOpen) stream.setSendMax(stream.totalSent)
  }
}
