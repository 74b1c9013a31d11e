import { byteLength, fromBase64, text, utf8 } from './bytes.js'
import { parseAmount } from './amount.js'
import { isIlpAddress } from './address.js'

/**
 * Messages on the payment socket itself (STREAM stream data and close reasons). The server writes
 * one {@link StreamHello} as the first bytes of every stream it opens, so the payer can match the
 * stream to a request in flight before it allows any money to move.
 */
export interface StreamHello {
  /** Wire version, `1`. */
  readonly v: 1
  /** The `Cogpay-Request-Id` of the request this stream pays for. */
  readonly requestId: string
  /** The total the server will ask for on this stream, in its own units, when known up front. */
  readonly amount?: bigint
  /** Present on a lease's stream: the host will pull `amount` every `intervalMs` on it. */
  readonly lease?: LeaseTerms
  /**
   * Present on a refund stream: the server pays back up to this much (its own units) of what the
   * request paid, on this stream, in the other direction. Never with `amount` or `lease`.
   */
  readonly refund?: bigint
}

/** A lease's terms, as its stream's hello states them. */
export interface LeaseTerms {
  /** The lease, named by the host: 16 to 64 characters of `[A-Za-z0-9_-]`. */
  readonly id: string
  /** Pulled at the start of each interval, in the host's units. */
  readonly amount: bigint
  readonly intervalMs: number
  /** True when the host reopens a lease it started earlier (after a restart or a lost socket). */
  readonly resume?: boolean
}

/**
 * The payer's first line on a lease's stream: what the host has acknowledged receiving on this
 * lease so far, over all its streams, in the host's units. A host that lost its last update (it
 * crashed after money arrived, before it wrote it down) takes it from here, so it never asks twice
 * for the same interval.
 */
export interface LeaseReport {
  readonly v: 1
  readonly lease: string
  readonly received: bigint
  /**
   * Where to resume this lease next time (after a restart): a fresh address and secret (base64url)
   * for the same payer. A new connection must not land on the payer's end of the old one, which
   * may still be open, so each stream hands out the credentials for the next.
   */
  readonly resume?: { readonly address: string; readonly secret: string }
}

const LEASE_ID = /^[A-Za-z0-9_-]{16,64}$/

/** Serialises a lease report: one line of JSON. */
export function encodeLeaseReport(report: LeaseReport): Uint8Array {
  const json = { v: 1, lease: report.lease, received: report.received.toString(), ...(report.resume ? { resume: report.resume } : {}) }
  return utf8(`${JSON.stringify(json)}\n`)
}

/** Parses a lease report line. Returns `undefined` for anything else. */
export function decodeLeaseReport(line: Uint8Array | string): LeaseReport | undefined {
  const value = parseLine(line)
  if (!value || value.v !== 1 || typeof value.lease !== 'string' || !LEASE_ID.test(value.lease)) return undefined
  let resume: LeaseReport['resume']
  if (value.resume !== undefined) {
    const { address, secret } = value.resume as { address?: unknown; secret?: unknown }
    if (typeof address !== 'string' || !isIlpAddress(address) || typeof secret !== 'string') return undefined
    if (fromBase64(secret)?.length !== 32) return undefined
    resume = { address, secret }
  }
  try {
    return { v: 1, lease: value.lease, received: parseAmount(value.received), ...(resume ? { resume } : {}) }
  } catch {
    return undefined
  }
}

/**
 * The server's line on a metered or lease stream each time it raises what it asks for: the new
 * total asked and what it had received when it asked, both in its own units. STREAM's public API
 * shows a payer no receive max; this does, so any payer can tell "the server wants more than my
 * cap" and refuse at once (`COGPAY_CAP_TOO_LOW`). A payer may ignore it.
 */
export interface AskLine {
  readonly v: 1
  readonly ask: bigint
  readonly received: bigint
}

/** Serialises an ask line. */
export function encodeAsk(line: AskLine): Uint8Array {
  return utf8(`${JSON.stringify({ v: 1, ask: line.ask.toString(), received: line.received.toString() })}\n`)
}

/** Parses an ask line. Returns `undefined` for anything else. */
export function decodeAsk(line: Uint8Array | string): AskLine | undefined {
  const value = parseLine(line)
  if (!value || value.v !== 1 || value.ask === undefined || value.final !== undefined) return undefined
  try {
    return { v: 1, ask: parseAmount(value.ask), received: parseAmount(value.received) }
  } catch {
    return undefined
  }
}

/** A host's keep-alive line on a lease's stream while it has nothing to ask: the payer ignores it. */
export const PING_LINE: Uint8Array = utf8('{"v":1,"ping":1}\n')

/** Longest hello, newline included. A payer closes a stream whose hello is longer. */
export const MAX_HELLO_BYTES = 512

/**
 * Reasons a payer gives when it will not pay on a stream: written as one line of stream data
 * (`COGPAY_CAP_TOO_LOW\n`), after which the server closes the stream. A payer may instead close
 * the stream with the reason as the STREAM close frame's message; servers accept both.
 */
