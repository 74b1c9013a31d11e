import { Buffer } from 'node:buffer'
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  conditionFor,
  decodePacket,
  decryptPacket,
  deriveKeys,
  encodePacket,
  encryptPacket,
  fulfillmentFor,
  IlpPacketTypes,
  type Frame,
  type StreamPacket,
} from '../src/index.ts'
import { comparable, packet, seed } from './arbitraries.ts'

/**
 * Interop is the contract (issue 10): the codec against ilp-protocol-stream's own Packet and
 * crypto modules, in both directions, byte for byte. The version is pinned here, so a bump of
 * the devDependency is a conscious act.
 */
const require = createRequire(import.meta.url)
const theirs = require('ilp-protocol-stream/dist/src/packet.js') as typeof import('ilp-protocol-stream/dist/src/packet.js')
const theirCrypto = require('ilp-protocol-stream/dist/src/crypto.js') as typeof import('ilp-protocol-stream/dist/src/crypto.js')
const { version } = require('ilp-protocol-stream/package.json') as { version: string }

type TheirFrame = import('ilp-protocol-stream/dist/src/packet.js').Frame
type TheirPacket = import('ilp-protocol-stream/dist/src/packet.js').Packet

/** Builds ilp-protocol-stream's frame object for one of ours (u64s go in as decimal strings, which it parses into Long). */
function toTheirs(frame: Frame): TheirFrame {
  const s = (value: bigint) => value.toString()
  switch (frame.type) {
    case 'ConnectionClose':
      return new theirs.ConnectionCloseFrame(frame.errorCode, frame.errorMessage)
    case 'ConnectionNewAddress':
      return new theirs.ConnectionNewAddressFrame(frame.sourceAccount)
    case 'ConnectionMaxData':
      return new theirs.ConnectionMaxDataFrame(s(frame.maxOffset))
    case 'ConnectionDataBlocked':
      return new theirs.ConnectionDataBlockedFrame(s(frame.maxOffset))
    case 'ConnectionMaxStreamId':
      return new theirs.ConnectionMaxStreamIdFrame(s(frame.maxStreamId))
    case 'ConnectionStreamIdBlocked':
      return new theirs.ConnectionStreamIdBlockedFrame(s(frame.maxStreamId))
    case 'ConnectionAssetDetails':
      return new theirs.ConnectionAssetDetailsFrame(frame.sourceAssetCode, frame.sourceAssetScale)
    case 'StreamClose':
      return new theirs.StreamCloseFrame(s(frame.streamId), frame.errorCode, frame.errorMessage)
    case 'StreamMoney':
      return new theirs.StreamMoneyFrame(s(frame.streamId), s(frame.shares))
    case 'StreamMaxMoney':
      return new theirs.StreamMaxMoneyFrame(s(frame.streamId), s(frame.receiveMax), s(frame.totalReceived))
    case 'StreamMoneyBlocked':
      return new theirs.StreamMoneyBlockedFrame(s(frame.streamId), s(frame.sendMax), s(frame.totalSent))
    case 'StreamData':
      return new theirs.StreamDataFrame(s(frame.streamId), s(frame.offset), Buffer.from(frame.data))
    case 'StreamMaxData':
      return new theirs.StreamMaxDataFrame(s(frame.streamId), s(frame.maxOffset))
    case 'StreamDataBlocked':
      return new theirs.StreamDataBlockedFrame(s(frame.streamId), s(frame.maxOffset))
    case 'StreamReceipt':
      return new theirs.StreamReceiptFrame(s(frame.streamId), Buffer.from(frame.receipt))
  }
}

function theirPacket(ours: StreamPacket): TheirPacket {
  return new theirs.Packet(ours.sequence.toString(), ours.ilpPacketType, ours.prepareAmount.toString(), ours.frames.map(toTheirs))
}

/** ilp-protocol-stream's packet read back into our shape, field by field: Long → bigint, Buffer → bytes, name → type. */
function fromTheirs(packet: TheirPacket): StreamPacket {
  const fields = (frame: TheirFrame) =>
    Object.fromEntries(
      Object.entries(frame)
        .filter(([key]) => key !== 'type' && key !== 'name')
        .map(([key, value]) => [key, typeof value === 'object' && value !== null && 'high' in value ? BigInt(String(value)) : value]),
    )
  return {
    ilpPacketType: packet.ilpPacketType as StreamPacket['ilpPacketType'],
    sequence: BigInt(packet.sequence.toString()),
    prepareAmount: BigInt(packet.prepareAmount.toString()),
    frames: packet.frames.map((frame) => ({ type: theirs.FrameType[frame.type], ...fields(frame) }) as unknown as Frame),
  }
}

