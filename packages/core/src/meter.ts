import { parseAmount } from './amount.js'
import { CogpayError } from './errors/cogpay-error.js'
import { ErrorCodes } from './errors/codes.js'
import type { PaymentStream } from './receiver.js'

/** Options of a {@link Meter}. */
export interface MeterOptions {
  /**
   * Prepay window, in the server's units: the meter asks for up to this much beyond what has been
   * charged, so a charge that fits in what was prepaid resolves at once and the work need not wait
   * on the payer at every step. `0n` (default): the payer pays strictly for each charge, and the
   * work waits for it. The trade-off: with `0n` the server risks one step of unpaid work (done
   * before its charge is paid); with a window the payer risks up to `ahead` paid for work not done
   * yet, and the server's work runs without waiting.
   */
  readonly ahead?: bigint
  /** A charge not paid within this long stops the meter (`COGPAY_PAYMENT_STALLED`). Default `10000` ms. */
  readonly stallTimeoutMs?: number
  /** Aborting it stops the meter (`COGPAY_CLIENT_ABORTED`): wire the client's disconnect to it. */
  readonly signal?: AbortSignal
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

  constructor(stream: PaymentStream, options: MeterOptions = {}) {
    this.#stream = stream
    this.#ahead = options.ahead ?? 0n
    this.#stallTimeoutMs = options.stallTimeoutMs ?? 10_000
    const outer = options.signal
    if (outer) {
      const onAbort = () =>
        this.stop(new CogpayError(ErrorCodes.CLIENT_ABORTED, 'the client went away', { status: 499 }))
      if (outer.aborted) onAbort()
      else outer.addEventListener('abort', onAbort, { once: true })
    }
    void stream.stopped.then((error) => this.stop(error))
    if (this.#ahead > 0n) stream.ask(this.#ahead)
  }

  /** Paid so far, in the server's units (may run up to `ahead` beyond `charged`). */
  get paid(): bigint {
    return this.#stream.received
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
    const target = this.charged
    this.#stream.ask(target + this.#ahead)
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
            `a charge was not paid within ${this.#stallTimeoutMs} ms: charged=${target} paid=${this.#stream.received}`,
            { status: 402 },
          ),
        )
      }, this.#stallTimeoutMs)
      this.signal.addEventListener('abort', onStop, { once: true })
    })
  }

  /** Stops the meter with `reason` (first reason wins) and ends the stream, telling the payer why. */
  stop(reason: CogpayError): void {
    if (this.signal.aborted) return
    this.#controller.abort(reason)
    this.#stream.close({ v: 1, final: 'stopped', code: reason.code, charged: this.charged, paid: this.paid })
  }

  /**
   * Ends the meter: the response is done. `served` (default true) says whether it was served in
   * full; the payer hears `complete`, or `stopped` with `COGPAY_HANDLER_FAILED` when it was not.
   * A meter that was stopped (its signal fired) has said so already.
   */
  finish(served = true): void {
    if (this.signal.aborted) return
    this.#stream.close(
      served
        ? { v: 1, final: 'complete', charged: this.charged, paid: this.paid }
        : { v: 1, final: 'stopped', code: ErrorCodes.HANDLER_FAILED, charged: this.charged, paid: this.paid },
    )
  }

  #throwIfStopped(): void {
    if (this.signal.aborted) throw this.signal.reason
  }
}
