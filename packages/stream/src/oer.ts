import { StreamCodecError, StreamCodecErrorCodes } from './codec-error.js'

/*
 * The few Octet Encoding Rules (OER) shapes STREAM uses: UInt8, VarUInt (a length-prefixed
 * big-endian unsigned integer) and VarOctetString (a length-prefixed byte string). Written here
 * rather than taken from oer-utils because oer-utils speaks `Long`, and STREAM amounts are
 * `bigint` end to end; these are the only three shapes, and the interop tests pin them against
 * oer-utils as ilp-protocol-stream uses it.
 */

/** The largest u64, the ceiling of every STREAM amount, sequence, id and offset. */
export const MAX_U64 = 0xffff_ffff_ffff_ffffn

const utf8Decoder = new TextDecoder()
const utf8Encoder = new TextEncoder()

const malformed = (message: string) => new StreamCodecError(StreamCodecErrorCodes.MALFORMED, message)

/** Reads OER fields from a byte array, throwing a MALFORMED {@link StreamCodecError} at the first bad byte. */
export class OerReader {
  private offset = 0

  constructor(private readonly bytes: Uint8Array) {}

  /** Bytes not read yet. */
  get remaining(): number {
    return this.bytes.length - this.offset
  }

  readUInt8(field: string): number {
    if (this.offset >= this.bytes.length) throw malformed(`${field}: packet ends at byte ${this.offset}, expected a UInt8`)
    return this.bytes[this.offset++]!
  }

  /** A VarUInt that must fit a u64. */
  readVarUInt(field: string): bigint {
    return this.readVarUIntOrSaturate(field, false)
  }

  /** A VarUInt that reads as {@link MAX_U64} when it is longer than 8 bytes (RFC 29 §5.1.4, for receive and send maxima). */
  readSaturatingVarUInt(field: string): bigint {
    return this.readVarUIntOrSaturate(field, true)
  }

  readVarOctetString(field: string): Uint8Array {
    const length = this.readLengthPrefix(field)
    if (length > this.remaining) {
      throw malformed(`${field}: length ${length} at byte ${this.offset} runs past the end (${this.remaining} bytes left)`)
    }
    const value = this.bytes.subarray(this.offset, this.offset + length)
    this.offset += length
    return value
  }

  /** A UTF-8 string; invalid sequences read as U+FFFD, as ilp-protocol-stream reads them. */
  readUtf8String(field: string): string {
    return utf8Decoder.decode(this.readVarOctetString(field))
  }

  private readVarUIntOrSaturate(field: string, saturate: boolean): bigint {
    const at = this.offset
    const bytes = this.readVarOctetString(field)
    if (bytes.length === 0) throw malformed(`${field}: VarUInt of length 0 at byte ${at}`)
    if (bytes.length > 8) {
      if (saturate) return MAX_U64
      throw malformed(`${field}: VarUInt of ${bytes.length} bytes at byte ${at} does not fit a u64`)
    }
    let value = 0n
    for (const byte of bytes) value = (value << 8n) | BigInt(byte)
    return value
  }

  private readLengthPrefix(field: string): number {
    const at = this.offset
    const first = this.readUInt8(field)
    if (first < 0x80) return first
    const size = first & 0x7f
    // Four bytes already describe more than any ILP packet can hold.
    if (size === 0 || size > 4) throw malformed(`${field}: length prefix of ${size} bytes at byte ${at}`)
    let length = 0
    for (let i = 0; i < size; i++) length = length * 256 + this.readUInt8(field)
    const minimum = size === 1 ? 0x80 : 2 ** (8 * (size - 1))
    if (length < minimum) throw malformed(`${field}: length ${length} at byte ${at} is not canonically encoded in ${size} bytes`)
    return length
  }
}

/** Writes OER fields into a growing byte array. */
export class OerWriter {
  private bytes: Uint8Array
  private length = 0

  constructor(capacity = 64) {
    this.bytes = new Uint8Array(capacity)
  }

  writeUInt8(value: number): void {
    this.reserve(1)
    this.bytes[this.length++] = value
  }

  /** Writes `value` (already checked to be a u64) in the fewest bytes, at least one. */
  writeVarUInt(value: bigint): void {
    let size = 1
    while (size < 8 && value >> BigInt(8 * size) !== 0n) size++
    this.reserve(1 + size)
    this.bytes[this.length++] = size
    for (let i = size - 1; i >= 0; i--) this.bytes[this.length++] = Number((value >> BigInt(8 * i)) & 0xffn)
  }

  writeVarOctetString(value: Uint8Array): void {
    const length = value.length
    if (length < 0x80) {
      this.writeUInt8(length)
    } else {
      let size = 1
      while (length >= 2 ** (8 * size)) size++
      this.writeUInt8(0x80 | size)
      for (let i = size - 1; i >= 0; i--) this.writeUInt8(Math.floor(length / 2 ** (8 * i)) & 0xff)
    }
    this.reserve(length)
    this.bytes.set(value, this.length)
    this.length += length
  }

  writeUtf8String(value: string): void {
    this.writeVarOctetString(utf8Encoder.encode(value))
  }

  /** The bytes written so far (a view, not a copy). */
  finish(): Uint8Array {
    return this.bytes.subarray(0, this.length)
  }

  private reserve(extra: number): void {
    if (this.length + extra <= this.bytes.length) return
    let capacity = this.bytes.length * 2
    while (capacity < this.length + extra) capacity *= 2
    const grown = new Uint8Array(capacity)
    grown.set(this.bytes.subarray(0, this.length))
    this.bytes = grown
  }
}
