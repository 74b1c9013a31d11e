import { Buffer } from 'node:buffer'
import { parseAmount } from './amount.ts'

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
}

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
} as const

/** Serialises a hello: one line of JSON, newline-terminated. */
export function encodeHello(hello: StreamHello): Buffer {
  const json: Record<string, unknown> = { v: hello.v, requestId: hello.requestId }
  if (hello.amount !== undefined) json.amount = hello.amount.toString()
  return Buffer.from(`${JSON.stringify(json)}\n`)
}

/** Parses one line of stream data as a JSON object, within the size limit; `undefined` otherwise. */
function parseLine(line: Buffer | string): Record<string, unknown> | undefined {
  if (Buffer.byteLength(line) >= MAX_HELLO_BYTES) return undefined
  try {
    const value: unknown = JSON.parse(line.toString())
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/** Parses a hello line (without its newline). Returns `undefined` for anything malformed. */
export function decodeHello(line: Buffer | string): StreamHello | undefined {
  const value = parseLine(line)
  if (!value) return undefined
  const { v, requestId, amount } = value
  if (v !== 1 || typeof requestId !== 'string' || requestId.length > 64) return undefined
  if (amount === undefined) return { v: 1, requestId }
  try {
    return { v: 1, requestId, amount: parseAmount(amount) }
  } catch {
    return undefined
  }
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
}

/** Serialises a final message: one line of JSON. */
export function encodeFinal(final: StreamFinal): Buffer {
  const json: Record<string, unknown> = { v: 1, final: final.final, charged: final.charged.toString(), paid: final.paid.toString() }
  if (final.code !== undefined) json.code = final.code
  return Buffer.from(`${JSON.stringify(json)}\n`)
}

/** Parses a final message line. Returns `undefined` for anything else. */
export function decodeFinal(line: Buffer | string): StreamFinal | undefined {
  const value = parseLine(line)
  if (!value) return undefined
  const { v, final, code, charged, paid } = value
  if (v !== 1 || (final !== 'complete' && final !== 'stopped')) return undefined
  if (code !== undefined && (typeof code !== 'string' || code.length > 64)) return undefined
  try {
    return {
      v: 1,
      final,
      ...(typeof code === 'string' ? { code } : {}),
      charged: parseAmount(charged),
      paid: parseAmount(paid),
    }
  } catch {
    return undefined
  }
}
