import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { createMetering, requestFingerprint, type MeteredRouteOptions as Options } from '@cogpay/core'
import { beforeHeaders, clientGone, whenResponseDone } from '@cogpay/core/node'
import { defaultPaymentServer } from '@cogpay/ilp'
import { replay, respond } from './respond.js'

/** Options for {@link meteredRoute}. */
export type MeteredRouteOptions = Options<Request>

/**
 * Express middleware for work charged as it proceeds. The handler gets a `Meter` in
 * `res.locals.meter`: `await meter.charge(n)` asks for `n` more and resolves once paid;
 * `meter.signal` fires when the payer stops paying (cap reached, client gone, socket died, stalled).
 * The response headers carry `Cogpay-Price` (charged) and `Cogpay-Paid` as of when they are sent.
 */
export function meteredRoute(options: MeteredRouteOptions = {}): RequestHandler {
  const metering = createMetering<Request>({ ...options, receiver: options.receiver ?? defaultPaymentServer() })

  return async function meteredRoute(req: Request, res: Response, next: NextFunction): Promise<void> {
    let outcome
    try {
      outcome = await metering.handle({
        headers: (name) => req.headersDistinct[name],
        request: req,
        signal: clientGone(res),
        fingerprint: requestFingerprint(req.method, req.originalUrl, req.headers['content-length']),
        ...(req.socket.remoteAddress ? { client: req.socket.remoteAddress } : {}),
      })
    } catch (err) {
      return next(err)
    }
    if (outcome.type === 'fail') return next(outcome.error)
    if (outcome.type === 'respond') return respond(res, outcome)
    if (outcome.type === 'replay') return replay(res, outcome)
    res.set(outcome.headers)
    beforeHeaders(res, outcome.totals)
    res.locals.meter = outcome.meter
    whenResponseDone(res, outcome.replayBytes, outcome.finish)
    next()
  }
}
