import { createRequire } from 'node:module'
import { CogpayError, ErrorCodes } from '@cogpay/core'
import type { IlpPlugin } from './plugin.js'
import { LOST_WITH_CONNECTION } from './in-doubt.js'

const require = createRequire(import.meta.url)
const IlpPacket = require('ilp-packet') as typeof import('ilp-packet')

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

/** Makes a BTP plugin (ilp-plugin-btp) from an uplink URI. */
export function createPlugin(uri: string): IlpPlugin {
  parseUplinkUri(uri)
  const BtpPlugin = require('ilp-plugin-btp') as new (options: Record<string, unknown>) => IlpPlugin
  return failInFlightOnReconnect(new BtpPlugin({ server: uri, responseTimeout: RESPONSE_TIMEOUT_MS }))
}

/**
 * How long a sent packet waits for its answer. A packet lost on the way then fails its STREAM
 * connection, and its request with 502 `COGPAY_PAYMENT_FAILED`; this must be well below the
 * payment server's default `paymentTimeoutMs` (10 s), or a 402 `COGPAY_PAYMENT_TIMEOUT` (as if the
 * payer had not paid) wins the race, as it did at 10 s (`test/uplink-faults.test.ts`).
 */
const RESPONSE_TIMEOUT_MS = 5_000

/**
 * When the hub restarts, ilp-plugin-btp (1.5.0, pinned) reconnects its WebSocket by itself, but
 * says nothing of it (no 'disconnect', no 'connect'), and every packet that was in flight, or sent
 * while it was down, is simply lost: each waited out the response timeout, and a STREAM
 * connection, one packet in flight at a time, stalled behind it. Here, each reopening of its
 * socket answers those packets at once with a temporary reject (T00), which STREAM retries on the
 * new session. Money in flight at the crash stays in doubt either way (a Prepare the hub forwarded
 * may have been fulfilled); this only ends the wait. Reads the plugin's private `_ws` (its
 * WebSocketReconnector, which emits 'open' on every reconnection): this file is the fence.
 */
function failInFlightOnReconnect(plugin: IlpPlugin): IlpPlugin {
  const inFlight = new Set<(response: Buffer) => void>()
  const send = plugin.sendData.bind(plugin)
  const connect = plugin.connect.bind(plugin)
  let watching = false
  plugin.connect = async () => {
    await connect()
    const ws = (plugin as unknown as { _ws?: { on(event: 'open', listener: () => void): void } })._ws
    if (watching || !ws) return
    watching = true
    // The first 'open' came before connect() resolved: every later one is a reconnection.
    ws.on('open', () => {
      const lost = [...inFlight]
      inFlight.clear()
      for (const answer of lost) answer(uplinkReconnected())
    })
  }
  plugin.sendData = (data: Buffer) =>
    new Promise<Buffer>((resolve, reject) => {
      const answer = (response: Buffer) => {
        inFlight.delete(answer)
        resolve(response)
      }
      inFlight.add(answer)
      send(data).then(answer, (err: unknown) => {
        // Already answered (the uplink reconnected): the late failure is nobody's.
        if (inFlight.delete(answer)) reject(err)
      })
    })
  return plugin
}

function uplinkReconnected(): Buffer {
  return IlpPacket.serializeIlpReject({
    code: 'T00',
    message: LOST_WITH_CONNECTION,
    triggeredBy: '',
    data: Buffer.alloc(0),
  })
}
