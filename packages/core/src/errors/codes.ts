/**
 * Every error code cogpay emits, on the wire (`Cogpay-Error` header, JSON `error.code`) and on
 * thrown errors (`err.code`). Codes are stable: match on them, not on messages.
 */
export const ErrorCodes = {
  /** 402: the request carried no payment headers. The body says how to pay. */
  PAYMENT_REQUIRED: 'COGPAY_PAYMENT_REQUIRED',
  /** 400: some payment headers are present but not all. */
  MISSING_HEADER: 'COGPAY_MISSING_HEADER',
  /** 400: a payment header was sent more than once. */
  DUPLICATE_HEADER: 'COGPAY_DUPLICATE_HEADER',
  /** 400: a payment header is longer than its limit. */
  HEADER_TOO_LARGE: 'COGPAY_HEADER_TOO_LARGE',
  /** 400: `Cogpay-Scheme` names a scheme or version this server does not speak. */
  UNSUPPORTED_SCHEME: 'COGPAY_UNSUPPORTED_SCHEME',
  /** 400: `Cogpay-Address` is not a valid ILP address, or one the server will not connect to. */
  INVALID_ADDRESS: 'COGPAY_INVALID_ADDRESS',
  /** 400: `Cogpay-Secret` is not base64 of exactly 32 bytes. */
  INVALID_SECRET: 'COGPAY_INVALID_SECRET',
  /** 400: `Cogpay-Request-Id` is not 16 to 64 characters of `[A-Za-z0-9_-]`. */
  INVALID_REQUEST_ID: 'COGPAY_INVALID_REQUEST_ID',
  /** 400: `Cogpay-Max-Spend` is not `<amount> <assetCode> <assetScale>`. */
  INVALID_MAX_SPEND: 'COGPAY_INVALID_MAX_SPEND',
  /** 402: the payer's cap is below the price: it refused, or stopped at its cap. */
  CAP_TOO_LOW: 'COGPAY_CAP_TOO_LOW',
  /** 402: the payer refused this request: it has no request in flight with this id. */
  PAYER_REFUSED: 'COGPAY_PAYER_REFUSED',
  /** 402: the payer did not pay the price within the payment timeout. */
  PAYMENT_TIMEOUT: 'COGPAY_PAYMENT_TIMEOUT',
  /** Metered: the client went away, or its payer aborted the request. */
  CLIENT_ABORTED: 'COGPAY_CLIENT_ABORTED',
  /** 402 / meter: the payer revoked its authorization for this host; it pays no more. */
  AUTHORIZATION_REVOKED: 'COGPAY_AUTHORIZATION_REVOKED',
  /**
   * 402 / lease: the lease's rate is above the payer's rate cap for this host (at most so much per
   * interval), or the host asked for more than one interval's worth at once.
   */
  RATE_TOO_HIGH: 'COGPAY_RATE_TOO_HIGH',
  /** Across assets, the exchange rate fell below the payer's minimum (its slippage bound): it stopped paying. */
  EXCHANGE_RATE_TOO_LOW: 'COGPAY_EXCHANGE_RATE_TOO_LOW',
  /** Lease: the host ended the lease (the resource was stopped or deleted); it asks for no more. */
  LEASE_ENDED: 'COGPAY_LEASE_ENDED',
  /** Metered: a charge was not paid within the stall timeout. */
  PAYMENT_STALLED: 'COGPAY_PAYMENT_STALLED',
  /** A metered response was not served in full: its handler failed (threw, answered 5xx, or was cut off). */
  HANDLER_FAILED: 'COGPAY_HANDLER_FAILED',
  /** 502: the server could not open a payment socket to the payer's address. */
  PAYER_UNREACHABLE: 'COGPAY_PAYER_UNREACHABLE',
  /** 502: the payment socket failed while the payment was under way. */
  PAYMENT_FAILED: 'COGPAY_PAYMENT_FAILED',
  /** 503: the server's own uplink is down, or it has no room for another payment socket. */
  UPLINK_UNAVAILABLE: 'COGPAY_UPLINK_UNAVAILABLE',
  /** 500: a price function returned something that is not an amount. */
  INVALID_PRICE: 'COGPAY_INVALID_PRICE',
  /** Thrown at setup: an option given to a factory is invalid. */
  INVALID_OPTIONS: 'COGPAY_INVALID_OPTIONS',
  /** Thrown: a value is not an amount (a non-negative integer, as bigint or decimal string). */
  INVALID_AMOUNT: 'COGPAY_INVALID_AMOUNT',
  /** Client: the server asks for more than `maxSpend`. Nothing above the cap was paid. */
  SPEND_LIMIT: 'COGPAY_SPEND_LIMIT',
  /**
   * Client: a metered response's body was cut because payment stopped (the server's final message
   * said `stopped`, or none arrived). What arrived before is paid for; the rest never came.
   */
  PAYMENT_INTERRUPTED: 'COGPAY_PAYMENT_INTERRUPTED',
  /** 429: one client (a remote IP, or a payer's account) has too many payments under way; retry after `Retry-After`. */
  TOO_MANY_REQUESTS: 'COGPAY_TOO_MANY_REQUESTS',
  /** 503: the server has too many payment sockets opening at once, over all clients; retry after `Retry-After`. */
  SERVER_BUSY: 'COGPAY_SERVER_BUSY',
  /** Client: no response arrived within `timeoutMs` (the request was aborted; the error carries `spent`). */
  RESPONSE_TIMEOUT: 'COGPAY_RESPONSE_TIMEOUT',
  /** 400: `Idempotency-Key` is not 1 to 255 visible ASCII characters (a quoted string is accepted), or was sent twice. */
  INVALID_IDEMPOTENCY_KEY: 'COGPAY_INVALID_IDEMPOTENCY_KEY',
  /** 409: a request with this `Idempotency-Key` is still under way; retry after `Retry-After`. */
  IDEMPOTENCY_IN_PROGRESS: 'COGPAY_IDEMPOTENCY_IN_PROGRESS',
  /** 422: this `Idempotency-Key` was used by the same payer for a different request (method, path or body length). */
  IDEMPOTENCY_KEY_REUSED: 'COGPAY_IDEMPOTENCY_KEY_REUSED',
  /** 422: this `Idempotency-Key` was already served again as paid `maxReplays` times; send a new request. */
  IDEMPOTENCY_REPLAYS_EXHAUSTED: 'COGPAY_IDEMPOTENCY_REPLAYS_EXHAUSTED',
  /** 503: the server's idempotency store failed (nothing was charged); retry shortly. */
  STORE_UNAVAILABLE: 'COGPAY_STORE_UNAVAILABLE',
  /** Client: the server's answer breaks the protocol (bad payment response headers). */
  PROTOCOL_ERROR: 'COGPAY_PROTOCOL_ERROR',
} as const

/** One of {@link ErrorCodes}. */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes]
