import type { Context, Middleware, Next } from 'koa'
import { createPaywall, type PaidRouteOptions, type PriceSpec } from '@cogpay/core'
import { clientGone } from '@cogpay/core/node'
import { defaultPaymentServer } from '@cogpay/ilp'
import { respond } from './respond.js'

export type { PaidRouteOptions }

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
    const outcome = await paywall.handle({
      headers: (name) => ctx.req.headersDistinct[name],
      request: ctx,
      signal: clientGone(ctx.res),
      ...(ctx.req.socket.remoteAddress ? { client: ctx.req.socket.remoteAddress } : {}),
    })
    if (outcome.type === 'fail') throw outcome.error
    if (outcome.type === 'respond') return respond(ctx, outcome)
    ctx.set(outcome.headers)
    ctx.state.payment = outcome.receipt
    ctx.res.once('close', outcome.finish)
    await next()
  }
}
