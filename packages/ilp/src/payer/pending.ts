import { EventEmitter } from 'node:events'
import type { MoneyStream } from '@cogpay/stream'
import { CloseReasons, decodeFinal, type PaymentHeaders, type StreamFinal } from '@cogpay/core'
import type { Reservation } from './budget.js'
import type { PayerLease } from './payer-lease.js'
import { closeAfterGrace, refuseStream, settled, stopPaying } from './payer-streams.js'

/** One request's payment, from the payer's side. */
export interface PendingPayment {
  readonly requestId: string
  readonly origin: string
  /** The cap for this request, in the payer's units. */
  readonly maxSpend: bigint
  /** Paid so far for this request, in the payer's units (fulfilled packets only). */
  readonly spent: bigint
  /** Paid back by the server so far (refunds of a failed request), in the payer's units. */
  readonly refunded: bigint
  /** True once the payer refused or stopped because the server wanted more than `maxSpend`. */
  readonly capReached: boolean
  /** True once the host's budget was revoked while this request was under way. */
  readonly revoked: boolean
  /** The payment headers to send with the request. */
  readonly headers: PaymentHeaders
  /**
   * Ends this request's payment, once the server's answer is final: stops paying on its stream
   * and waits (at most `settleTimeoutMs`) for the packets in flight to be answered, so that
   * `spent` is exact. Returns `spent`.
   */
  finish(settleTimeoutMs?: number): Promise<bigint>
  /** Stops paying at once and tells the server the request was aborted. Returns `spent`. */
  abort(): bigint
  /**
   * The server's final message on a metered stream (how the response ended, and its totals):
   * resolves with it, or `undefined` when none arrives within `timeoutMs` or the stream closes first.
   */
  waitFinal(timeoutMs: number): Promise<StreamFinal | undefined>
  /**
   * Waits for a refund the server announced (`Cogpay-Refund`, or `refund` in a final message):
   * resolves with `refunded` once a refund stream for this request has closed, or after
   * `timeoutMs`, whichever is first.
   */
  waitRefund(timeoutMs: number): Promise<bigint>
}

/**
 * A request in flight, from `expect()` to `finish()` or `abort()`: its cap, what it paid and had
 * back, its stream, and what its waits wait on. @internal
 */
export class Pending implements PendingPayment {
  spent = 0n
  refunded = 0n
  /** The refund stream under way, if any: one at a time, so refunds never exceed what was paid. */
  refundStream: MoneyStream | undefined
  /** Refund streams that have closed. */
  refundsClosed = 0
  capReached = false
  revoked = false
  /** Its share of the host's budget, when the host has one (set when its stream is matched). */
  reservation: Reservation | undefined
  stream: MoneyStream | undefined
  /** Leases this request opened: an aborted request (its client never saw the answer) stops them. */
  readonly leases: PayerLease[] = []
  finished = false
  /** What the stream had in flight or in doubt when it closed, once the request let go of it. */
  #unsettled = 0n
  final: StreamFinal | undefined
  /** The final message, a refund stream closing, the stream arriving: what this request's waits wait on. */
  readonly #events = new EventEmitter()

  constructor(
    readonly requestId: string,
    readonly origin: string,
    readonly maxSpend: bigint,
    readonly headers: PaymentHeaders,
    readonly release: (pending: Pending) => void,
    readonly onSpend: ((spent: bigint, asked: bigint) => void) | undefined,
    readonly leaseMax: bigint | undefined,
  ) {}

  /** Called with each line the server writes after its hello. */
  onLine(line: Uint8Array): void {
    const final = decodeFinal(line)
    if (final && !this.final) {
      this.final = final
      this.#events.emit('final')
    }
  }

  waitFinal(timeoutMs: number): Promise<StreamFinal | undefined> {
    if (this.final) return Promise.resolve(this.final)
    if (this.stream && !this.stream.isOpen) return Promise.resolve(undefined)
    // The stream may not have arrived yet: a body that needed no payment (a retry with a credit)
    // can end before the server's hello has. Wait for it too, within the same time.
    return new Promise((resolve) => {
      let stream: MoneyStream | undefined
      const done = () => {
        clearTimeout(timer)
        this.#events.removeListener('final', done)
        this.#events.removeListener('stream', watch)
        stream?.off('close', done)
        resolve(this.final)
      }
      const watch = () => {
        stream = this.stream
        stream?.once('close', done)
      }
      const timer = setTimeout(done, timeoutMs)
      this.#events.once('final', done)
      if (this.stream) watch()
      else this.#events.once('stream', watch)
    })
  }

