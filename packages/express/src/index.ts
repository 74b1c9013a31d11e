export { paidRoute, type PaidRouteOptions } from './paid-route.ts'
export type { PaymentReceipt } from '@cogpay/core'
