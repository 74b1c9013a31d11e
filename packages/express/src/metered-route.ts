import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { beforeHeaders, createMetering, type AmountLike, type PaymentReceiver, type PriceSpec } from '@cogpay/core'
import { defaultPaymentServer } from '@cogpay/ilp'

/** Options for {@link meteredRoute}. */
export interface MeteredRouteOptions {
  /** Where payments are collected. Default: the process-wide payment server (`COGPAY_UPLINK`). */
  receiver?: PaymentReceiver
  /**
   * Prepay window in the server's units: the meter asks up to this much beyond what is charged,
   * so work need not wait on the payer at each step (the payer then risks up to this much for work
   * not yet done). Default `0n`: each charge is paid before `charge()` resolves.
   */
  ahead?: AmountLike
  /** A charge not paid within this long stops the meter (`COGPAY_PAYMENT_STALLED`). Default `10000` ms. */
  stallTimeoutMs?: number
  /**
   * The most the work may cost, if known (an amount, or a function of the request). A payer that
   * announced a lower cap (`Cogpay-Max-Spend`, same asset) gets a 402 before any work starts.
   */
  maxPrice?: PriceSpec<Request>
}

/**
 * Express middleware for work charged as it proceeds. The handler gets a `Meter` in
 * `res.locals.meter`: `await meter.charge(n)` asks for `n` more and resolves once paid;
 * `meter.signal` fires when the payer stops paying (cap reached, client gone, socket died, stalled).
 * The response headers carry `Cogpay-Price` (charged) and `Cogpay-Paid` as of when they are sent.
 */
export function meteredRoute(options: MeteredRouteOptions = {}): RequestHandler {
  const metering = createMetering<Request>({
    receiver: options.receiver ?? defaultPaymentServer(),
    ...(options.ahead === undefined ? {} : { ahead: options.ahead }),
    ...(options.stallTimeoutMs === undefined ? {} : { stallTimeoutMs: options.stallTimeoutMs }),
    ...(options.maxPrice === undefined ? {} : { maxPrice: options.maxPrice }),
  })

  return async function meteredRoute(req: Request, res: Response, next: NextFunction): Promise<void> {
    // The client going away before the response is done stops the meter.
    const gone = new AbortController()
    res.once('close', () => {
      if (!res.writableFinished) gone.abort()
    })
    let outcome
    try {
      outcome = await metering.handle({ headers: (name) => req.headersDistinct[name], request: req, signal: gone.signal })
    } catch (err) {
      return next(err)
    }
    if (outcome.type === 'fail') return next(outcome.error)
    if (outcome.type === 'respond') {
      if (!res.headersSent) res.status(outcome.status).set(outcome.headers).json(outcome.body)
      return
    }
    res.set(outcome.headers)
    beforeHeaders(res, outcome.totals)
    res.locals.meter = outcome.meter
    res.once('close', outcome.finish)
    next()
  }
}
