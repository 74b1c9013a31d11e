import { CogpayError, ErrorCodes } from '@cogpay/core'
import type { IlpPlugin } from './plugin.js'
import { BtpClient } from './btp-client.js'

/** Default uplink: a `moneyd local` style hub on this machine. */
export const DEFAULT_UPLINK = 'btp+ws://127.0.0.1:7768'

/**
 * `text` with the secret of every URI in it replaced by `***` (`btp+ws://name:***@host`, or
 * `btp+ws://***@host` for a bare token). An uplink URI's userinfo is a bearer credential: use this
 * on anything that may reach a message, a log or a terminal.
 */
export function redactUplink(text: string): string {
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/)([^:@/\s"'`]*):[^@/\s"'`]*@/gi, '$1$2:***@')
    .replace(/([a-z][a-z0-9+.-]*:\/\/)[^:@/\s"'`]+@/gi, '$1***@')
}

/** An error's message (or the value itself, as text) with every uplink secret in it redacted. */
export function redactedMessage(err: unknown): string {
  return redactUplink(String((err as Error | undefined)?.message ?? err))
}

/**
 * Checks an uplink URI: `btp+ws://[user:secret@]host:port` or `btp+wss://…`. Throws
 * `COGPAY_INVALID_OPTIONS` naming the problem (and the URI, its secret redacted); returns the URL.
 */
export function parseUplinkUri(uri: string): URL {
  const shown = JSON.stringify(redactUplink(uri))
  let url: URL
  try {
    url = new URL(uri)
  } catch {
    // Not attached as the cause: Node's URL error carries the whole input, secret and all.
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `uplink ${shown} is not a URL`)
  }
  if (url.protocol !== 'btp+ws:' && url.protocol !== 'btp+wss:') {
    throw new CogpayError(
      ErrorCodes.INVALID_OPTIONS,
      `uplink ${shown}: ${JSON.stringify(url.protocol)} is not supported; use btp+ws:// or btp+wss://`,
    )
  }
  if (!url.hostname) {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `uplink ${shown} has no host`)
  }
  return url
}

/**
 * Makes a BTP plugin from an uplink URI: cogpay's own {@link BtpClient} (RFC 23 over undici's
 * WebSocket). Its userinfo is sent as `auth_username` and `auth_token`, as written in the URI (as
 * ilp-plugin-btp sent them: percent-escapes are not decoded), and is never part of the URL dialled.
 */
export function createPlugin(uri: string): IlpPlugin {
  const url = parseUplinkUri(uri)
  // `btp+ws:` → `ws:` (a special scheme: the URL parser normalises host and path as a WebSocket's).
  let target: URL
  try {
    target = new URL(url.href.slice('btp+'.length))
  } catch {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `uplink ${JSON.stringify(redactUplink(uri))} is not a WebSocket URL`)
  }
  target.username = ''
  target.password = ''
  return new BtpClient({ url: target.href, account: url.username, token: url.password, responseTimeoutMs: RESPONSE_TIMEOUT_MS })
}

/**
 * How long a sent packet waits for its answer. A packet lost on the way then fails its STREAM
 * connection, and its request with 502 `COGPAY_PAYMENT_FAILED`; this must be well below the
 * payment server's default `paymentTimeoutMs` (10 s), or a 402 `COGPAY_PAYMENT_TIMEOUT` (as if the
 * payer had not paid) wins the race, as it did at 10 s (`test/uplink-faults.test.ts`).
 */
const RESPONSE_TIMEOUT_MS = 5_000
