import { createRequire } from 'node:module'
import { CogpayError, ErrorCodes } from '@cogpay/core'
import type { IlpPlugin } from './plugin.js'

const require = createRequire(import.meta.url)

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

/** Makes a BTP plugin (ilp-plugin-btp) from an uplink URI. */
export function createPlugin(uri: string): IlpPlugin {
  parseUplinkUri(uri)
  const BtpPlugin = require('ilp-plugin-btp') as new (options: Record<string, unknown>) => IlpPlugin
  return new BtpPlugin({ server: uri, responseTimeout: 10_000 })
}
