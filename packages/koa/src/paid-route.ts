import type { Context, Middleware, Next } from 'koa'
import { createPaywall, requestFingerprint, type PaidRouteOptions, type PriceSpec } from '@cogpay/core'
import { beforeHeaders, clientGone, whenResponseDone } from '@cogpay/core/node'
import { defaultPaymentServer } from '@cogpay/ilp'
import { replay, respond } from './respond.js'

export type { PaidRouteOptions }

/**
 * Koa middleware that charges `price` for every request it sees, in the server's asset. The
 * downstream middleware runs only once the price has been paid; it finds the receipt in
 * `ctx.state.payment`. Protocol answers (400, 402, 409, 422) are set as JSON bodies; ILP failures
 * (502, 503) are thrown as a `CogpayError` carrying `status`, `expose` and a `Cogpay-Error`
 * header, which Koa's error handling renders. A handler that fails (throws, answers 5xx, or is
 * cut off) is refunded (`refund`), and a retry with the same `Idempotency-Key` is never charged
 * twice (`idempotency`).
 *
 * @param price a bigint or decimal string, or a (sync or async) function of the context.
 */
export function paidRoute(price: PriceSpec<Context>, options: PaidRouteOptions = {}): Middleware {
  const paywall = createPaywall<Context>(price, {
    receiver: options.receiver ?? defaultPaymentServer(),
    ...(options.refund ? { refund: options.refund } : {}),
    ...(options.idempotency !== undefined ? { idempotency: options.idempotency } : {}),
  })

  return async function paidRoute(ctx: Context, next: Next): Promise<void> {
    const outcome = await paywall.handle({
      headers: (name) => ctx.req.headersDistinct[name],
      request: ctx,
      signal: clientGone(ctx.res),
      fingerprint: requestFingerprint(ctx.method, ctx.originalUrl, ctx.get('content-length') || undefined),
      ...(ctx.req.socket.remoteAddress ? { client: ctx.req.socket.remoteAddress } : {}),
    })
    if (outcome.type === 'fail') throw outcome.error
    if (outcome.type === 'respond') return respond(ctx, outcome)
    if (outcome.type === 'replay') return replay(ctx, outcome)
    ctx.set(outcome.headers)
    ctx.state.payment = outcome.receipt
    // A failure (5xx) says Cogpay-Refund as its headers go out, and is refunded; so is a response cut
    // off before its headers went out (not one cut mid-body: a client may hang up on purpose).
    beforeHeaders(ctx.res, () => outcome.beforeHeaders(ctx.res.statusCode))
    whenResponseDone(ctx.res, outcome.replayBytes, outcome.finish)
    try {
      await next()
    } catch (err) {
      // The handler failed (Koa answers 500, or the error's own 5xx status), maybe after its body
      // had started: it is refunded either way, and the error response, if its headers have not
      // gone out yet, says Cogpay-Refund. A 4xx it threw is the client's error: not refunded.
      const status = (err as { status?: unknown; statusCode?: unknown } | null)?.status ?? (err as { statusCode?: unknown } | null)?.statusCode
      outcome.beforeHeaders(typeof status === 'number' && status >= 400 && status < 1000 ? status : 500)
      throw err
    }
  }
}
