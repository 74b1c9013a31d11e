import type { Context, Middleware, Next } from 'koa'
import { Buffer } from 'node:buffer'
import { createMetering, groupHeaders, requestFingerprint, type MeteredRouteOptions as Options } from '@cogpay/core'
import { beforeHeaders, captureResponse, clientGone } from '@cogpay/core/node'
import { defaultPaymentServer } from '@cogpay/ilp'
import { respond } from './respond.js'

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
    if (outcome.type === 'replay') {
      ctx.status = outcome.status
      // Set, not appended: what middleware before this one set again on the retry is not doubled.
      for (const [name, values] of groupHeaders(outcome.headers)) ctx.set(name, values.length === 1 ? values[0]! : values)
      ctx.body = Buffer.from(outcome.body)
      return
    }
    ctx.set(outcome.headers)
    beforeHeaders(ctx.res, outcome.totals)
    ctx.state.meter = outcome.meter
    const sent = outcome.replayBytes === undefined ? undefined : captureResponse(ctx.res, outcome.replayBytes)
    // Served in full: sent to its end, and not an error (a handler that threw is a 500 here).
    ctx.res.once('close', () => {
      const served = ctx.res.writableFinished && ctx.res.statusCode < 500
      outcome.finish(served, served ? sent?.() : undefined)
    })
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
