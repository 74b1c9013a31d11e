import { Buffer } from 'node:buffer'
import { createHash, createHmac, randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  ENCRYPTION_OVERHEAD,
  FrameTypes,
  MAX_U64,
  StreamCodecError,
  StreamCodecErrorCodes,
  conditionFor,
  decodePacket,
  decryptPacket,
  deriveKeys,
  encodePacket,
  encryptPacket,
  fulfillmentFor,
  type Frame,
  type StreamPacket,
} from '../src/index.ts'
import { comparable, frameArbitraries, packet, seed } from './arbitraries.ts'

const keys = deriveKeys(Buffer.alloc(32, 7))

function valid(decoded: ReturnType<typeof decodePacket>): StreamPacket {
  if (decoded.type !== 'valid') throw decoded.error
  return decoded.packet
}

describe('frames round-trip through encodePacket and decodePacket', () => {
  for (const [type, arbitrary] of Object.entries(frameArbitraries)) {
    it(`${type} (0x${FrameTypes[type as keyof typeof FrameTypes].toString(16).padStart(2, '0')})`, () => {
      fc.assert(
        fc.property(arbitrary as fc.Arbitrary<Frame>, (frame) => {
          const original: StreamPacket = { ilpPacketType: 12, sequence: 1n, prepareAmount: 0n, frames: [frame] }
          expect(comparable(valid(decodePacket(encodePacket(original))))).toEqual(comparable(original))
        }),
        { seed, numRuns: 200 },
      )
    })
  }
})

describe('whole packets', () => {
  it('round-trip through encodePacket and decodePacket', () => {
    fc.assert(
      fc.property(packet, (original) => {
        expect(comparable(valid(decodePacket(encodePacket(original))))).toEqual(comparable(original))
      }),
      { seed, numRuns: 500 },
    )
  })

  it('round-trip through encryptPacket and decryptPacket, with 28 bytes of overhead and a fresh IV each time', () => {
    fc.assert(
      fc.property(packet, (original) => {
        const sealed = encryptPacket(keys.encryptionKey, original)
        expect(sealed.length).toBe(encodePacket(original).length + ENCRYPTION_OVERHEAD)
        expect(Buffer.from(encryptPacket(keys.encryptionKey, original)).equals(Buffer.from(sealed))).toBe(false)
        expect(comparable(valid(decryptPacket(keys.encryptionKey, sealed)))).toEqual(comparable(original))
      }),
      { seed, numRuns: 300 },
    )
  })

  it('encodes a known packet to the bytes RFC 29 lays out', () => {
    const bytes = encodePacket({
      ilpPacketType: 12,
      sequence: 1n,
      prepareAmount: 256n,
      frames: [{ type: 'StreamMoney', streamId: 1n, shares: 1n }],
    })
    // version 1, type 12, sequence (len 1) 1, amount (len 2) 0x0100, 1 frame: type 0x11, contents (len 4) [1 1][1 1]
    expect(Buffer.from(bytes).toString('hex')).toBe('010c0101020100010111040101' + '0101')
  })

  it('skips frames of unknown types and ignores padding after the frames', () => {
    const known = encodePacket({ ilpPacketType: 13, sequence: 9n, prepareAmount: 5n, frames: [{ type: 'StreamMaxData', streamId: 3n, maxOffset: 4n }] })
    // Rewrite the frame count to 2 and insert a frame of type 0x7f before the known one, then pad.
    const head = Buffer.from(known.subarray(0, 6))
    expect(head.toString('hex')).toBe('010d01090105')
    const bytes = Buffer.concat([head, Buffer.from([0x01, 0x02]), Buffer.from([0x7f, 0x03, 0xaa, 0xbb, 0xcc]), known.subarray(8), Buffer.alloc(40)])
    expect(valid(decodePacket(bytes)).frames).toEqual([{ type: 'StreamMaxData', streamId: 3n, maxOffset: 4n }])
  })

  it('reads a receiveMax or sendMax longer than 8 bytes as the largest u64 (RFC 29 §5.1.4), and rejects such a streamId', () => {
    const nine = [0x09, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]
    const maxMoney = Buffer.from([0x01, 0x0c, 0x01, 0x01, 0x01, 0x00, 0x01, 0x01, 0x12, 4 + nine.length, 0x01, 0x05, ...nine, 0x01, 0x02])
    expect(valid(decodePacket(maxMoney)).frames).toEqual([{ type: 'StreamMaxMoney', streamId: 5n, receiveMax: MAX_U64, totalReceived: 2n }])
    const blocked = Buffer.from(maxMoney)
    blocked[8] = FrameTypes.StreamMoneyBlocked
    expect(valid(decodePacket(blocked)).frames).toEqual([{ type: 'StreamMoneyBlocked', streamId: 5n, sendMax: MAX_U64, totalSent: 2n }])
    const badId = Buffer.from([0x01, 0x0c, 0x01, 0x01, 0x01, 0x00, 0x01, 0x01, 0x11, 2 + nine.length, ...nine, 0x01, 0x01])
    const decoded = decodePacket(badId)
    expect(decoded.type === 'invalid' && decoded.error.code).toBe(StreamCodecErrorCodes.MALFORMED)
  })

  it('rejects another version with UNSUPPORTED_VERSION', () => {
    const bytes = Buffer.from(encodePacket({ ilpPacketType: 14, sequence: 0n, prepareAmount: 0n, frames: [] }))
    bytes[0] = 2
    const decoded = decodePacket(bytes)
    expect(decoded.type === 'invalid' && decoded.error.code).toBe(StreamCodecErrorCodes.UNSUPPORTED_VERSION)
  })
})

