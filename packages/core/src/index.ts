export { ErrorCodes, type ErrorCode } from './errors/codes.js'
export { CogpayError, isCogpayError, type CogpayErrorOptions } from './errors/cogpay-error.js'
export { PaymentRequiredError } from './errors/payment-required-error.js'
export { SpendLimitError } from './errors/spend-limit-error.js'
export { PaymentInterruptedError } from './errors/payment-interrupted-error.js'
export { parseAmount, formatAmount, isAssetScale, MAX_AMOUNT, type Asset, type AmountLike } from './amount.js'
export { isIlpAddress, isUnderAddress, MAX_ADDRESS_LENGTH } from './address.js'
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
} from './wire.js'
export {
  paymentRequirements,
  readPaymentRequirements,
  type PaymentRequirements,
  type PaymentRequiredBody,
} from './requirements.js'
export {
  encodeHello,
  decodeHello,
  encodeFinal,
  decodeFinal,
  encodeAsk,
  decodeAsk,
  type AskLine,
  type StreamFinal,
  CloseReasons,
  MAX_HELLO_BYTES,
  type StreamHello,
  type LeaseTerms,
  type LeaseReport,
  encodeLeaseReport,
  decodeLeaseReport,
  PING_LINE,
} from './socket-messages.js'
export { LineReader, type LineReaderOptions } from './line-reader.js'
export { createPriceResolver, type PriceSpec, type PriceResolver } from './price.js'
export type { PaymentReceiver, CollectRequest, Collection, RefundRequest } from './receiver.js'
export {
  MemoryIdempotencyStore,
  MAX_IDEMPOTENCY_KEY_LENGTH,
  readIdempotencyKey,
  type IdempotencyOptions,
  type IdempotencyRecord,
  type IdempotencyStore,
  type MemoryIdempotencyStoreOptions,
  type StoredResponse,
} from './idempotency.js'
export {
  createPaywall,
  encodeBody,
  requestFingerprint,
  groupHeaders,
  type Paywall,
  type PaywallInput,
  type PaywallOptions,
  type PaywallOutcome,
  type PaymentReceipt,
} from './paywall.js'
export { Meter, type MeterOptions } from './meter.js'
export type { OpenRequest, PaymentStream } from './receiver.js'
export { createMetering, type Metering, type MeteringOptions, type MeteringOutcome } from './metering.js'
export type { PaidRouteOptions, MeteredRouteOptions, RefundPolicy } from './route-options.js'
export {
  LeaseHost,
  Lease,
  leaseTerms,
  type LeaseHostOptions,
  type LeaseOptions,
  type LeaseHostEvents,
} from './lease.js'
export {
  MemoryLeaseStore,
  leaseRecordToJson,
  leaseRecordFromJson,
  type LeaseStore,
  type LeaseRecord,
  type LeaseStatus,
} from './lease-store.js'
export { createLeasing, type Leasing, type LeasingOutcome, type LeaseRouteOptions } from './leasing.js'
export type { LeaseReceiver, LeaseStream, OpenLeaseRequest } from './receiver.js'