  /**
   * Money that earlier streams of this request had in flight or in doubt when a later one took
   * over: it may have arrived, so it counts against the cap (see payUnderCap). Read when the next
   * stream is matched; money of it that settles later is counted in `spent` as well, so the cap
   * errs on the safe side.
   */
  earlierUnsettled = 0n

  /** Called when this request's payment stream is matched. */
  attached(stream: MoneyStream): void {
    const earlier = this.stream
    if (earlier && earlier !== stream) this.earlierUnsettled += earlier.inFlight + earlier.inDoubt
    this.stream = stream
    this.#events.emit('stream')
  }

  waitRefund(timeoutMs: number): Promise<bigint> {
    const done = () => this.refundsClosed > 0 && !this.refundStream
    if (done()) return Promise.resolve(this.refunded)
    return new Promise((resolve) => {
      const finish = () => {
        if (!done() && Date.now() < deadline) return
        clearTimeout(timer)
        this.#events.removeListener('refund', finish)
        resolve(this.refunded)
      }
      const deadline = Date.now() + timeoutMs
      const timer = setTimeout(finish, timeoutMs)
      this.#events.on('refund', finish)
    })
  }

  /**
   * What a refund may still bring back: what was paid, less what came back. Money the request's
   * stream has in flight (or in doubt) counts as paid here: the server refunds what it received,
   * and the Fulfill of its last packet may still be on its way back when the refund starts. The
   * cap counts that money as spent too.
   */
  get refundable(): bigint {
    const unsettled = this.stream ? this.stream.inFlight + this.stream.inDoubt : this.#unsettled
    const left = this.spent + unsettled - this.refunded
    return left > 0n ? left : 0n
  }

  /**
   * Accepts a refund on `stream`: at most what this request paid and has not had back, in our own
   * units (STREAM's receive max). Nothing is ever sent on it.
   */
  acceptRefund(stream: MoneyStream, onRefund: (amount: bigint) => void): void {
    this.refundStream = stream
    stream.setReceiveMax(this.refundable)
    stream.on('money', (amount) => {
      this.refunded += amount
      onRefund(amount)
    })
    stream.once('close', () => {
      this.refundStream = undefined
      this.refundsClosed++
      this.#events.emit('refund')
    })
    closeAfterGrace(stream)
  }

  abort(): bigint {
    if (!this.finished) {
      this.finished = true
      if (this.stream) refuseStream(this.stream, CloseReasons.aborted)
      for (const lease of this.leases) lease.stop(CloseReasons.aborted)
      this.reservation?.release()
      this.release(this)
      this.#letGoOfStream()
    }
    return this.spent
  }

  /**
   * A finished request may be kept a while for its refund: it lets go of its stream once that
   * has closed, keeping only what the stream had unsettled (in flight or in doubt) for
   * `refundable`, so a payer holds a few numbers per recent request, not a closed stream.
   */
  #letGoOfStream(): void {
    const stream = this.stream
    if (!stream) return
    // Only once nothing is in flight: money in flight settles later (into `spent`, or not at
    // all), and a snapshot of it would be counted twice. A stream that closed with money in
    // flight is kept (read live), which is rare.
    const drop = () => {
      if (stream.inFlight !== 0n || this.stream !== stream) return
      this.#unsettled = stream.inDoubt
      this.stream = undefined
    }
    if (stream.isOpen) stream.once('close', drop)
    else drop()
  }

  async finish(settleTimeoutMs = 2000): Promise<bigint> {
    if (this.finished) return this.spent
    this.finished = true
    const stream = this.stream
    if (stream) stopPaying(stream)
    if (stream && !this.capReached && !this.revoked) await settled(stream, settleTimeoutMs)
    this.reservation?.release()
    this.release(this)
    this.#letGoOfStream()
    return this.spent
  }
}