describe('encoding a value its field cannot carry throws INVALID_FIELD, naming the field and the value', () => {
  const base: StreamPacket = { ilpPacketType: 12, sequence: 0n, prepareAmount: 0n, frames: [] }
  const cases: [string, StreamPacket, RegExp][] = [
    ['a negative sequence', { ...base, sequence: -1n }, /sequence=-1/],
    ['an amount over u64', { ...base, prepareAmount: MAX_U64 + 1n }, /prepareAmount=18446744073709551616/],
    ['a number amount', { ...base, prepareAmount: 5 as unknown as bigint }, /prepareAmount=5 is not a u64 bigint/],
    ['an ILP packet type of 15', { ...base, ilpPacketType: 15 as 12 }, /ilpPacketType=15/],
    ['shares over u64', { ...base, frames: [{ type: 'StreamMoney', streamId: 1n, shares: MAX_U64 + 1n }] }, /StreamMoney\.shares=/],
    ['an asset scale of 256', { ...base, frames: [{ type: 'ConnectionAssetDetails', sourceAssetCode: 'USD', sourceAssetScale: 256 }] }, /sourceAssetScale=256/],
    ['an unknown frame type', { ...base, frames: [{ type: 'Nope' } as unknown as Frame] }, /unknown frame type "Nope"/],
  ]
  for (const [name, input, message] of cases) {
    it(name, () => {
      const err = (() => {
        try {
          encodePacket(input)
        } catch (e) {
          return e
        }
        return undefined
      })()
      expect(err).toBeInstanceOf(StreamCodecError)
      expect((err as StreamCodecError).code).toBe(StreamCodecErrorCodes.INVALID_FIELD)
      expect((err as StreamCodecError).message).toMatch(message)
    })
  }
})

describe('keys, fulfillment and condition (RFC 29 §5.1.2 and §6)', () => {
  it('derive from the shared secret by HMAC-SHA256 with the RFC strings', () => {
    const secret = randomBytes(32)
    const { encryptionKey, fulfillmentKey } = deriveKeys(secret)
    expect(Buffer.from(encryptionKey)).toEqual(createHmac('sha256', secret).update('ilp_stream_encryption').digest())
    expect(Buffer.from(fulfillmentKey)).toEqual(createHmac('sha256', secret).update('ilp_stream_fulfillment').digest())
    const data = randomBytes(100)
    const fulfillment = fulfillmentFor(fulfillmentKey, data)
    expect(Buffer.from(fulfillment)).toEqual(createHmac('sha256', fulfillmentKey).update(data).digest())
    expect(Buffer.from(conditionFor(fulfillment))).toEqual(createHash('sha256').update(fulfillment).digest())
  })

  it('refuse a shared secret or key that is not 32 bytes with INVALID_KEY', () => {
    expect(() => deriveKeys(Buffer.alloc(31))).toThrow(expect.objectContaining({ code: StreamCodecErrorCodes.INVALID_KEY, message: 'sharedSecret is 31 bytes, expected 32 bytes' }))
    expect(() => encryptPacket(Buffer.alloc(16), { ilpPacketType: 12, sequence: 0n, prepareAmount: 0n, frames: [] })).toThrow(
      expect.objectContaining({ code: StreamCodecErrorCodes.INVALID_KEY }),
    )
    expect(() => fulfillmentFor(Buffer.alloc(0), Buffer.alloc(1))).toThrow(expect.objectContaining({ code: StreamCodecErrorCodes.INVALID_KEY }))
    const decoded = decryptPacket(Buffer.alloc(5), Buffer.alloc(64))
    expect(decoded.type === 'invalid' && decoded.error.code).toBe(StreamCodecErrorCodes.INVALID_KEY)
  })
})
