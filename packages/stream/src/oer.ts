import { Buffer } from 'node:buffer'
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
    // In place (no view of the bytes): the commonest field of every packet.
    const length = this.readLengthPrefix(field)
    if (length > this.remaining) {
      throw malformed(`${field}: length ${length} at byte ${this.offset} runs past the end (${this.remaining} bytes left)`)
    }
    const start = this.offset
    this.offset += length
    if (length === 0) throw malformed(`${field}: VarUInt of length 0 at byte ${at}`)
    if (length > 8) {
      if (saturate) return MAX_U64
      throw malformed(`${field}: VarUInt of ${length} bytes at byte ${at} does not fit a u64`)
    }
    const bytes = this.bytes
    // Six bytes fit a double exactly: most amounts, ids and offsets are read without a bigint per byte.
    if (length <= 6) {
      let small = 0
      for (let i = start; i < start + length; i++) small = small * 256 + bytes[i]!
      return BigInt(small)
    }
    let value = 0n
    for (let i = start; i < start + length; i++) value = (value << 8n) | BigInt(bytes[i]!)
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

/** Bytes a u32 takes, at least one. */
function bytesOf(value: number): number {
  return value < 0x100 ? 1 : value < 0x1_0000 ? 2 : value < 0x100_0000 ? 3 : 4
}

/** Writes OER fields into a growing byte array. */
export class OerWriter {
  private bytes: Uint8Array
  private length = 0

  constructor(capacity = 64) {
    // A view of Node's pooled memory (below 4 KiB), not a backing store of its own per packet.
    const pooled = Buffer.allocUnsafe(capacity)
    this.bytes = new Uint8Array(pooled.buffer, pooled.byteOffset, capacity)
  }

  writeUInt8(value: number): void {
    this.reserve(1)
    this.bytes[this.length++] = value
  }

  /** Writes `value` (already checked to be a u64) in the fewest bytes, at least one. */
  writeVarUInt(value: bigint): void {
    // In two 32-bit halves, as numbers: no bigint shift per byte.
    const high = value > 0xffff_ffffn ? Number(value >> 32n) : 0
    const low = high === 0 ? Number(value) : Number(value & 0xffff_ffffn)
    const size = high === 0 ? bytesOf(low) : 4 + bytesOf(high)
    this.reserve(1 + size)
    const bytes = this.bytes
    let at = this.length
    bytes[at++] = size
    if (high !== 0) for (let shift = 8 * (size - 5); shift >= 0; shift -= 8) bytes[at++] = (high >>> shift) & 0xff
    for (let shift = 8 * (Math.min(size, 4) - 1); shift >= 0; shift -= 8) bytes[at++] = (low >>> shift) & 0xff
    this.length = at
  }

  /**
   * Starts a VarOctetString whose length is not known yet (the contents are written next, into
   * this writer); {@link endOctets} with the mark returned writes its length prefix.
   */
  beginOctets(): number {
    this.writeUInt8(0)
    return this.length
  }

  /** Ends the VarOctetString begun at `mark`; its bytes move up when the prefix takes more than one byte. */
  endOctets(mark: number): void {
    const length = this.length - mark
    if (length < 0x80) {
      this.bytes[mark - 1] = length
      return
    }
    let size = 1
    while (length >= 2 ** (8 * size)) size++
    this.reserve(size)
    this.bytes.copyWithin(mark + size, mark, this.length)
    this.bytes[mark - 1] = 0x80 | size
    for (let i = 0; i < size; i++) this.bytes[mark + i] = Math.floor(length / 2 ** (8 * (size - 1 - i))) & 0xff
    this.length += size
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
