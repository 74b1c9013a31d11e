import type { Context, Middleware, Next } from 'koa'
import { createMetering, requestFingerprint, type MeteredRouteOptions as Options } from '@cogpay/core'
import { beforeHeaders, clientGone, whenResponseDone } from '@cogpay/core/node'
import { defaultPaymentServer } from '@cogpay/ilp'
import { replay, respond } from './respond.js'

/** Options for {@link meteredRoute}. */
export type MeteredRouteOptions = Options<Context>

/**
 * Koa middleware for work charged as it proceeds. Downstream middleware gets a `Meter` in
 * `ctx.state.meter`: `await meter.charge(n)` asks for `n` more and resolves once paid;
 * `meter.signal` fires when the payer stops paying (cap reached, client gone, socket died, stalled).
 * The response headers carry `Cogpay-Price` (charged) and `Cogpay-Paid` as of when they are sent.
 */
export function meteredRoute(options: MeteredRouteOptions = {}): Middleware {
  const metering = createMetering<Context>({ ...options, receiver: options.receiver ?? defaultPaymentServer() })

  return async function meteredRoute(ctx: Context, next: Next): Promise<void> {
    const outcome = await metering.handle({
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
    beforeHeaders(ctx.res, outcome.totals)
    ctx.state.meter = outcome.meter
    whenResponseDone(ctx.res, outcome.replayBytes, outcome.finish)
    try {
      await next()
    } catch (err) {
      // Koa's error response drops every header set so far, then sets `err.headers`: keep the
      // payment headers on it, so the client still knows the response was metered (and reads the
      // final message that says it failed).
      if (typeof err === 'object' && err !== null) {
        const e = err as { headers?: Record<string, string> }
        e.headers = { ...outcome.headers, ...outcome.totals(), ...e.headers }
      }
      throw err
    }
  }
}
