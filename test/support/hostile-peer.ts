import { Buffer } from 'node:buffer'
import { afterAll, beforeAll } from 'vitest'
import { startTestnet, type Testnet } from '@cogpay/testnet'
import { IlpPacketTypes, conditionFor, decryptPacket, deriveKeys, encryptPacket, fulfillmentFor, type Frame, type StreamPacket } from '@cogpay/stream'
// The ILP packet helpers of the transport itself, to hand-build what a peer would answer.
import { deserializePrepare, serializeFulfill, serializeReject } from '../../packages/stream/src/ilp.ts'
import { side, type BtpPluginLike, type Side } from './stream-peers.ts'

/**
 * A testnet for the file (started before its tests, closed after), and `newSide()`: a side on a
 * new account of it, disconnected when the file is done.
 */
export function testnetSides(): { testnet: () => Testnet; newSide: (wrap?: (plugin: BtpPluginLike) => BtpPluginLike) => Promise<Side> } {
  let testnet: Testnet | undefined
  const sides: Side[] = []
  beforeAll(async () => {
    testnet = await startTestnet()
  })
  afterAll(async () => {
    for (const s of sides) await s.plugin.disconnect().catch(() => {})
    await testnet?.close()
  })
  return {
    testnet: () => testnet!,
    newSide: async (wrap) => {
      const s = await side(testnet!.uri(), wrap)
      sides.push(s)
      return s
    },
  }
}

/**
 * A malicious STREAM server on `on`: it holds the secret and answers every Prepare as `answer`
 * says (a Fulfill when asked and the condition allows, else F99), with its own reply frames and
 * "prepare amount" (what it claims arrived). Counts what it was really paid, and notes each
 * Prepare's amount and the minimum it asked to arrive.
 */
export function hostileServer(
  on: Side,
  sharedSecret: Uint8Array,
  answer: (packet: StreamPacket, amount: bigint) => { fulfill?: boolean; frames?: Frame[]; prepareAmount?: bigint; sequence?: bigint },
) {
  const keys = deriveKeys(sharedSecret)
  const stats = { prepares: 0, paid: 0n, seen: [] as { amount: bigint; min: bigint }[] }
  on.plugin.registerDataHandler(async (bytes: Buffer) => {
    const prepare = deserializePrepare(bytes)
    if (!prepare) return serializeReject('F01', on.address, '')
    const decoded = decryptPacket(keys.encryptionKey, prepare.data)
    if (decoded.type !== 'valid') return serializeReject('F06', on.address, '')
    stats.prepares++
    stats.seen.push({ amount: prepare.amount, min: decoded.packet.prepareAmount })
    const said = answer(decoded.packet, prepare.amount)
    const fulfillment = Buffer.from(fulfillmentFor(keys.fulfillmentKey, prepare.data))
    const fulfill = said.fulfill !== false && Buffer.from(conditionFor(fulfillment)).equals(prepare.executionCondition)
    const reply = Buffer.from(
      encryptPacket(keys.encryptionKey, {
        ilpPacketType: fulfill ? IlpPacketTypes.Fulfill : IlpPacketTypes.Reject,
        sequence: said.sequence ?? decoded.packet.sequence,
        prepareAmount: said.prepareAmount ?? prepare.amount,
        frames: said.frames ?? [],
      }),
    )
    if (!fulfill) return serializeReject('F99', on.address, '', reply)
    stats.paid += prepare.amount
    return serializeFulfill(fulfillment, reply)
  })
  return stats
}
