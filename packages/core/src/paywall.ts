import { utf8 } from './bytes.js'
import type { Asset } from './amount.js'
import { CogpayError, isCogpayError } from './errors/cogpay-error.js'
import { ErrorCodes } from './errors/codes.js'
import { createPriceResolver, type PriceSpec } from './price.js'
import type { PaymentReceiver } from './receiver.js'
import { paymentRequirements, type PaymentRequiredBody } from './requirements.js'
import { Headers, announcedCapBelow, parsePaymentHeaders, type HeaderSource } from './wire.js'

/** What a paid request paid, as the handler sees it (`res.locals.payment`, `ctx.state.payment`). */
export interface PaymentReceipt {
  readonly requestId: string
  /** The price asked, in the server's units. */
  readonly price: bigint
  /** What arrived, in the server's units. */
  readonly paid: bigint
  readonly asset: Asset
}

/** The request as the paywall needs it. */
export interface PaywallInput<Req> {
  readonly headers: HeaderSource
  /** The framework's request object, passed to a price function. */
  readonly request: Req
  /** Fires when the client goes away before it has paid. */
  readonly signal?: AbortSignal
  /** The client's network address (the request's remote IP), for per-client limits. */
  readonly client?: string
}

/**
 * What the framework adapter must do:
 * - `respond`: answer now with this status, headers and JSON body (400 and 402: protocol answers);
 * - `fail`: hand the error to the framework's error path (`next(err)`, Koa's throw): a 5xx
 *   `CogpayError`, or the app's own error from its price function, unchanged;
 * - `proceed`: set the headers, expose `receipt`, run the handler, and call `finish()` when the
 *   response is done.
 */
export type PaywallOutcome =
  | {
      readonly type: 'respond'
      readonly status: number
      readonly headers: Readonly<Record<string, string>>
      readonly body: PaymentRequiredBody
    }
  | { readonly type: 'fail'; readonly error: unknown }
  | {
      readonly type: 'proceed'
      readonly headers: Readonly<Record<string, string>>
      readonly receipt: PaymentReceipt
      finish(): void
    }

/** Options for {@link createPaywall}. */
export interface PaywallOptions {
  /** The payment side: where the money is collected. */
  readonly receiver: PaymentReceiver
}

/** The framework-free core of `paidRoute`: one request in, one instruction out. */
export interface Paywall<Req> {
  handle(input: PaywallInput<Req>): Promise<PaywallOutcome>
}

/**
 * Creates the paywall for a price. The price is checked now: a bad fixed price throws
 * `COGPAY_INVALID_OPTIONS` here, at setup, not on the first request.
 */
export function createPaywall<Req>(price: PriceSpec<Req>, options: PaywallOptions): Paywall<Req> {
  const resolvePrice = createPriceResolver(price)
  const receiver = options.receiver
  if (typeof receiver?.collect !== 'function' || typeof receiver.asset !== 'function') {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, 'receiver must implement asset() and collect()')
  }

  return {
    async handle(input) {
      // Headers first: a malformed request is answered without running the price function.
      const parsed = parsePaymentHeaders(input.headers)
      if (parsed.type === 'invalid') return respondWithError(parsed.error)
      let amount: bigint
      let asset: Asset
      try {
        amount = await resolvePrice(input.request)
        asset = await receiver.asset()
      } catch (err) {
        // The app's own error (its price function threw): its error handler decides, and its
        // message is not ours to show.
        return fail(err)
      }
      if (parsed.type === 'none') {
        if (amount === 0n) return proceed({ requestId: '', price: 0n, paid: 0n, asset }, () => {})
        const error = new CogpayError(
          ErrorCodes.PAYMENT_REQUIRED,
          `this resource costs ${amount} (asset ${asset.code}, scale ${asset.scale}); pay with the ${Headers.scheme} headers`,
          { status: 402 },
        )
        return respondWithError(error, amount, asset)
      }
      const { requestId } = parsed.headers
      if (amount === 0n) return proceed({ requestId, price: 0n, paid: 0n, asset }, () => {})
      // The payer announced a cap below the price: refuse now, without opening a socket.
      if (announcedCapBelow(parsed.headers.maxSpend, amount, asset)) {
        return respondWithError(capBelow(amount, parsed.headers.maxSpend?.amount ?? 0n), amount, asset)
      }
      try {
        const collection = await receiver.collect({
          payment: parsed.headers,
          amount,
          ...(input.signal ? { signal: input.signal } : {}),
          ...(input.client ? { client: input.client } : {}),
        })
        const receipt = { requestId, price: amount, paid: collection.paid, asset: collection.asset }
        return proceed(receipt, () => collection.close())
      } catch (err) {
        const error = isCogpayError(err)
          ? err
          : new CogpayError(ErrorCodes.PAYMENT_FAILED, 'the payment failed on the server side', {
              status: 502,
              cause: err,
            })
        // A 402 still says what the price was, so the client learns it even from a failed attempt.
        if (error.status === 402) return respondWithError(error, amount, asset)
        if (error.status < 500) return respondWithError(error)
        return { type: 'fail', error }
      }
    },
  }
}

/** @internal The 402 for a price above a cap the payer announced. */
export function capBelow(price: bigint, cap: bigint): CogpayError {
  return new CogpayError(
    ErrorCodes.CAP_TOO_LOW,
    `the payer's announced cap is below the price: price=${price} maxSpend=${cap}`,
    { status: 402 },
  )
}

function fail(error: unknown): PaywallOutcome {
  return { type: 'fail', error }
}

function proceed(receipt: PaymentReceipt, finish: () => void): PaywallOutcome {
  const headers: Record<string, string> = {
    [Headers.price]: receipt.price.toString(),
    [Headers.paid]: receipt.paid.toString(),
    [Headers.assetCode]: receipt.asset.code,
    [Headers.assetScale]: String(receipt.asset.scale),
  }
  if (receipt.requestId) headers[Headers.requestId] = receipt.requestId
  let finished = false
  return {
    type: 'proceed',
    headers,
    receipt,
    finish() {
      if (finished) return
      finished = true
      finish()
    },
  }
}

/** @internal The protocol answer for an error: JSON body, `Cogpay-Error` header, requirements on a 402. */
export function respondWithError(
  error: CogpayError,
  amount?: bigint,
  asset?: Asset,
  metered = false,
  intervalMs?: number,
): Extract<PaywallOutcome, { type: 'respond' }> {
  const body: PaymentRequiredBody =
    amount !== undefined && asset
      ? { ...error.toJSON(), accepts: [paymentRequirements(amount, asset, metered, intervalMs)] }
      : error.toJSON()
  return {
    type: 'respond',
    status: error.status,
    // The error's own headers too (Retry-After on a 429 or 503).
    headers: { ...error.headers, [Headers.error]: error.code, 'Content-Type': 'application/json; charset=utf-8' },
    body,
  }
}

/** Serialises a paywall body (for adapters that write raw bytes). */
export function encodeBody(body: PaymentRequiredBody): Uint8Array {
  return utf8(JSON.stringify(body))
}
