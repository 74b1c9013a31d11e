import type { Asset } from './amount.ts'
import type { PaymentHeaders } from './wire.ts'

/**
 * The payment side of a server, as the paywall sees it. `@cogpay/ilp` implements it over STREAM;
 * core knows nothing of ILP.
 */
export interface PaymentReceiver {
  /** The asset this server is paid in. Rejects with `COGPAY_UPLINK_UNAVAILABLE` when unknown. */
  asset(): Promise<Asset>
  /**
   * Asks the payer named by `payment` for `amount` and resolves once it has arrived. Rejects with
   * a `CogpayError`: `COGPAY_CAP_TOO_LOW` or `COGPAY_PAYMENT_TIMEOUT` (402),
   * `COGPAY_PAYER_UNREACHABLE` or `COGPAY_PAYMENT_FAILED` (502), `COGPAY_UPLINK_UNAVAILABLE` (503).
   */
  collect(request: CollectRequest): Promise<Collection>
}

/** One payment to collect. */
export interface CollectRequest {
  readonly payment: PaymentHeaders
  readonly amount: bigint
  /** Aborts the collection (the client went away). */
  readonly signal?: AbortSignal
}

/** A payment that has arrived. */
export interface Collection {
  /** What arrived, in the server's units (at least the amount asked for). */
  readonly paid: bigint
  readonly asset: Asset
  /** Ends the payment stream. Call it when the response is done. Idempotent. */
  close(): void
}
