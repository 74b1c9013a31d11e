import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { createPaywall, requestFingerprint, type PaidRouteOptions, type PriceSpec } from '@cogpay/core'
import { beforeHeaders, clientGone, whenResponseDone } from '@cogpay/core/node'
import { defaultPaymentServer } from '@cogpay/ilp'
import { replay, respond } from './respond.js'

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
    if (outcome.type === 'replay') return replay(res, outcome)
    res.set(outcome.headers)
    res.locals.payment = outcome.receipt
    // A failure (5xx) says Cogpay-Refund as its headers go out, and is refunded; so is a response cut
    // off before its headers went out (not one cut mid-body: a client may hang up on purpose).
    beforeHeaders(res, () => outcome.beforeHeaders(res.statusCode))
    whenResponseDone(res, outcome.replayBytes, outcome.finish)
    next()
  }
}
