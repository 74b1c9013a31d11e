import type { Buffer } from 'node:buffer'
import { createRequire } from 'node:module'
import { Connection, StreamListener, createConnection, type ConnectionOptions, type DataPlugin } from '@cogpay/stream'

/**
 * Peers for the transport tests: each side is its own account on the real hub (ilp-plugin-btp to
 * ilp-connector with mini-accounts), with its address and asset from IL-DCP, and speaks STREAM
 * with @cogpay/stream or, for interop, ilp-protocol-stream. No @cogpay/ilp (not even its BTP
 * client): the transport stands on its own, on the plugin third parties use.
 */

// IL-DCP is @cogpay/ilp's dependency, not the root's; ilp-plugin-btp is a root devDependency.
const fromIlp = createRequire(new URL('../../packages/ilp/package.json', import.meta.url))
const ILDCP = fromIlp('ilp-protocol-ildcp') as {
  fetch(send: (data: Buffer) => Promise<Buffer>): Promise<{ clientAddress: string; assetCode: string; assetScale: number }>
}
const require = createRequire(import.meta.url)
const BtpPlugin = require('ilp-plugin-btp') as new (options: { server: string }) => BtpPluginLike
/** ilp-protocol-stream, the peer of the interop tests (a devDependency only). */
export const theirStream = require('ilp-protocol-stream') as typeof import('ilp-protocol-stream')

export interface BtpPluginLike extends DataPlugin {
  connect(): Promise<void>
  disconnect(): Promise<void>
  isConnected(): boolean
  sendMoney(amount: string): Promise<void>
  registerDataHandler(handler: (data: Buffer) => Promise<Buffer>): void
  deregisterDataHandler(): void
}

export interface Side {
  plugin: BtpPluginLike
  address: string
  asset: { code: string; scale: number }
}

/** A side on a new BTP account at `uri`; `wrap` may put the plugin behind faults (testnet's faultyPlugin). */
export async function side(uri: string, wrap?: (plugin: BtpPluginLike) => BtpPluginLike): Promise<Side> {
  const btp = new BtpPlugin({ server: uri })
  const plugin = wrap ? wrap(btp) : btp
  await plugin.connect()
  const info = await ILDCP.fetch((data) => plugin.sendData(data))
  return { plugin, address: info.clientAddress, asset: { code: info.assetCode, scale: info.assetScale } }
}

/** Our listener on a side: every Prepare to the side's address goes to it (answered as cogpay's payer does). */
export function ourListener(on: Side, options: Partial<ConnectionOptions> = {}): StreamListener {
  const listener = new StreamListener({ ...options, plugin: on.plugin, address: on.address, asset: on.asset })
  on.plugin.registerDataHandler((data: Buffer) => listener.handleDataLater(data))
  return listener
}

/** Our client connection from a side (not yet opened: call `open()`). */
export function ourClient(
  from: Side,
  destinationAccount: string,
  sharedSecret: Uint8Array,
  options: Partial<ConnectionOptions> = {},
): Connection {
  const connection = createConnection({
    ...options,
    plugin: from.plugin,
    sourceAccount: from.address,
    asset: from.asset,
    destinationAccount,
    sharedSecret,
  })
  from.plugin.registerDataHandler((data: Buffer) => connection.handleDataLater(data))
  return connection
}