export const CloseReasons = {
  /** The payer's cap for this request is below what the server asks. */
  capTooLow: 'COGPAY_CAP_TOO_LOW',
  /** The stream names no request of this payer that is still in flight. */
  unknownRequest: 'COGPAY_UNKNOWN_REQUEST',
  /** The hello was missing, too long or malformed. */
  badHello: 'COGPAY_BAD_HELLO',
  /** The client aborted the request: this stream pays no more. */
  aborted: 'COGPAY_ABORTED',
  /** The payer revoked its authorization for this host: no stream to it pays any more. */
  revoked: 'COGPAY_REVOKED',
  /** A lease's rate is above the payer's rate cap, or the host asked for more than one interval at once. */
  rateTooHigh: 'COGPAY_RATE_TOO_HIGH',
  /** Across assets, the exchange rate fell below the payer's minimum: it pays no more at that rate. */
  exchangeRateTooLow: 'COGPAY_EXCHANGE_RATE_TOO_LOW',
  /** The payer has not authorized this host to pull payments over time (no rate cap given), or the lease is unknown. */
  leaseNotAuthorized: 'COGPAY_LEASE_NOT_AUTHORIZED',
} as const

/** Serialises a hello: one line of JSON, newline-terminated. */
export function encodeHello(hello: StreamHello): Uint8Array {
  const json: Record<string, unknown> = { v: hello.v, requestId: hello.requestId }
  if (hello.amount !== undefined) json.amount = hello.amount.toString()
  if (hello.lease) {
    const { id, amount, intervalMs, resume } = hello.lease
    json.lease = { id, amount: amount.toString(), intervalMs, ...(resume ? { resume: true } : {}) }
  }
  if (hello.refund !== undefined) json.refund = hello.refund.toString()
  return utf8(`${JSON.stringify(json)}\n`)
}

/** Parses one line of stream data as a JSON object, within the size limit; `undefined` otherwise. */
function parseLine(line: Uint8Array | string): Record<string, unknown> | undefined {
  if (byteLength(line) >= MAX_HELLO_BYTES) return undefined
  try {
    const value: unknown = JSON.parse(text(line))
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/** Parses a hello line (without its newline). Returns `undefined` for anything malformed. */
export function decodeHello(line: Uint8Array | string): StreamHello | undefined {
  const value = parseLine(line)
  if (!value) return undefined
  const { v, requestId, amount, lease, refund } = value
  if (v !== 1 || typeof requestId !== 'string' || requestId.length > 64) return undefined
  // A refund stream carries money the other way: it states nothing else.
  if (refund !== undefined && (amount !== undefined || lease !== undefined)) return undefined
  try {
    const hello: { v: 1; requestId: string; amount?: bigint; lease?: LeaseTerms; refund?: bigint } = { v: 1, requestId }
    if (refund !== undefined) {
      hello.refund = parseAmount(refund)
      if (hello.refund === 0n) return undefined
    }
    if (amount !== undefined) hello.amount = parseAmount(amount)
    if (lease !== undefined) {
      const terms = decodeLeaseTerms(lease)
      if (!terms) return undefined
      hello.lease = terms
    }
    return hello
  } catch {
    return undefined
  }
}

function decodeLeaseTerms(value: unknown): LeaseTerms | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const { id, amount, intervalMs, resume } = value as Record<string, unknown>
  if (typeof id !== 'string' || !LEASE_ID.test(id)) return undefined
  if (typeof intervalMs !== 'number' || !Number.isSafeInteger(intervalMs) || intervalMs <= 0) return undefined
  if (resume !== undefined && typeof resume !== 'boolean') return undefined
  const terms = { id, amount: parseAmount(amount), intervalMs }
  return resume ? { ...terms, resume } : terms
}

/**
 * The server's last message on a metered stream, written just before it closes the stream: how
 * the response ended and the totals. It is the client's proof that a streamed body is complete.
 */
export interface StreamFinal {
  readonly v: 1
  /** `complete`: the response was served in full; `stopped`: it was cut because payment stopped. */
  readonly final: 'complete' | 'stopped'
  /** Why it stopped (a `CogpayError` code), when it did. */
  readonly code?: string
  /** Totals in the server's units. */
  readonly charged: bigint
  readonly paid: bigint
  /**
   * What the server will pay back of `paid` (its units), on a refund stream it opens after this
   * message: all of it when the response failed under `refund: 'on-error'`, or what the handler
   * refunded itself. Absent when nothing is refunded.
   */
  readonly refund?: bigint
}

/** Serialises a final message: one line of JSON. */
export function encodeFinal(final: StreamFinal): Uint8Array {
  const json: Record<string, unknown> = { v: 1, final: final.final, charged: final.charged.toString(), paid: final.paid.toString() }
  if (final.code !== undefined) json.code = final.code
  if (final.refund !== undefined && final.refund > 0n) json.refund = final.refund.toString()
  return utf8(`${JSON.stringify(json)}\n`)
}

/** Parses a final message line. Returns `undefined` for anything else. */
export function decodeFinal(line: Uint8Array | string): StreamFinal | undefined {
  const value = parseLine(line)
  if (!value) return undefined
  const { v, final, code, charged, paid, refund } = value
  if (v !== 1 || (final !== 'complete' && final !== 'stopped')) return undefined
  if (code !== undefined && (typeof code !== 'string' || code.length > 64)) return undefined
  try {
    const refunded = refund === undefined ? undefined : parseAmount(refund)
    return {
      v: 1,
      final,
      ...(typeof code === 'string' ? { code } : {}),
      charged: parseAmount(charged),
      paid: parseAmount(paid),
      ...(refunded ? { refund: refunded } : {}),
    }
  } catch {
    return undefined
  }
}
