import type { AmountLike } from './amount.js'
import type { PriceSpec } from './price.js'
import type { PaymentReceiver } from './receiver.js'
import type { IdempotencyOptions } from './idempotency.js'

/** Options of `paidRoute`, for Express and Koa alike. */
export interface PaidRouteOptions {
  /**
   * Where payments are collected. Default: the process-wide payment server on the uplink
   * `COGPAY_UPLINK` (or `btp+ws://127.0.0.1:7768`), from `@cogpay/ilp`.
   */
  receiver?: PaymentReceiver
  /**
   * What happens to the money when a paid handler fails (throws, answers 5xx, or its response is
   * cut off before its end): `'on-error'` (default) pays it all back to the payer on its socket
   * (a metered route also pays back what was prepaid beyond the charges); `'never'` keeps it.
   */
  refund?: RefundPolicy
  /**
   * Retries that send the same `Idempotency-Key` (as `payFetch` does) are never charged twice: a
   * retry while the first is under way gets 409, one after it was served gets its stored response
   * (or is served as already paid, when the response was too large to keep), the same key for
   * another request gets 422. On by default, with a bounded in-memory store shared by the process's routes;
   * give a shared `store` when several instances serve one API, or `false` to turn it off.
   * A metered route serves a retry whose response was too large to keep with what the first
   * attempt paid as a credit: only charges beyond it are asked again.
   */
  idempotency?: IdempotencyOptions | false
}

/** See {@link PaidRouteOptions.refund}. */
export type RefundPolicy = 'on-error' | 'never'

/** Options of `meteredRoute`, for Express and Koa alike; `Req` is the framework's request. */
export interface MeteredRouteOptions<Req> extends PaidRouteOptions {
  /**
   * Prepay window in the server's units: the meter asks up to this much beyond what is charged,
   * so work need not wait on the payer at each step (the payer then risks up to this much for work
   * not yet done). Default `0n`: each charge is paid before `charge()` resolves.
   */
  ahead?: AmountLike
  /** A charge not paid within this long stops the meter (`COGPAY_PAYMENT_STALLED`). Default `10000` ms. */
  stallTimeoutMs?: number
  /**
   * The most the work may cost, if known (an amount, or a function of the request). A payer that
   * announced a lower cap (`Cogpay-Max-Spend`, same asset) gets a 402 before any work starts.
   */
  maxPrice?: PriceSpec<Req>
}
