export { Uplink, Channel, type DataHandler } from './uplink.js'
export { DEFAULT_UPLINK, parseUplinkUri, createPlugin, redactUplink, redactedMessage } from './uplink-uri.js'
export type { IlpPlugin } from './plugin.js'
export { PaymentSocket, SocketStream, type PaymentSocketOptions } from './payment-socket.js'
export {
  PaymentServer,
  createPaymentServer,
  defaultPaymentServer,
  type PaymentServerOptions,
  type PaymentServerEvents,
} from './payment-server.js'
export { Payer, createPayer, type PayerOptions, type PayerEvents, type PendingPayment, type ExpectOptions } from './payer.js'
export type { BudgetView, Reservation } from './budget.js'
export { Budget, type RateCap } from './budget.js'
export type { LeaseView, PayerLeaseStatus } from './payer-lease.js'
export { LeaseSocketStream } from './payment-socket.js'
export { createLeaseHost, type CreateLeaseHostOptions } from './lease-host.js'
export { silentLogger, type Logger } from './logger.js'
