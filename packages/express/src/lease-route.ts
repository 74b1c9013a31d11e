import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { createLeasing, type LeaseRouteOptions as Options } from '@cogpay/core'
import { clientGone } from '@cogpay/core/node'
import { respond } from './respond.js'

/** Options for {@link leaseRoute}. */
export type LeaseRouteOptions = Options<Request>

/**
 * Express middleware that opens a lease: the host pulls `amount` every `intervalMs` from the
 * payer for as long as the resource runs. The handler runs once the first interval is paid, with
 * the `Lease` in `res.locals.lease`; start the resource then, and stop it when `lease.signal`
 * fires. The response carries `Cogpay-Lease` (its id) and `Cogpay-Interval-Ms`.
 */
export function leaseRoute(options: LeaseRouteOptions): RequestHandler {
  const leasing = createLeasing<Request>(options)
  return async function leaseRoute(req: Request, res: Response, next: NextFunction): Promise<void> {
    const gone = clientGone(res)
    let outcome
    try {
      outcome = await leasing.handle({ headers: (name) => req.headersDistinct[name], request: req })
    } catch (err) {
      return next(err)
    }
    if (outcome.type === 'fail') return next(outcome.error)
    if (outcome.type === 'respond') return respond(res, outcome)
    res.set(outcome.headers)
    res.locals.lease = outcome.lease
    // A client that never got the response does not know the lease exists: end it.
    const end = () => void outcome.lease.end()
    if (gone.aborted) return end()
    gone.addEventListener('abort', end, { once: true })
    next()
  }
}
