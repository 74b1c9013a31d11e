import { parseAmount } from './amount.js'
import { CogpayError } from './errors/cogpay-error.js'
import { ErrorCodes } from './errors/codes.js'
import type { PaymentStream } from './receiver.js'
import type { StreamFinal } from './socket-messages.js'

/** Options of a {@link Meter}. */
export interface MeterOptions {
  /**
   * Prepay window, in the server's units: the meter asks for up to this much beyond what has been
   * charged, so a charge that fits in what was prepaid resolves at once and the work need not wait
   * on the payer at every step. `0n` (default): the payer pays strictly for each charge, and the
   * work waits for it. The trade-off: with `0n` the server risks one step of unpaid work (done
   * before its charge is paid); with a window the payer risks up to `ahead` paid for work not done
   * yet, and the server's work runs without waiting. The ask goes up once half the window is
   * used (to `ahead` past the charges again): half a window or more a packet, not a packet a step.
   */
  readonly ahead?: bigint
  /** A charge not paid within this long stops the meter (`COGPAY_PAYMENT_STALLED`). Default `10000` ms. */
  readonly stallTimeoutMs?: number
  /** Aborting it stops the meter (`COGPAY_CLIENT_ABORTED`): wire the client's disconnect to it. */
  readonly signal?: AbortSignal
  /**
   * Pays money back to the payer (see `PaymentReceiver.refund`). Without it the meter refunds
   * nothing, and `refund()` throws.
   */
  readonly refund?: (amount: bigint) => Promise<bigint>
  /**
   * `'on-error'` (default): when the response fails, everything paid is paid back, and when it
   * ends otherwise, what was prepaid beyond the charges. `'never'`: only what the handler refunds
   * itself with {@link Meter.refund}.
   */
  readonly refundPolicy?: 'on-error' | 'never'
  /**
   * Already paid for this logical request (an idempotent retry of one that paid this much): charges
   * up to it are not asked of the payer again. Counted in `paid`, never refunded. Default `0n`.
   */
  readonly credit?: bigint
}

/**
 * Charges for work as it proceeds, over one payment stream. `charge(n)` raises what the server
 * asks for by `n` and resolves once it is paid. `signal` fires when the payer stops paying (its cap
 * is reached, it aborted, the socket died, or payment stalled); its `reason` is a `CogpayError`
 * whose code says which, and every later `charge` rejects with it.
 */
