import type { Asset } from './amount.js'
import type { PaymentHeaders } from './wire.js'
import type { CogpayError } from './errors/cogpay-error.js'
import type { LeaseReport, LeaseTerms, StreamFinal } from './socket-messages.js'

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
   * `COGPAY_PAYER_UNREACHABLE` or `COGPAY_PAYMENT_FAILED` (502), `COGPAY_UPLINK_UNAVAILABLE` (503);
   * when part of the amount had arrived, the error's `received` (a bigint) says how much.
   */
  collect(request: CollectRequest): Promise<Collection>
  /**
   * Opens a payment stream to the payer for metered work: the server raises what it asks for as
   * the work proceeds. Rejects like `collect` when no stream can be opened.
   */
  open(request: OpenRequest): Promise<PaymentStream>
  /**
   * Pays back up to `amount` (the server's units) of what a request paid, on a refund stream to
   * its payer. Resolves with what arrived; never rejects (a payer that is gone or refuses gets
   * nothing, and the result says so). A receiver without it cannot refund.
   */
  refund?(request: RefundRequest): Promise<bigint>
}

/** A refund to pay: part or all of what one request paid. */
export interface RefundRequest {
  /** The request's payment headers: its payer, and the request id the refund names. */
  readonly payment: PaymentHeaders
  /** At most this much, in the server's units. */
  readonly amount: bigint
}

/** A metered payment to open. */
export interface OpenRequest {
  readonly payment: PaymentHeaders
  /** The client's network address (its remote IP), for per-client limits. */
  readonly client?: string
}

/**
 * One request's payment stream, from the server's side: it asks for a running total and watches
 * money arrive. Made by a `PaymentReceiver`; used by a `Meter`.
 */
export interface PaymentStream {
  readonly asset: Asset
  /** Received so far on this stream, in the server's units. */
  readonly received: bigint
  /** Raises the total asked for on this stream (never lowers it). */
  ask(total: bigint): void
  /** Calls `listener` with the new received total on every arrival. Returns an unsubscribe. */
  onMoney(listener: (received: bigint) => void): () => void
  /**
   * Resolves with an error saying why the payer stopped (cap reached, aborted, refused, socket
   * died). Never resolves once the server closed the stream itself.
   */
  readonly stopped: Promise<CogpayError>
  /**
   * Stops accepting money beyond what has arrived: what is asked drops to what was received, so a
   * prepay window still being paid moves nothing more. A meter freezes its stream as it ends.
   */
  freeze?(): void
  /**
   * Ends the stream, first telling the payer how the response ended (metered streams). Idempotent.
   */
  close(final?: StreamFinal): void
}

/** One payment to collect. */
export interface CollectRequest {
  readonly payment: PaymentHeaders
  readonly amount: bigint
  /** The client's network address (its remote IP), for per-client limits. */
  readonly client?: string
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

/**
 * The payment side of a host that leases: opens a lease's stream to the payer. `@cogpay/ilp`'s
 * `PaymentServer` implements it.
 */
export interface LeaseReceiver {
  asset(): Promise<Asset>
  /** Opens a stream to the payer and writes the lease's hello on it. Rejects like `open`. */
  openLease(request: OpenLeaseRequest): Promise<LeaseStream>
}

/** A lease's stream to open. */
export interface OpenLeaseRequest {
  readonly payment: PaymentHeaders
  readonly lease: LeaseTerms
}

/** A lease's payment stream, the host's side: a `PaymentStream` that also hears the payer and keeps alive. */
export interface LeaseStream extends PaymentStream {
  /**
   * Resolves with the payer's report (what the host acknowledged receiving on this lease so far,
   * over all its streams), or `undefined` if the payer sent none before the stream stopped.
   */
  readonly report: Promise<LeaseReport | undefined>
  /** When the payer itself last answered a packet on this stream's socket (epoch ms). */
  readonly lastAnswerAt: number
  /** Sends a keep-alive line, so a payer that is gone shows as unanswered. */
  ping(): void
  /** Drops the stream and its socket without sending anything more (the payer is gone). */
  destroy(): void
}
