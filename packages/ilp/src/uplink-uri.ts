import { createRequire } from 'node:module'
import { CogpayError, ErrorCodes } from '@cogpay/core'
import type { IlpPlugin } from './plugin.js'

const require = createRequire(import.meta.url)

/** Default uplink: a `moneyd local` style hub on this machine. */
export const DEFAULT_UPLINK = 'btp+ws://127.0.0.1:7768'

/**
 * Checks an uplink URI: `btp+ws://[user:secret@]host:port` or `btp+wss://…`. Throws
 * `COGPAY_INVALID_OPTIONS` naming the problem; returns the URL.
 */
export function parseUplinkUri(uri: string): URL {
  let url: URL
  try {
    url = new URL(uri)
  } catch (cause) {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `uplink ${JSON.stringify(uri)} is not a URL`, { cause })
  }
  if (url.protocol !== 'btp+ws:' && url.protocol !== 'btp+wss:') {
    throw new CogpayError(
      ErrorCodes.INVALID_OPTIONS,
      `uplink ${JSON.stringify(url.protocol)} is not supported; use btp+ws:// or btp+wss://`,
    )
  }
  if (!url.hostname) {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `uplink ${JSON.stringify(uri)} has no host`)
  }
  return url
}

/** Makes a BTP plugin (ilp-plugin-btp) from an uplink URI. */
export function createPlugin(uri: string): IlpPlugin {
  parseUplinkUri(uri)
  const BtpPlugin = require('ilp-plugin-btp') as new (options: Record<string, unknown>) => IlpPlugin
  return new BtpPlugin({ server: uri, responseTimeout: 10_000 })
}
