import type { Connection, MoneyStream } from '@cogpay/stream'
import { CloseReasons, type Asset, type LeaseTerms } from '@cogpay/core'
import type { Authorizations } from './authorizations.js'
import { PayerLease } from './payer-lease.js'
import type { Pending } from './pending.js'
import { isSameAsset } from './same-asset.js'

/** What admitting a lease's stream needs of the payer. @internal */
export interface LeaseAdmissionContext {
  readonly origin: string
  readonly connection: Connection
  readonly asset: Asset | undefined
  readonly authorizations: Authorizations
  /** A request in flight, by id: a new lease must name one of its origin. */
  inFlight(requestId: string): Pending | undefined
  /** Fresh credentials for this origin, for the lease's next stream (a host resuming after a restart). */
  resumeCredentials(): { address: string; secret: string }
  /** Called with every amount paid on the lease, in the payer's units. */
  onSpend(lease: PayerLease, amount: bigint): void
}

/**
 * Admits a lease's stream: a new lease must name a request of this origin in flight and fit the
 * host's authorization (a rate cap at or above the lease's rate); a known one (the host resuming)
 * must belong to this origin and still be live. Returns a close reason when refused.
 */
export function admitLease(
  stream: MoneyStream,
  requestId: string,
  terms: LeaseTerms,
  rest: Uint8Array,
  context: LeaseAdmissionContext,
): string | undefined {
  const { origin, connection, authorizations } = context
  const budget = authorizations.budget(origin)
  let lease = authorizations.lease(terms.id)
  if (lease && lease.origin !== origin) return CloseReasons.leaseNotAuthorized
  if (lease && !lease.live) return lease.status === 'revoked' ? CloseReasons.revoked : CloseReasons.leaseNotAuthorized
  const pending = lease ? undefined : context.inFlight(requestId)
  if (!lease && (terms.resume || !pending || pending.origin !== origin || pending.finished)) {
    return CloseReasons.unknownRequest
  }
  if (budget?.revoked) return CloseReasons.revoked
  const rate = budget?.rate
  if (!budget || !rate) return CloseReasons.leaseNotAuthorized
  const sameAsset = isSameAsset(connection, context.asset)
  // Same asset: compare the host's rate with our cap before anything is paid. (Across assets the
  // token bucket still holds it to the cap, in our units.)
  if (sameAsset && terms.amount * BigInt(rate.intervalMs) > rate.amount * BigInt(terms.intervalMs)) {
    if (lease) lease.stop(CloseReasons.rateTooHigh)
    return CloseReasons.rateTooHigh
  }
  if (!lease) {
    lease = new PayerLease(terms.id, origin, terms, pending?.leaseMax)
    pending?.leases.push(lease)
    authorizations.remember(lease)
  }
  lease.terms = terms
  lease.attach(stream, rest, {
    budget,
    sameAsset,
    resumeCredentials: context.resumeCredentials,
    onSpend: (amount) => context.onSpend(lease, amount),
  })
  return undefined
}
