export { Uplink, Channel } from './uplink.ts'
export { DEFAULT_UPLINK, parseUplinkUri, createPlugin } from './uplink-uri.ts'
export type { IlpPlugin } from './plugin.ts'
export { PaymentSocket, SocketStream, type PaymentSocketOptions } from './payment-socket.ts'
export {
  PaymentServer,
  createPaymentServer,
  defaultPaymentServer,
  type PaymentServerOptions,
  type PaymentServerEvents,
} from './payment-server.ts'
export { Payer, createPayer, type PayerOptions, type PayerEvents, type PendingPayment, type ExpectOptions } from './payer.ts'
export type { BudgetView, Reservation } from './budget.ts'
export { Budget, type RateCap } from './budget.ts'
export type { LeaseView, PayerLeaseStatus } from './payer-lease.ts'
export { LeaseSocketStream } from './payment-socket.ts'
export { createLeaseHost, type CreateLeaseHostOptions } from './lease-host.ts'
