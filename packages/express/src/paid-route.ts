import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { createPaywall, type PaymentReceiver, type PriceSpec } from '@cogpay/core'
import { defaultPaymentServer } from '@cogpay/ilp'

/** Options for {@link paidRoute}. */
export interface PaidRouteOptions {
  /**
   * Where payments are collected. Default: the process-wide payment server on the uplink
   * `COGPAY_UPLINK` (or `btp+ws://127.0.0.1:7768`), from `@cogpay/ilp`.
   */
  receiver?: PaymentReceiver
}

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
    const aborted = new AbortController()
    const onClose = () => {
      if (!res.writableFinished) aborted.abort()
    }
    res.once('close', onClose)
    let outcome
    try {
      outcome = await paywall.handle({
        headers: (name) => req.headersDistinct[name],
        request: req,
        signal: aborted.signal,
      })
    } catch (err) {
      res.removeListener('close', onClose)
      return next(err)
    }
    res.removeListener('close', onClose)
    if (outcome.type === 'fail') return next(outcome.error)
    if (outcome.type === 'respond') {
      if (!res.headersSent) res.status(outcome.status).set(outcome.headers).json(outcome.body)
      return
    }
    res.set(outcome.headers)
    res.locals.payment = outcome.receipt
    res.once('close', outcome.finish)
    next()
  }
}
