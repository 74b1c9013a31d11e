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
export { Budget, type BudgetView, type Reservation } from './budget.ts'
