export {
  createPayFetch,
  payFetch,
  closePayFetch,
  type PayFetch,
  type PayFetchInit,
  type PayFetchOptions,
  type FetchFunction,
  type PayFetchHooks,
  type SpendState,
} from './pay-fetch.js'
export { getPayment, type Payment, type PaymentOutcome } from './payment.js'
export { PaymentRequiredError, SpendLimitError, PaymentInterruptedError, CogpayError, ErrorCodes } from '@cogpay/core'
export { createPayer, type Payer } from '@cogpay/ilp'