describe(`interop with ilp-protocol-stream ${version}`, () => {
  it('is the version the issue pins', () => {
    expect(version).toBe('2.7.2-alpha.3')
  })

  it('derives the same keys, fulfillments and conditions from the same secret and data', async () => {
    for (let i = 0; i < 50; i++) {
      const secret = randomBytes(32)
      const data = randomBytes(1 + (i * 37) % 500)
      const ours = deriveKeys(secret)
      const encryptionKey = await theirCrypto.generatePskEncryptionKey(secret)
      const fulfillmentKey = await theirCrypto.generateFulfillmentKey(secret)
      expect(Buffer.from(ours.encryptionKey)).toEqual(encryptionKey)
      expect(Buffer.from(ours.fulfillmentKey)).toEqual(fulfillmentKey)
      const fulfillment = await theirCrypto.generateFulfillment(fulfillmentKey, data)
      expect(Buffer.from(fulfillmentFor(ours.fulfillmentKey, data))).toEqual(fulfillment)
      expect(Buffer.from(conditionFor(fulfillmentFor(ours.fulfillmentKey, data)))).toEqual(await theirCrypto.hash(fulfillment))
    }
  })

  it('serializes every packet to the same bytes as ilp-protocol-stream', () => {
    fc.assert(
      fc.property(packet, (ours) => {
        expect(Buffer.from(encodePacket(ours)).toString('hex')).toBe(theirPacket(ours)._serialize().toString('hex'))
      }),
      { seed, numRuns: 500 },
    )
  })

  // Frames are written in place, their length prefix filled in after their contents: one that
  // needs a prefix of two, three or four bytes moves its contents up.
  it('serializes frames at every length-prefix size (contents of 127 to 70,000 bytes) to the same bytes as ilp-protocol-stream', () => {
    for (const size of [0, 1, 107, 108, 127, 128, 235, 236, 255, 256, 65_515, 65_516, 70_000]) {
      const data = new Uint8Array(size).map((_, i) => i % 251)
      const ours: StreamPacket = {
        ilpPacketType: IlpPacketTypes.Prepare,
        sequence: 1n,
        prepareAmount: 0n,
        frames: [
          { type: 'StreamData', streamId: 1n, offset: 0n, data },
          { type: 'StreamMoney', streamId: 1n, shares: 1n },
        ],
      }
      const bytes = encodePacket(ours)
      expect(Buffer.from(bytes).toString('hex'), `${size} bytes of data`).toBe(theirPacket(ours)._serialize().toString('hex'))
      const decoded = decodePacket(bytes)
      expect(decoded.type === 'valid' && decoded.packet.frames.length).toBe(2)
    }
  })

  it('writes packets that ilp-protocol-stream decrypts and parses to the same fields', async () => {
    const { encryptionKey } = deriveKeys(randomBytes(32))
    await fc.assert(
      fc.asyncProperty(packet, async (ours) => {
        const parsed = await theirs.Packet.decryptAndDeserialize(Buffer.from(encryptionKey), Buffer.from(encryptPacket(encryptionKey, ours)))
        expect(comparable(fromTheirs(parsed))).toEqual(comparable(ours))
      }),
      { seed, numRuns: 300 },
    )
  })

  it('reads packets that ilp-protocol-stream encrypts, padded or not, to the same fields', async () => {
    const secret = randomBytes(32)
    const { encryptionKey } = deriveKeys(secret)
    const theirKey = await theirCrypto.generatePskEncryptionKey(secret)
    await fc.assert(
      fc.asyncProperty(packet, fc.option(fc.integer({ min: 0, max: 200 }), { nil: undefined }), async (ours, padding) => {
        const built = theirPacket(ours)
        const sealed = await built.serializeAndEncrypt(theirKey, padding === undefined ? undefined : built.byteLength() + padding)
        const decoded = decryptPacket(encryptionKey, sealed)
        if (decoded.type !== 'valid') throw decoded.error
        expect(comparable(decoded.packet)).toEqual(comparable(fromTheirs(built)))
        expect(comparable(decoded.packet)).toEqual(comparable(ours))
      }),
      { seed, numRuns: 300 },
    )
  })

  it('reads a packet whose frame of an unknown type ilp-protocol-stream also skips', () => {
    const bytes = Buffer.from('010c010101000102' + '7f03aabbcc' + '11040101' + '0107', 'hex')
    const decoded = decodePacket(bytes)
    const parsed = theirs.Packet._deserializeUnencrypted(bytes)
    expect(decoded.type === 'valid' && comparable(decoded.packet)).toEqual(comparable(fromTheirs(parsed)))
    expect(decoded.type === 'valid' && decoded.packet.frames).toEqual([{ type: 'StreamMoney', streamId: 1n, shares: 7n }])
  })
})
