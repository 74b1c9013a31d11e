import { parseAmount, type AmountLike } from './amount.js'
import { CogpayError, isCogpayError } from './errors/cogpay-error.js'
import { ErrorCodes } from './errors/codes.js'
import { Meter } from './meter.js'
import { capBelow, idempotentRetry, refundPolicy, respondWithError, type PaywallInput, type PaywallOutcome } from './paywall.js'
import { createPriceResolver, type PriceSpec } from './price.js'
import type { PaymentReceiver } from './receiver.js'
import type { RefundPolicy } from './route-options.js'
import { idempotencyOptions, type IdempotencyOptions, type StoredResponse } from './idempotency.js'
import { Headers, announcedCapBelow, parsePaymentHeaders } from './wire.js'

/** Options of a metered route. */
export interface MeteringOptions<Req = unknown> {
  /** Where payments are collected. */
  readonly receiver: PaymentReceiver
  /** Prepay window in the server's units (see `MeterOptions.ahead`). Default `0`: pay after each step. */
  readonly ahead?: AmountLike
  /** A charge not paid within this long stops the meter. Default `10000` ms. */
  readonly stallTimeoutMs?: number
  /**
   * The most this request may cost, when known (a fixed amount, or a function of the request).
   * A payer that announced a lower cap in the same asset (`Cogpay-Max-Spend`) is refused with 402
   * before any work or socket; the 402 body names it as the amount.
   */
  readonly maxPrice?: PriceSpec<Req>
  /** What happens to the money when the handler fails (see `MeterOptions.refundPolicy`). Default `'on-error'`. */
  readonly refund?: RefundPolicy
  /**
   * Retries with the same `Idempotency-Key` are never charged twice: 409 while the first runs; once
   * it was served, its stored response, or (too large to keep) the work again with what the first
   * paid as a credit (only charges beyond it are asked again); 422 for another request. On by
   * default (see `PaidRouteOptions.idempotency`); `false` turns it off.
   */
  readonly idempotency?: IdempotencyOptions | false
}

/** What a metered route's adapter must do: like {@link PaywallOutcome}, with a meter to expose. */
export type MeteringOutcome =
  | Exclude<PaywallOutcome, { type: 'proceed' }>
  | {
      readonly type: 'proceed'
      /** Headers to set before the handler runs. */
      readonly headers: Readonly<Record<string, string>>
      readonly meter: Meter
      /** The totals so far, as headers: set them when the response headers go out. */
      totals(): Record<string, string>
      /**
       * Ends the meter's stream: call it when the response is done, with whether it was served in
       * full (sent to its end with a status below 500), and the response as sent when
       * `replayBytes` asked for it. A response that was not served ends `stopped` with
       * `COGPAY_HANDLER_FAILED`, so the client never reads a failed response as whole.
       */
      finish(served: boolean, response?: StoredResponse): void
      /** Keep the response (status, headers, body up to this many bytes) and pass it to `finish`. */
      readonly replayBytes?: number
    }

/** The framework-free core of `meteredRoute`. */
export interface Metering<Req> {
  handle(input: PaywallInput<Req>): Promise<MeteringOutcome>
}

/** Creates a metered route's core. Options are checked now. */
export function createMetering<Req>(options: MeteringOptions<Req>): Metering<Req> {
  const receiver = options.receiver
  if (typeof receiver?.open !== 'function' || typeof receiver.asset !== 'function') {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, 'receiver must implement asset() and open()')
  }
  let ahead: bigint
  try {
    ahead = parseAmount(options.ahead ?? 0n, 'ahead')
  } catch (cause) {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, (cause as Error).message, { cause })
  }
  const maxPrice = options.maxPrice === undefined ? undefined : createPriceResolver(options.maxPrice)
  const policy = refundPolicy(options.refund)
  const idempotency = idempotencyOptions(options.idempotency)
  const stallTimeoutMs = options.stallTimeoutMs ?? 10_000
  if (!Number.isSafeInteger(stallTimeoutMs) || stallTimeoutMs <= 0) {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `stallTimeoutMs must be a positive integer, got ${stallTimeoutMs}`)
  }

  return {
    async handle(input) {
      const parsed = parsePaymentHeaders(input.headers)
      if (parsed.type === 'invalid') return respondWithError(parsed.error)
      try {
        const asset = await receiver.asset()
        if (parsed.type === 'none') {
          const error = new CogpayError(
            ErrorCodes.PAYMENT_REQUIRED,
            `this resource is charged as the work proceeds (asset ${asset.code}, scale ${asset.scale}); pay with the ${Headers.scheme} headers`,
            { status: 402 },
          )
          return respondWithError(error, 0n, asset, true)
        }
        const cap = parsed.headers.maxSpend
        if (maxPrice && cap) {
          const most = await maxPrice(input.request)
          if (announcedCapBelow(cap, most, asset)) return respondWithError(capBelow(most, cap.amount), most, asset, true)
        }
        // One logical request, one payment: a retry with the same Idempotency-Key is not charged again.
        const retry = await idempotentRetry(idempotency, input, parsed.headers)
        if (retry.type === 'outcome') return retry.outcome
        const keeper = retry.keeper
        const credit = retry.type === 'paid' ? BigInt(retry.earlier.paid ?? 0) : 0n
        let stream
        try {
          stream = await receiver.open({ payment: parsed.headers, ...(input.client ? { client: input.client } : {}) })
        } catch (err) {
          // Nothing moved: a retry is as new (or, served as paid before, still is).
          if (retry.type === 'paid') void keeper!.restore(retry.earlier)
          else void keeper?.forget()
          throw err
        }
        const meter = new Meter(stream, {
          credit,
          ahead,
          stallTimeoutMs,
          ...(input.signal ? { signal: input.signal } : {}),
          refundPolicy: policy,
          ...(receiver.refund
            ? { refund: (amount: bigint) => receiver.refund!({ payment: parsed.headers, amount }) }
            : {}),
        })
        return {
          type: 'proceed',
          headers: {
            ...(retry.type === 'paid' ? { [Headers.replayed]: 'payment' } : {}),
            [Headers.metered]: '1',
            [Headers.requestId]: parsed.headers.requestId,
            [Headers.assetCode]: asset.code,
            [Headers.assetScale]: String(asset.scale),
          },
          meter,
          ...(keeper ? { replayBytes: idempotency!.maxReplayBytes } : {}),
          totals: () => ({ [Headers.price]: meter.charged.toString(), [Headers.paid]: meter.paid.toString() }),
          finish: (served, response) => {
            meter.finish(served)
            if (!keeper) return
            // Its record: done with what the logical request has paid in all (any credit included),
            // unless all that arrived on this stream went back (a failure refunded: retry as new).
            const { requestId } = parsed.headers
            void meter.refunded.then((back) =>
              keeper.keep({ requestId, price: meter.charged, paid: meter.paid - back, asset: stream.asset }, served ? response : undefined),
            )
          },
        }
      } catch (err) {
        if (!isCogpayError(err)) return { type: 'fail', error: err }
        if (err.status < 500) return respondWithError(err)
        return { type: 'fail', error: err }
      }
    },
  }
}
