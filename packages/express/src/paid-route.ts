import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { createPaywall, type PaidRouteOptions, type PriceSpec } from '@cogpay/core'
import { clientGone } from '@cogpay/core/node'
import { defaultPaymentServer } from '@cogpay/ilp'
import { respond } from './respond.js'

export type { PaidRouteOptions }

/**
 * Express middleware that charges `price` for every request it sees, in the server's asset.
 * The handler after it runs only once the price has been paid; it finds the receipt in
 * `res.locals.payment`. Protocol answers (400, 402) are sent as JSON; ILP failures (502, 503) go
 * to `next(err)` as a `CogpayError` with `status`, `expose` and a `Cogpay-Error` header.
 *
 * @param price a bigint or decimal string, or a (sync or async) function of the request.
 */
export function paidRoute(price: PriceSpec<Request>, options: PaidRouteOptions = {}): RequestHandler {
  const paywall = createPaywall<Request>(price, { receiver: options.receiver ?? defaultPaymentServer() })

  return async function paidRoute(req: Request, res: Response, next: NextFunction): Promise<void> {
    let outcome
    try {
      outcome = await paywall.handle({
        headers: (name) => req.headersDistinct[name],
        request: req,
        signal: clientGone(res),
        ...(req.socket.remoteAddress ? { client: req.socket.remoteAddress } : {}),
      })
    } catch (err) {
      return next(err)
    }
    if (outcome.type === 'fail') return next(outcome.error)
    if (outcome.type === 'respond') return respond(res, outcome)
    res.set(outcome.headers)
    res.locals.payment = outcome.receipt
    res.once('close', outcome.finish)
    next()
  }
}
