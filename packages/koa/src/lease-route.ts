import type { Context, Middleware, Next } from 'koa'
import { createLeasing, type LeaseRouteOptions as Options } from '@cogpay/core'
import { clientGone } from '@cogpay/core/node'
import { respond } from './respond.js'

/** Options for {@link leaseRoute}. */
export type LeaseRouteOptions = Options<Context>

/**
 * Koa middleware that opens a lease: the host pulls `amount` every `intervalMs` from the payer for
 * as long as the resource runs. Downstream middleware runs once the first interval is paid, with
 * the `Lease` in `ctx.state.lease`; start the resource then, and stop it when `lease.signal` fires.
 * The response carries `Cogpay-Lease` (its id) and `Cogpay-Interval-Ms`. If the client goes away
 * before the response is sent, the lease is ended: a client cannot manage a lease it never heard of.
 */
export function leaseRoute(options: LeaseRouteOptions): Middleware {
  const leasing = createLeasing<Context>(options)
  return async function leaseRoute(ctx: Context, next: Next): Promise<void> {
    const gone = clientGone(ctx.res)
    const outcome = await leasing.handle({ headers: (name) => ctx.req.headersDistinct[name], request: ctx })
    if (outcome.type === 'fail') throw outcome.error
    if (outcome.type === 'respond') return respond(ctx, outcome)
    ctx.set(outcome.headers)
    ctx.state.lease = outcome.lease
    // A client that never got the response does not know the lease exists: end it.
    const end = () => void outcome.lease.end()
    if (gone.aborted) return end()
    gone.addEventListener('abort', end, { once: true })
    await next()
  }
}
