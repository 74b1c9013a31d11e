import { isAssetScale, parseAmount, type Asset } from './amount.js'
import { Headers, SCHEME, SCHEME_NAME, WIRE_VERSION } from './wire.js'
import type { ErrorCode } from './errors/codes.js'

/** How to pay for a request: one entry of a 402 body's `accepts`. */
export interface PaymentRequirements {
  /** Scheme name, `ilp-stream`. */
  readonly scheme: string
  /** Major version of the scheme, `1`. */
  readonly version: number
  /** The price, in the smallest unit of the server's asset, as a decimal string. */
  readonly amount: string
  readonly assetCode: string
  readonly assetScale: number
  /**
   * True for metered routes: the price is charged as the work proceeds, up to the payer's cap, and
   * `amount` is `"0"` (nothing is known up front).
   */
  readonly metered?: boolean
  /**
   * Present for leases: `amount` is pulled at the start of every interval of this many ms while
   * the resource runs, from a payer that authorized this host to pull over time.
   */
  readonly intervalMs?: number
  /** Request headers that carry a payment, with the value of `Cogpay-Scheme`. */
  readonly headers: { readonly scheme: string; readonly names: readonly string[] }
}

/** The JSON body of a 402 (and of every cogpay error response, without `accepts`). */
export interface PaymentRequiredBody {
  readonly error: { readonly code: ErrorCode | string; readonly message: string }
  readonly accepts?: readonly PaymentRequirements[]
}

/** Builds the requirements for a price in an asset. */
export function paymentRequirements(
  amount: bigint,
  asset: Asset,
  metered = false,
  intervalMs?: number,
): PaymentRequirements {
  return {
    scheme: SCHEME_NAME,
    version: WIRE_VERSION,
    amount: amount.toString(),
    assetCode: asset.code,
    assetScale: asset.scale,
    ...(metered ? { metered: true } : {}),
    ...(intervalMs ? { intervalMs } : {}),
    headers: {
      scheme: SCHEME,
      names: [Headers.scheme, Headers.address, Headers.secret, Headers.requestId],
    },
  }
}

/**
 * Reads a 402 body a server sent, defensively: returns the `ilp-stream` requirements it carries,
 * or `undefined` when the body has none that are well formed.
 */
export function readPaymentRequirements(body: unknown): PaymentRequirements | undefined {
  if (typeof body !== 'object' || body === null) return undefined
  const accepts = (body as { accepts?: unknown }).accepts
  if (!Array.isArray(accepts)) return undefined
  for (const entry of accepts.slice(0, 16)) {
    if (typeof entry !== 'object' || entry === null) continue
    const e = entry as Record<string, unknown>
    if (e.scheme !== SCHEME_NAME || e.version !== WIRE_VERSION) continue
    if (typeof e.assetCode !== 'string' || !isAssetScale(e.assetScale)) continue
    try {
      const amount = parseAmount(e.amount)
      const intervalMs = Number.isSafeInteger(e.intervalMs) && (e.intervalMs as number) > 0 ? (e.intervalMs as number) : undefined
      return paymentRequirements(amount, { code: e.assetCode, scale: e.assetScale }, e.metered === true, intervalMs)
    } catch {
      continue
    }
  }
  return undefined
}
