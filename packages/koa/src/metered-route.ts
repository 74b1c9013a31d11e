import type { Context, Middleware, Next } from 'koa'
import { beforeHeaders, createMetering, type AmountLike, type PaymentReceiver, type PriceSpec } from '@cogpay/core'
import { defaultPaymentServer } from '@cogpay/ilp'

/** Options for {@link meteredRoute}. */
export interface MeteredRouteOptions {
  /** Where payments are collected. Default: the process-wide payment server (`COGPAY_UPLINK`). */
  receiver?: PaymentReceiver
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
  maxPrice?: PriceSpec<Context>
}

/**
 * Koa middleware for work charged as it proceeds. Downstream middleware gets a `Meter` in
 * `ctx.state.meter`: `await meter.charge(n)` asks for `n` more and resolves once paid;
 * `meter.signal` fires when the payer stops paying (cap reached, client gone, socket died, stalled).
 * The response headers carry `Cogpay-Price` (charged) and `Cogpay-Paid` as of when they are sent.
 */
export function meteredRoute(options: MeteredRouteOptions = {}): Middleware {
  const metering = createMetering<Context>({
    receiver: options.receiver ?? defaultPaymentServer(),
    ...(options.ahead === undefined ? {} : { ahead: options.ahead }),
    ...(options.stallTimeoutMs === undefined ? {} : { stallTimeoutMs: options.stallTimeoutMs }),
    ...(options.maxPrice === undefined ? {} : { maxPrice: options.maxPrice }),
  })

  return async function meteredRoute(ctx: Context, next: Next): Promise<void> {
    const gone = new AbortController()
    ctx.res.once('close', () => {
      if (!ctx.res.writableFinished) gone.abort()
    })
    const outcome = await metering.handle({
      headers: (name) => ctx.req.headersDistinct[name],
      request: ctx,
      signal: gone.signal,
    })
    if (outcome.type === 'fail') throw outcome.error
    if (outcome.type === 'respond') {
      ctx.status = outcome.status
      ctx.set(outcome.headers)
      ctx.body = outcome.body
      return
    }
    ctx.set(outcome.headers)
    beforeHeaders(ctx.res, outcome.totals)
    ctx.state.meter = outcome.meter
    ctx.res.once('close', outcome.finish)
    await next()
  }
}
