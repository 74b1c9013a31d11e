import type { Context, Middleware, Next } from 'koa'
import { createPaywall, type PaymentReceiver, type PriceSpec } from '@cogpay/core'
import { defaultPaymentServer } from '@cogpay/ilp'

/** Options for {@link paidRoute}. */
export interface PaidRouteOptions {
  /**
   * Where payments are collected. Default: the process-wide payment server on the uplink
   * `COGPAY_UPLINK` (or `btp+ws://127.0.0.1:7768`), from `@cogpay/ilp`.
   */
  receiver?: PaymentReceiver
}

/**
 * Koa middleware that charges `price` for every request it sees, in the server's asset. The
 * downstream middleware runs only once the price has been paid; it finds the receipt in
 * `ctx.state.payment`. Protocol answers (400, 402) are set as JSON bodies; ILP failures (502, 503)
 * are thrown as a `CogpayError` carrying `status`, `expose` and a `Cogpay-Error` header, which
 * Koa's error handling renders.
 *
 * @param price a bigint or decimal string, or a (sync or async) function of the context.
 */
export function paidRoute(price: PriceSpec<Context>, options: PaidRouteOptions = {}): Middleware {
  const paywall = createPaywall<Context>(price, { receiver: options.receiver ?? defaultPaymentServer() })

  return async function paidRoute(ctx: Context, next: Next): Promise<void> {
    const aborted = new AbortController()
    const onClose = () => {
      if (!ctx.res.writableFinished) aborted.abort()
    }
    ctx.res.once('close', onClose)
    let outcome
    try {
      outcome = await paywall.handle({
        headers: (name) => ctx.req.headersDistinct[name],
        request: ctx,
        signal: aborted.signal,
      })
    } finally {
      ctx.res.removeListener('close', onClose)
    }
    if (outcome.type === 'fail') throw outcome.error
    if (outcome.type === 'respond') {
      ctx.status = outcome.status
      ctx.set(outcome.headers)
      ctx.body = outcome.body
      return
    }
    ctx.set(outcome.headers)
    ctx.state.payment = outcome.receipt
    ctx.res.once('close', outcome.finish)
    await next()
  }
}
