export { Uplink, Channel, type DataHandler } from './server/uplink.js'
export { DEFAULT_UPLINK, parseUplinkUri, createPlugin, redactUplink, redactedMessage } from './uplink-uri.js'
export type { IlpPlugin } from './plugin.js'
export { PaymentSocket, SocketStream, type PaymentSocketOptions } from './server/payment-socket.js'
export {
  PaymentServer,
  createPaymentServer,
  defaultPaymentServer,
  type PaymentServerOptions,
  type PaymentServerEvents,
} from './server/payment-server.js'
export { Payer, createPayer, type PayerOptions, type PayerEvents, type ExpectOptions } from './payer/payer.js'
export type { PendingPayment } from './payer/pending.js'
export type { BudgetView, Reservation } from './payer/budget.js'
export { Budget, type RateCap } from './payer/budget.js'
export type { LeaseView, PayerLeaseStatus } from './payer/payer-lease.js'
export { LeaseSocketStream } from './server/payment-socket.js'
export { createLeaseHost, type CreateLeaseHostOptions } from './server/lease-host.js'
export { silentLogger, type Logger } from './logger.js'
