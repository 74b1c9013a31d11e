export { paidRoute, type PaidRouteOptions } from './paid-route.ts'
export type { PaymentReceipt } from '@cogpay/core'
export { meteredRoute, type MeteredRouteOptions } from './metered-route.ts'
export type { Meter } from '@cogpay/core'
