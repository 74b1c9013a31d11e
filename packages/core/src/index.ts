export { ErrorCodes, type ErrorCode } from './errors/codes.ts'
export { CogpayError, isCogpayError, type CogpayErrorOptions } from './errors/cogpay-error.ts'
export { PaymentRequiredError } from './errors/payment-required-error.ts'
export { SpendLimitError } from './errors/spend-limit-error.ts'
export { PaymentInterruptedError } from './errors/payment-interrupted-error.ts'
export { parseAmount, formatAmount, isAssetScale, MAX_AMOUNT, type Asset, type AmountLike } from './amount.ts'
export { isIlpAddress, isUnderAddress, MAX_ADDRESS_LENGTH } from './address.ts'
export {
  Headers,
  HEADER_LIMITS,
  SCHEME,
  SCHEME_NAME,
  WIRE_VERSION,
  SECRET_LENGTH,
  parsePaymentHeaders,
  paymentRequestHeaders,
  announcedCapBelow,
  type AnnouncedCap,
  type PaymentHeaders,
  type HeaderSource,
  type ParsedPaymentHeaders,
} from './wire.ts'
export {
  paymentRequirements,
  readPaymentRequirements,
  type PaymentRequirements,
  type PaymentRequiredBody,
} from './requirements.ts'
export {
  encodeHello,
  decodeHello,
  encodeFinal,
  decodeFinal,
  type StreamFinal,
  CloseReasons,
  MAX_HELLO_BYTES,
  type StreamHello,
  type LeaseTerms,
  type LeaseReport,
  encodeLeaseReport,
  decodeLeaseReport,
  PING_LINE,
} from './socket-messages.ts'
export { createPriceResolver, type PriceSpec, type PriceResolver } from './price.ts'
export type { PaymentReceiver, CollectRequest, Collection } from './receiver.ts'
export {
  createPaywall,
  encodeBody,
  type Paywall,
  type PaywallInput,
  type PaywallOptions,
  type PaywallOutcome,
  type PaymentReceipt,
} from './paywall.ts'
export { Meter, type MeterOptions } from './meter.ts'
export type { OpenRequest, PaymentStream } from './receiver.ts'
export { createMetering, type Metering, type MeteringOptions, type MeteringOutcome } from './metering.ts'
export { beforeHeaders } from './before-headers.ts'
export { clientGone } from './client-gone.ts'
export type { PaidRouteOptions, MeteredRouteOptions } from './route-options.ts'
export {
  LeaseHost,
  Lease,
  leaseTerms,
  type LeaseHostOptions,
  type LeaseOptions,
  type LeaseHostEvents,
} from './lease.ts'
export {
  MemoryLeaseStore,
  FileLeaseStore,
  type LeaseStore,
  type LeaseRecord,
  type LeaseStatus,
} from './lease-store.ts'
export { createLeasing, type Leasing, type LeasingOutcome, type LeaseRouteOptions } from './leasing.ts'
export type { LeaseReceiver, LeaseStream, OpenLeaseRequest } from './receiver.ts'
