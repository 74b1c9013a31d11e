import { isIlpAddress, MAX_ADDRESS_LENGTH } from './address.js'
import { isAssetScale, parseAmount, type Asset } from './amount.js'
import { CogpayError } from './errors/cogpay-error.js'
import { ErrorCodes, type ErrorCode } from './errors/codes.js'
import { fromBase64, toBase64 } from './bytes.js'

/** Scheme name and major version this implementation speaks, as sent in `Cogpay-Scheme`. */
export const SCHEME = 'ilp-stream/1'
/** Scheme name, without version, as it appears in a 402 body. */
export const SCHEME_NAME = 'ilp-stream'
/** Major version of the wire format. */
export const WIRE_VERSION = 1

/** Header names of the wire format, version 1 (HTTP header names are case-insensitive). */
export const Headers = {
  /** Request: scheme and version, `ilp-stream/1`. */
  scheme: 'Cogpay-Scheme',
  /** Request: the payer's ILP address for this server; the server connects to it. */
  address: 'Cogpay-Address',
  /** Request: the 32-byte STREAM shared secret, base64 or base64url. */
  secret: 'Cogpay-Secret',
  /** Request: an id for this request; the server names it on the payment stream. Echoed back. */
  requestId: 'Cogpay-Request-Id',
  /**
   * Request, optional: the payer's cap for this request, `<amount> <assetCode> <assetScale>`.
   * Sent only when the client opts in (it tells the server the budget). A server whose price, or a
   * metered route's `maxPrice`, is above it in the same asset refuses before opening a socket.
   */
  maxSpend: 'Cogpay-Max-Spend',
  /** Response: the price asked for this request, in the server's asset. */
  price: 'Cogpay-Price',
  /** Response: what the server received for this request, in the server's asset. */
  paid: 'Cogpay-Paid',
  /** Response: the server's asset code. */
  assetCode: 'Cogpay-Asset-Code',
  /** Response: the server's asset scale. */
  assetScale: 'Cogpay-Asset-Scale',
  /**
   * Response: `1` on a metered response. Its body is complete only if the server's final message
   * on the payment stream says `complete`.
   */
  metered: 'Cogpay-Metered',
  /** Response (errors): the error code. */
  error: 'Cogpay-Error',
  /** Response: the id of the lease this request opened (the host pulls for it until it ends). */
  lease: 'Cogpay-Lease',
  /** Response of a lease (and in a 402 body): `Cogpay-Price` is pulled every this many ms. */
  interval: 'Cogpay-Interval-Ms',
  /**
   * Response (a paid request that failed: 5xx): the server pays back this much of what the request
   * paid, in its own units, on a refund stream it opens on the payer's socket right after.
   */
  refund: 'Cogpay-Refund',
  /**
   * Request, optional (draft-ietf-httpapi-idempotency-key-header): one logical request. A retry
   * with the same key, from the same payer, is never charged twice.
   */
  idempotencyKey: 'Idempotency-Key',
  /** Response: `1` when the response is a stored copy of the first attempt's (a retry was replayed). */
  replayed: 'Cogpay-Replayed',
} as const

/** The longest value accepted for each request header, in characters. */
export const HEADER_LIMITS = {
  scheme: 64,
  address: MAX_ADDRESS_LENGTH,
  secret: 64,
  requestId: 64,
} as const

/** A shared secret is exactly this many bytes. */
export const SECRET_LENGTH = 32

/** The payment headers of a request, parsed and valid. */
export interface PaymentHeaders {
  readonly address: string
  readonly secret: Uint8Array
  readonly requestId: string
  /** The payer's announced cap, when it chose to send `Cogpay-Max-Spend`. */
  readonly maxSpend?: AnnouncedCap
}

/** A cap announced in `Cogpay-Max-Spend`, in the payer's asset. */
export interface AnnouncedCap {
  readonly amount: bigint
  readonly asset: Asset
}

/** Reads a request header by lower-case name; arrays are repeated headers. */
export type HeaderSource = (lowerCaseName: string) => string | readonly string[] | undefined

/** What {@link parsePaymentHeaders} found. */
export type ParsedPaymentHeaders =
  | { readonly type: 'none' }
  | { readonly type: 'valid'; readonly headers: PaymentHeaders }
  | { readonly type: 'invalid'; readonly error: CogpayError }

const REQUEST_ID = /^[A-Za-z0-9_-]{16,64}$/
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/
const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/

const invalid = (code: ErrorCode, message: string): ParsedPaymentHeaders => ({
  type: 'invalid',
  error: new CogpayError(code, message, { status: 400 }),
})

/**
 * Parses the payment headers of a request. Returns `none` when the request carries none of them,
 * `invalid` with a 400 error naming the problem, or the valid headers. Nothing is trusted before
 * this returns `valid`, and no socket may be opened on anything else.
 */
