import type { Asset } from '@cogpay/core'

/** What one paid fetch cost. */
export interface Payment {
  readonly url: string
  readonly requestId: string
  /** What this client paid for the request, in its own units. The only number it can trust. */
  readonly spent: bigint
  /**
   * What the server paid back (a refund: the paid handler failed), in the client's units. The net
   * cost of the request is `spent - refunded`. Announced refunds have arrived (or timed out) by the
   * time the response is returned; one for a response cut off mid-body may arrive later, and this
   * is read live.
   */
  readonly refunded: bigint
  /** The cap this request had, in the client's units. */
  readonly maxSpend: bigint
  /** The price the server says it asked (`Cogpay-Price`), in the server's units. */
  readonly price: bigint | undefined
  /** What the server says it received (`Cogpay-Paid`), in the server's units. */
  readonly paid: bigint | undefined
  /** The server's asset, as it states it. */
  readonly serverAsset: Asset | undefined
  /**
   * True when the server, in the payer's own asset, states a price (`Cogpay-Price`) above this
   * request's cap: it served for less than it claims, or its headers lie. `spent` is still what was
   * paid, never more than the cap.
   */
  readonly priceAboveCap: boolean
  /**
   * The lease this request opened (`Cogpay-Lease`), if it did: the host now pulls `price` every
   * `intervalMs` from the payer's authorization for it (not from this call's `maxSpend`) until the
   * lease ends. Follow it with `payer.leases()`; stop it with `payer.revokeLease(id)`.
   */
  readonly lease?: string
  /**
   * Set when the server did not charge this attempt because it is a retry of one already paid
   * (same `Idempotency-Key`): `'response'`, the first attempt's stored response sent again;
   * `'payment'`, served again as already paid. This is what the server says (`Cogpay-Replayed`);
   * `spent` is what was paid for this call (a retry inside it, by an HTTP client such as undici's
   * RetryAgent, included).
   */
  readonly replayed?: 'response' | 'payment'
  readonly intervalMs?: number
  /** True for a metered response: it is paid as its body streams, and `spent` grows until `done`. */
  readonly metered: boolean
  /**
   * Resolves when the payment is over: at once for a fixed price, when the body has been read for a
   * metered response. `complete` is false when the body was cut because payment stopped.
   */
  readonly done: Promise<PaymentOutcome>
}

/** How a payment ended: see {@link Payment.done}. */
export interface PaymentOutcome {
  readonly spent: bigint
  readonly complete: boolean
  readonly code?: string
  /** Paid back by the server (its final message announced a refund), in the client's units. */
  readonly refunded: bigint
}

const payments = new WeakMap<Response, Payment>()

/** @internal */
export function recordPayment(response: Response, payment: Payment): void {
  payments.set(response, payment)
}

/** What a response from a paying fetch cost; `undefined` for any other response. */
export function getPayment(response: Response): Payment | undefined {
  return payments.get(response)
}
