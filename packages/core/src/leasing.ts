import { CogpayError, isCogpayError } from './errors/cogpay-error.js'
import { ErrorCodes } from './errors/codes.js'
import { leaseTerms, type Lease, type LeaseHost } from './lease.js'
import { capBelow, respondWithError, type PaywallInput, type PaywallOutcome } from './paywall.js'
import { Headers, announcedCapBelow, parsePaymentHeaders } from './wire.js'

/** Options of a lease route (`leaseRoute` in the Express and Koa adapters). */
export interface LeaseRouteOptions<Req> {
  /** The host that keeps the leases. */
  readonly host: LeaseHost
  /** Pulled per interval, in the host's units (or give `ratePerSecond`). */
  readonly amount?: bigint | string
  /** Pulled per second, in the host's units (or give `amount`). */
  readonly ratePerSecond?: bigint | string
  /** Default `1000` ms. */
  readonly intervalMs?: number
  /** The application's data to keep with the lease (JSON), from the request. */
  readonly meta?: (request: Req) => Record<string, unknown> | undefined
}

/** What a lease route's adapter must do: like {@link PaywallOutcome}, with a lease to expose. */
export type LeasingOutcome =
  | Exclude<PaywallOutcome, { type: 'proceed' | 'replay' }>
  | { readonly type: 'proceed'; readonly headers: Readonly<Record<string, string>>; readonly lease: Lease }

/** The framework-free core of `leaseRoute`. */
export interface Leasing<Req> {
  handle(input: PaywallInput<Req>): Promise<LeasingOutcome>
}

/**
 * Creates a lease route's core: each request with payment headers opens a lease and proceeds once
 * its first interval is paid. Terms are checked now.
 */
export function createLeasing<Req>(options: LeaseRouteOptions<Req>): Leasing<Req> {
  const host = options.host
  if (typeof host?.open !== 'function') throw new CogpayError(ErrorCodes.INVALID_OPTIONS, 'host must be a LeaseHost')
  const { amount, ratePerSecond, intervalMs } = options
  const terms = leaseTerms({
    ...(amount === undefined ? {} : { amount }),
    ...(ratePerSecond === undefined ? {} : { ratePerSecond }),
    ...(intervalMs === undefined ? {} : { intervalMs }),
  })
  return {
    async handle(input) {
      const parsed = parsePaymentHeaders(input.headers)
      if (parsed.type === 'invalid') return respondWithError(parsed.error)
      try {
        const asset = await host.receiver.asset()
        if (parsed.type === 'none') {
          const error = new CogpayError(
            ErrorCodes.PAYMENT_REQUIRED,
            `this resource is leased: ${terms.amount} (asset ${asset.code}, scale ${asset.scale}) every ${terms.intervalMs} ms while it runs; pay with the ${Headers.scheme} headers from a payer that allows this host to pull over time`,
            { status: 402 },
          )
          return respondWithError(error, terms.amount, asset, false, terms.intervalMs)
        }
        const cap = parsed.headers.maxSpend
        if (announcedCapBelow(cap, terms.amount, asset)) {
          return respondWithError(capBelow(terms.amount, cap?.amount ?? 0n), terms.amount, asset, false, terms.intervalMs)
        }
        const meta = options.meta?.(input.request)
        const lease = await host.open(parsed.headers, { ...terms, ...(meta ? { meta } : {}) })
        return {
          type: 'proceed',
          lease,
          headers: {
            [Headers.lease]: lease.id,
            [Headers.requestId]: parsed.headers.requestId,
            [Headers.price]: terms.amount.toString(),
            [Headers.interval]: String(terms.intervalMs),
            [Headers.paid]: lease.paid.toString(),
            [Headers.assetCode]: asset.code,
            [Headers.assetScale]: String(asset.scale),
          },
        }
      } catch (err) {
        if (!isCogpayError(err)) return { type: 'fail', error: err }
        if (err.status < 500) return respondWithError(err)
        return { type: 'fail', error: err }
      }
    },
  }
}