export function parsePaymentHeaders(get: HeaderSource): ParsedPaymentHeaders {
  const fields = ['scheme', 'address', 'secret', 'requestId'] as const
  const values: Partial<Record<(typeof fields)[number], string>> = {}
  for (const field of fields) {
    const name = Headers[field]
    const raw = get(name.toLowerCase())
    if (raw === undefined) continue
    const list = typeof raw === 'string' ? [raw] : raw
    if (list.length === 0) continue
    if (list.length > 1) {
      return invalid(ErrorCodes.DUPLICATE_HEADER, `${name} was sent ${list.length} times; send it once`)
    }
    const value = trimHttpWhitespace(list[0] ?? '')
    if (value.length > HEADER_LIMITS[field]) {
      return invalid(
        ErrorCodes.HEADER_TOO_LARGE,
        `${name} is ${value.length} characters long; the limit is ${HEADER_LIMITS[field]}`,
      )
    }
    values[field] = value
  }
  const present = fields.filter((field) => values[field] !== undefined)
  if (present.length === 0) return { type: 'none' }
  const missing = fields.filter((field) => values[field] === undefined).map((field) => Headers[field])
  if (missing.length > 0) {
    return invalid(ErrorCodes.MISSING_HEADER, `payment headers are incomplete: missing ${missing.join(', ')}`)
  }
  const { scheme = '', address = '', secret = '', requestId = '' } = values

  if (scheme !== SCHEME) {
    return invalid(
      ErrorCodes.UNSUPPORTED_SCHEME,
      `${Headers.scheme} ${JSON.stringify(scheme)} is not supported; this server speaks ${SCHEME}`,
    )
  }
  if (!isIlpAddress(address) || /^(peer|self|local)\./.test(address)) {
    return invalid(
      ErrorCodes.INVALID_ADDRESS,
      `${Headers.address} ${JSON.stringify(address.slice(0, 80))} is not an ILP address a payer can be reached at (RFC 15; not peer., self. or local.)`,
    )
  }
  const secretBytes = decodeSecret(secret)
  if (!secretBytes) {
    return invalid(
      ErrorCodes.INVALID_SECRET,
      `${Headers.secret} must be base64 or base64url of exactly ${SECRET_LENGTH} bytes`,
    )
  }
  if (!REQUEST_ID.test(requestId)) {
    return invalid(
      ErrorCodes.INVALID_REQUEST_ID,
      `${Headers.requestId} must be 16 to 64 characters of A-Z a-z 0-9 _ -`,
    )
  }
  const cap = get(Headers.maxSpend.toLowerCase())
  if (cap === undefined || (typeof cap !== 'string' && cap.length === 0)) {
    return { type: 'valid', headers: { address, secret: secretBytes, requestId } }
  }
  const maxSpend = parseAnnouncedCap(typeof cap === 'string' ? [cap] : cap)
  if (!maxSpend) {
    return invalid(
      ErrorCodes.INVALID_MAX_SPEND,
      `${Headers.maxSpend} must be sent once as "<amount> <assetCode> <assetScale>", e.g. "5000 XRP 9"`,
    )
  }
  return { type: 'valid', headers: { address, secret: secretBytes, requestId, maxSpend } }
}

/**
 * Strips the optional whitespace around a field value: space and horizontal tab only (RFC 9110 §5.5).
 * `String.prototype.trim` would also strip U+00A0 and other Unicode spaces, accepting values that are
 * not what the peer sent.
 */
export function trimHttpWhitespace(value: string): string {
  // A loop, not /[ \t]+$/: that regex backtracks quadratically on a long run of spaces.
  let start = 0
  let end = value.length
  while (start < end && isHttpWhitespace(value.charCodeAt(start))) start++
  while (end > start && isHttpWhitespace(value.charCodeAt(end - 1))) end--
  return value.slice(start, end)
}

function isHttpWhitespace(code: number): boolean {
  return code === 0x20 || code === 0x09
}

const ANNOUNCED_CAP = /^(0|[1-9][0-9]{0,19}) ([A-Za-z0-9]{1,12}) ([0-9]{1,3})$/

function parseAnnouncedCap(values: readonly string[]): AnnouncedCap | undefined {
  if (values.length !== 1) return undefined
  const match = ANNOUNCED_CAP.exec(trimHttpWhitespace(values[0] ?? ''))
  if (!match) return undefined
  const scale = Number(match[3])
  if (!isAssetScale(scale)) return undefined
  try {
    return { amount: parseAmount(match[1]), asset: { code: match[2] ?? '', scale } }
  } catch {
    return undefined
  }
}

/** True when an announced cap is in `asset` and below `price`: the payer will not pay it. */
export function announcedCapBelow(cap: AnnouncedCap | undefined, price: bigint, asset: Asset): boolean {
  return cap !== undefined && cap.asset.code === asset.code && cap.asset.scale === asset.scale && cap.amount < price
}

/** Decodes a secret strictly: base64 or base64url that round-trips to exactly 32 bytes. */
function decodeSecret(text: string): Uint8Array | undefined {
  // Either alphabet, padded or not (RFC 4648 allows padding in base64url too).
  const url = BASE64URL.test(text) && /[-_]/.test(text)
  if (!url && !BASE64.test(text)) return undefined
  const bytes = fromBase64(text)
  if (bytes?.length !== SECRET_LENGTH) return undefined
  // Base64 decoding is lenient; insist that the text is the canonical encoding of the bytes.
  const canonical = toBase64(bytes, url).replace(/=+$/, '')
  return text.replace(/=+$/, '') === canonical && text.length - canonical.length <= 1 ? bytes : undefined
}

/** Writes the request headers a payer sends. */
export function paymentRequestHeaders(payment: PaymentHeaders): Record<string, string> {
  const headers: Record<string, string> = {
    [Headers.scheme]: SCHEME,
    [Headers.address]: payment.address,
    [Headers.secret]: toBase64(payment.secret, true),
    [Headers.requestId]: payment.requestId,
  }
  const cap = payment.maxSpend
  if (cap) headers[Headers.maxSpend] = `${cap.amount} ${cap.asset.code} ${cap.asset.scale}`
  return headers
}
