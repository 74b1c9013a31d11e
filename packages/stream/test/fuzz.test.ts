import { Buffer } from 'node:buffer'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { StreamCodecError, StreamCodecErrorCodes, decodePacket, decryptPacket, deriveKeys, encodePacket, encryptPacket, type DecodedPacket } from '../src/index.ts'
import { packet, seed } from './arbitraries.ts'

/**
 * Bytes off the wire never make the decoders throw: every input is either a packet or an
 * `invalid` result carrying a StreamCodecError with a documented code.
 */
const keys = deriveKeys(Buffer.alloc(32, 1))
const codes = new Set<string>(Object.values(StreamCodecErrorCodes))

function typed(decoded: DecodedPacket): void {
  if (decoded.type === 'invalid') {
    expect(decoded.error).toBeInstanceOf(StreamCodecError)
    expect(codes.has(decoded.error.code), decoded.error.code).toBe(true)
  } else {
    expect(decoded.packet.frames).toBeInstanceOf(Array)
  }
}

describe('the decoder, fed fuzzed bytes', () => {
  it('returns a packet or a typed failure for random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => typed(decodePacket(bytes))), { seed, numRuns: 5000 })
  })

  it('returns a packet or a typed failure for random bytes behind a valid header (version 1, type 12)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (tail) => typed(decodePacket(Buffer.concat([Buffer.from([1, 12]), tail])))),
      { seed, numRuns: 5000 },
    )
  })

  it('returns a packet or a typed failure for valid packets with bytes flipped, dropped or inserted', () => {
    fc.assert(
      fc.property(packet, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip', 'drop', 'insert')), { minLength: 1, maxLength: 4 }), (original, edits) => {
        const bytes = [...encodePacket(original)]
        for (const [at, value, kind] of edits) {
          const index = bytes.length === 0 ? 0 : at % bytes.length
          if (kind === 'flip') bytes[index] = value
          else if (kind === 'drop') bytes.splice(index, 1)
          else bytes.splice(index, 0, value)
        }
        typed(decodePacket(Uint8Array.from(bytes)))
      }),
      { seed, numRuns: 3000 },
    )
  })

  it('reports MALFORMED for every truncation of a valid packet that cuts a field', () => {
    fc.assert(
      fc.property(packet, (original) => {
        const bytes = encodePacket(original)
        for (let length = 0; length < bytes.length; length++) {
          const decoded = decodePacket(bytes.subarray(0, length))
          // A cut that lands exactly after a frame leaves fewer frames than announced: still malformed.
          expect(decoded.type === 'invalid' && decoded.error.code, `length ${length} of ${bytes.length}`).toBe(StreamCodecErrorCodes.MALFORMED)
        }
      }),
      { seed, numRuns: 200 },
    )
  })
})

describe('decryptPacket, fed hostile data', () => {
  it('reports DECRYPT_FAILED for random data, short or long', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const decoded = decryptPacket(keys.encryptionKey, bytes)
        expect(decoded.type === 'invalid' && decoded.error.code).toBe(StreamCodecErrorCodes.DECRYPT_FAILED)
      }),
      { seed, numRuns: 2000 },
    )
  })

  it('reports DECRYPT_FAILED for any single flipped bit, in the IV, the tag or the ciphertext', () => {
    fc.assert(
      fc.property(packet, fc.nat(), fc.integer({ min: 0, max: 7 }), (original, at, bit) => {
        const sealed = Buffer.from(encryptPacket(keys.encryptionKey, original))
        sealed[at % sealed.length]! ^= 1 << bit
        const decoded = decryptPacket(keys.encryptionKey, sealed)
        expect(decoded.type === 'invalid' && decoded.error.code).toBe(StreamCodecErrorCodes.DECRYPT_FAILED)
      }),
      { seed, numRuns: 1000 },
    )
  })

  it('reports DECRYPT_FAILED under the wrong key, and for data cut short', () => {
    const other = deriveKeys(Buffer.alloc(32, 2))
    fc.assert(
      fc.property(packet, fc.nat(), (original, cut) => {
        const sealed = encryptPacket(keys.encryptionKey, original)
        const wrongKey = decryptPacket(other.encryptionKey, sealed)
        expect(wrongKey.type === 'invalid' && wrongKey.error.code).toBe(StreamCodecErrorCodes.DECRYPT_FAILED)
        const short = decryptPacket(keys.encryptionKey, sealed.subarray(0, cut % sealed.length))
        expect(short.type === 'invalid' && short.error.code).toBe(StreamCodecErrorCodes.DECRYPT_FAILED)
      }),
      { seed, numRuns: 500 },
    )
  })
})