export class Meter {
  /** Charged so far, in the server's units. */
  charged = 0n
  readonly #stream: PaymentStream
  readonly #ahead: bigint
  readonly #stallTimeoutMs: number
  readonly #controller = new AbortController()
  readonly #refund: ((amount: bigint) => Promise<bigint>) | undefined
  readonly #refundPolicy: 'on-error' | 'never'
  /** What the handler refunded itself, to be paid back when the meter ends. */
  #refundDue = 0n
  #ended = false
  /** The total last asked of the payer on the stream. */
  #asked = 0n
  readonly #credit: bigint
  #settleRefund!: (refunded: bigint) => void
  /** Resolves with what was paid back once the meter has ended (`0n` when nothing was). */
  readonly refunded: Promise<bigint> = new Promise((resolve) => (this.#settleRefund = resolve))

  constructor(stream: PaymentStream, options: MeterOptions = {}) {
    this.#stream = stream
    this.#ahead = options.ahead ?? 0n
    this.#stallTimeoutMs = options.stallTimeoutMs ?? 10_000
    this.#refund = options.refund
    this.#refundPolicy = options.refundPolicy ?? 'on-error'
    this.#credit = options.credit ?? 0n
    const outer = options.signal
    if (outer) {
      const onAbort = () =>
        this.stop(new CogpayError(ErrorCodes.CLIENT_ABORTED, 'the client went away', { status: 499 }))
      if (outer.aborted) onAbort()
      else outer.addEventListener('abort', onAbort, { once: true })
    }
    void stream.stopped.then((error) => this.stop(error))
    if (this.#ahead > 0n && this.#credit === 0n) stream.ask((this.#asked = this.#ahead))
  }

  /** Paid so far, in the server's units (may run up to `ahead` beyond `charged`), any credit included. */
  get paid(): bigint {
    return this.#stream.received + this.#credit
  }

  /** Fires when the payer stops paying; `signal.reason` is a `CogpayError` saying why. */
  get signal(): AbortSignal {
    return this.#controller.signal
  }

  /** The asset charges are in. */
  get asset() {
    return this.#stream.asset
  }

  /**
   * Adds `amount` to what is charged and resolves once it is paid. Rejects with `signal.reason`
   * when the meter stops first.
   */
  async charge(amount: bigint | string): Promise<void> {
    const value = parseAmount(amount, 'charge')
    this.#throwIfStopped()
    this.charged += value
    // What the payer must have paid on this stream: the charges beyond the credit.
    const target = this.charged > this.#credit ? this.charged - this.#credit : 0n
    if (target === 0n) return
    // With a window, the ask goes up once what is left of it is half gone: each raise asks for at
    // least half a window, which the payer pays in one packet, rather than one step a packet. It
    // never runs more than `ahead` past what is charged.
    if (this.#asked < target || this.#asked - target <= this.#ahead / 2n) {
      this.#asked = target + this.#ahead
      this.#stream.ask(this.#asked)
    }
    if (this.#stream.received >= target) return
    await new Promise<void>((resolve, reject) => {
      const done = (error?: unknown) => {
        clearTimeout(timer)
        unsubscribe()
        this.signal.removeEventListener('abort', onStop)
        if (error) reject(error)
        else resolve()
      }
      const onStop = () => done(this.signal.reason)
      const unsubscribe = this.#stream.onMoney((received) => {
        if (received >= target) done()
      })
      const timer = setTimeout(() => {
        this.stop(
          new CogpayError(
            ErrorCodes.PAYMENT_STALLED,
            `a charge was not paid within ${this.#stallTimeoutMs} ms: charged=${this.charged} paid=${this.paid}`,
            { status: 402 },
          ),
        )
      }, this.#stallTimeoutMs)
      this.signal.addEventListener('abort', onStop, { once: true })
    })
  }

  /**
   * Pays `amount` of what was paid back to the payer, when the meter ends (the final message names
   * the total refund; the money follows on a refund stream). For work the handler charged for and
   * then could not deliver. At most what was paid and not refunded yet.
   */
  refund(amount: bigint | string): void {
    const value = parseAmount(amount, 'refund')
    if (!this.#refund) throw new CogpayError(ErrorCodes.INVALID_OPTIONS, 'this meter cannot refund: its receiver has no refund()')
    if (this.#ended) throw new CogpayError(ErrorCodes.INVALID_AMOUNT, 'the meter has ended; refund before the response is done')
    if (this.#refundDue + value > this.#stream.received) {
      throw new CogpayError(
        ErrorCodes.INVALID_AMOUNT,
        `cannot refund ${value}: paid=${this.paid}, already refunding ${this.#refundDue}`,
      )
    }
    this.#refundDue += value
  }

  /** Stops the meter with `reason` (first reason wins) and ends the stream, telling the payer why. */
  stop(reason: CogpayError): void {
    if (this.signal.aborted) return
    this.#controller.abort(reason)
    this.#end({ v: 1, final: 'stopped', code: reason.code, charged: this.charged, paid: this.paid }, false)
  }

  /**
   * Ends the meter: the response is done. `served` (default true) says whether it was served in
   * full; the payer hears `complete`, or `stopped` with `COGPAY_HANDLER_FAILED` when it was not.
   * A meter that was stopped (its signal fired) has said so already.
   */
  finish(served = true): void {
    if (this.signal.aborted) return
    this.#end(
      served
        ? { v: 1, final: 'complete', charged: this.charged, paid: this.paid }
        : { v: 1, final: 'stopped', code: ErrorCodes.HANDLER_FAILED, charged: this.charged, paid: this.paid },
      !served,
    )
  }

  /** Writes the final message (naming the refund), closes the stream, then pays the refund back. */
  #end(ending: StreamFinal, failed: boolean): void {
    let final = ending
    if (this.#ended) return
    this.#ended = true
    // Nothing more moves: a prepaid window still being paid stops here, so the totals below are final.
    this.#stream.freeze?.()
    final = { ...final, paid: this.paid }
    // Only what arrived on this stream can be paid back (a credit was paid, and kept, before).
    const paid = this.#stream.received
    let refund = this.#refundDue
    if (this.#refund && this.#refundPolicy === 'on-error') {
      // A failed response: none of it was delivered whole. Otherwise: what was prepaid for work
      // never done, on top of what the handler refunded itself.
      const excess = final.paid > this.charged ? final.paid - this.charged : 0n
      refund = failed ? paid : refund + excess
    }
    if (refund > paid) refund = paid
    if (!this.#refund || refund === 0n) {
      this.#stream.close(final)
      return this.#settleRefund(0n)
    }
    this.#stream.close({ ...final, refund })
    this.#refund(refund).catch(() => 0n).then(this.#settleRefund)
  }

  #throwIfStopped(): void {
    if (this.signal.aborted) throw this.signal.reason
  }
}
