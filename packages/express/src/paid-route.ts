import { Buffer } from 'node:buffer'
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { createPaywall, groupHeaders, requestFingerprint, type PaidRouteOptions, type PriceSpec } from '@cogpay/core'
import { beforeHeaders, captureResponse, clientGone } from '@cogpay/core/node'
import { defaultPaymentServer } from '@cogpay/ilp'
import { respond } from './respond.js'

export type { PaidRouteOptions }

/**
 * Express middleware that charges `price` for every request it sees, in the server's asset.
 * The handler after it runs only once the price has been paid; it finds the receipt in
 * `res.locals.payment`. Protocol answers (400, 402, 409, 422) are sent as JSON; ILP failures
 * (502, 503) go to `next(err)` as a `CogpayError` with `status`, `expose` and a `Cogpay-Error`
 * header. A handler that fails (throws, answers 5xx, or is cut off) is refunded (`refund`), and a
 * retry with the same `Idempotency-Key` is never charged twice (`idempotency`).
 *
 * @param price a bigint or decimal string, or a (sync or async) function of the request.
 */
export function paidRoute(price: PriceSpec<Request>, options: PaidRouteOptions = {}): RequestHandler {
  const paywall = createPaywall<Request>(price, {
    receiver: options.receiver ?? defaultPaymentServer(),
    ...(options.refund ? { refund: options.refund } : {}),
    ...(options.idempotency !== undefined ? { idempotency: options.idempotency } : {}),
  })

  return async function paidRoute(req: Request, res: Response, next: NextFunction): Promise<void> {
    let outcome
    try {
      outcome = await paywall.handle({
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
    res.locals.payment = outcome.receipt
    // A failure (5xx) says Cogpay-Refund as its headers go out, and is refunded; so is a response cut
    // off before its headers went out (not one cut mid-body: a client may hang up on purpose).
    beforeHeaders(res, () => outcome.beforeHeaders(res.statusCode))
    const sent = outcome.replayBytes === undefined ? undefined : captureResponse(res, outcome.replayBytes)
    res.once('close', () => {
      const served = res.writableFinished && res.statusCode < 500
      outcome.finish(served, served ? sent?.() : undefined, res.headersSent)
    })
    next()
  }
}
