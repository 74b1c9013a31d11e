import { Buffer } from 'node:buffer'
import type { Context, Middleware, Next } from 'koa'
import { createPaywall, groupHeaders, requestFingerprint, type PaidRouteOptions, type PriceSpec } from '@cogpay/core'
import { beforeHeaders, captureResponse, clientGone } from '@cogpay/core/node'
import { defaultPaymentServer } from '@cogpay/ilp'
import { respond } from './respond.js'

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
    if (outcome.type === 'replay') {
      ctx.status = outcome.status
      // Set, not appended: what middleware before this one set again on the retry is not doubled.
      for (const [name, values] of groupHeaders(outcome.headers)) ctx.set(name, values.length === 1 ? values[0]! : values)
      ctx.body = Buffer.from(outcome.body)
      return
    }
    ctx.set(outcome.headers)
    ctx.state.payment = outcome.receipt
    // A failure (5xx) says Cogpay-Refund as its headers go out, and is refunded; so is a response cut
    // off before its headers went out (not one cut mid-body: a client may hang up on purpose).
    beforeHeaders(ctx.res, () => outcome.beforeHeaders(ctx.res.statusCode))
    const sent = outcome.replayBytes === undefined ? undefined : captureResponse(ctx.res, outcome.replayBytes)
    ctx.res.once('close', () => {
      const served = ctx.res.writableFinished && ctx.res.statusCode < 500
      outcome.finish(served, served ? sent?.() : undefined, ctx.res.headersSent)
    })
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
