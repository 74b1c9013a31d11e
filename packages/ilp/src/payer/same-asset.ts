import { createRequire } from 'node:module'
import type { Connection } from 'ilp-protocol-stream'
import type { Asset } from '@cogpay/core'

const require = createRequire(import.meta.url)
const Rational = (
  require('ilp-protocol-stream/dist/src/util/rational') as {
    default: { fromNumber(value: number, unsigned: boolean): unknown }
  }
).default

/** Same asset code and scale on both ends of `connection`: the server's amounts compare with the payer's directly. */
export function isSameAsset(connection: Connection, asset: Asset | undefined): boolean {
  return connection.destinationAssetCode === asset?.code && connection.destinationAssetScale === asset?.scale
}

/**
 * On a same-asset connection the rate is 1: skip STREAM's 5-packet rate probe before the first
 * payment (about 4 ms on a cold socket). The cap stays in the payer's own units either way. Sets
 * ilp-protocol-stream's private `exchangeRate` (and requires its `Rational`): this file is the fence.
 */
export function skipRateProbe(connection: Connection): void {
  const rated = connection as unknown as { exchangeRate?: unknown }
  if (rated.exchangeRate === undefined) rated.exchangeRate = Rational.fromNumber(1, true)
}
