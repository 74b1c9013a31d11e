import { LeaseHost, type LeaseStore } from '@cogpay/core'
import { defaultPaymentServer, type PaymentServer } from './payment-server.js'

/** Options for {@link createLeaseHost}. */
export interface CreateLeaseHostOptions {
  /** Default: the process-wide payment server (`defaultPaymentServer()`). */
  paymentServer?: PaymentServer
  /** Default: in memory. Give a `FileLeaseStore` (or your own) for leases that survive a restart. */
  store?: LeaseStore
  /** How long to wait on a payer before a lease stops. Default `5000` ms. */
  graceMs?: number
}

/** A {@link LeaseHost} whose leases pull over a cogpay payment server's reverse sockets. */
export function createLeaseHost(options: CreateLeaseHostOptions = {}): LeaseHost {
  return new LeaseHost({
    receiver: options.paymentServer ?? defaultPaymentServer(),
    ...(options.store ? { store: options.store } : {}),
    ...(options.graceMs === undefined ? {} : { graceMs: options.graceMs }),
  })
}
