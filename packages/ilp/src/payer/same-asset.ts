import type { Connection } from '@cogpay/stream'
import type { Asset } from '@cogpay/core'

/** Same asset code and scale on both ends of `connection`: the server's amounts compare with the payer's directly. */
export function isSameAsset(connection: Connection, asset: Asset | undefined): boolean {
  const remote = connection.remoteAsset
  return remote !== undefined && remote.code === asset?.code && remote.scale === asset?.scale
}
