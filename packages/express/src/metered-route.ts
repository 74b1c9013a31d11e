import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { Buffer } from 'node:buffer'
import { createMetering, groupHeaders, requestFingerprint, type MeteredRouteOptions as Options } from '@cogpay/core'
import { beforeHeaders, captureResponse, clientGone } from '@cogpay/core/node'
import { defaultPaymentServer } from '@cogpay/ilp'
import { respond } from './respond.js'

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
    if (outcome.type === 'replay') {
      res.status(outcome.status)
      // Set, not appended: what middleware before this one set again on the retry is not doubled.
      for (const [name, values] of groupHeaders(outcome.headers)) res.setHeader(name, values.length === 1 ? values[0]! : values)
      res.end(Buffer.from(outcome.body))
      return
    }
    res.set(outcome.headers)
    beforeHeaders(res, outcome.totals)
    res.locals.meter = outcome.meter
    const sent = outcome.replayBytes === undefined ? undefined : captureResponse(res, outcome.replayBytes)
    // Served in full: sent to its end, and not an error (a handler that threw is a 500 here).
    res.once('close', () => {
      const served = res.writableFinished && res.statusCode < 500
      outcome.finish(served, served ? sent?.() : undefined)
    })
    next()
  }
}
