import { StreamCodecError, StreamCodecErrorCodes } from './codec-error.js'
import { frameSize, readFrame, writeFrame, type Frame } from './frames.js'
import { MAX_U64, OerReader, OerWriter } from './oer.js'

/** The STREAM version this codec speaks. */
export const STREAM_VERSION = 1

/** The ILPv4 packet type a STREAM packet is meant to travel in (RFC 29 §5.2). */
export const IlpPacketTypes = {
  Prepare: 12,
  Fulfill: 13,
  Reject: 14,
} as const

/** One of {@link IlpPacketTypes}. */
export type IlpPacketType = (typeof IlpPacketTypes)[keyof typeof IlpPacketTypes]

/** A STREAM packet, before encryption or after decryption. */
export interface StreamPacket {
  /** Which ILP packet carries it; a receiver must discard a packet that arrives in another type. */
  readonly ilpPacketType: IlpPacketType
  /** The sender's Prepare counter; a Fulfill or Reject repeats the Prepare's sequence. u64. */
  readonly sequence: bigint
  /**
   * On a Prepare, the least the receiver should accept; on a Fulfill or Reject, what the receiver
   * got in the Prepare. u64, in the receiver's units.
   */
  readonly prepareAmount: bigint
  /** Frames in wire order; frames of unknown types are dropped when decoding. */
  readonly frames: readonly Frame[]
}

/** What a decoder returns: the packet, or why the bytes are not one. Never throws for bad input. */
export type DecodedPacket =
  | { readonly type: 'valid'; readonly packet: StreamPacket }
  | { readonly type: 'invalid'; readonly error: StreamCodecError }

const ILP_PACKET_TYPES = new Set<number>(Object.values(IlpPacketTypes))

/**
 * Serializes a packet (unencrypted). Throws an INVALID_FIELD {@link StreamCodecError} naming the
 * field when a value does not fit its wire type (a negative or too large `bigint`, a scale over 255).
 * The bytes are a view of Node's buffer pool, as `Buffer.allocUnsafe`'s are: copy them to keep them.
 */
export function encodePacket(packet: StreamPacket): Uint8Array {
  if (!ILP_PACKET_TYPES.has(packet.ilpPacketType)) {
    throw new StreamCodecError(
      StreamCodecErrorCodes.INVALID_FIELD,
      `ilpPacketType=${String(packet.ilpPacketType)} is not 12 (Prepare), 13 (Fulfill) or 14 (Reject)`,
    )
  }
  for (const [field, value] of [
    ['sequence', packet.sequence],
    ['prepareAmount', packet.prepareAmount],
  ] as const) {
    if (typeof value !== 'bigint' || value < 0n || value > MAX_U64) {
      throw new StreamCodecError(StreamCodecErrorCodes.INVALID_FIELD, `${field}=${String(value)} is not a u64 bigint (0 to ${MAX_U64})`)
    }
  }
  // Room for the whole packet at once (frameSize is an upper bound): the writer never grows.
  let capacity = 32
  for (const frame of packet.frames) capacity += frameSize(frame)
  const out = new OerWriter(capacity)
  out.writeUInt8(STREAM_VERSION)
  out.writeUInt8(packet.ilpPacketType)
  out.writeVarUInt(packet.sequence)
  out.writeVarUInt(packet.prepareAmount)
  out.writeVarUInt(BigInt(packet.frames.length))
  for (const frame of packet.frames) writeFrame(frame, out)
  return out.finish()
}

/**
 * Parses a serialized (decrypted) packet. Frames of unknown types are skipped, and bytes after
 * the frames (padding) are ignored, as RFC 29 requires; anything else that is not a version 1
 * packet is an `invalid` result with a MALFORMED or UNSUPPORTED_VERSION error.
 */
export function decodePacket(bytes: Uint8Array): DecodedPacket {
  try {
    return { type: 'valid', packet: readPacket(bytes) }
  } catch (err) {
    if (err instanceof StreamCodecError) return { type: 'invalid', error: err }
    throw err
  }
}

function readPacket(bytes: Uint8Array): StreamPacket {
  const reader = new OerReader(bytes)
  const version = reader.readUInt8('version')
  if (version !== STREAM_VERSION) {
    throw new StreamCodecError(StreamCodecErrorCodes.UNSUPPORTED_VERSION, `STREAM version ${version}, this codec speaks ${STREAM_VERSION}`)
  }
  const ilpPacketType = reader.readUInt8('ilpPacketType')
  if (!ILP_PACKET_TYPES.has(ilpPacketType)) {
    throw new StreamCodecError(StreamCodecErrorCodes.MALFORMED, `ilpPacketType ${ilpPacketType} is not 12, 13 or 14`)
  }
  const sequence = reader.readVarUInt('sequence')
  const prepareAmount = reader.readVarUInt('prepareAmount')
  const count = reader.readVarUInt('frame count')
  // Each frame takes at least two bytes (type and an empty length prefix).
  if (count > BigInt(reader.remaining) / 2n) {
    throw new StreamCodecError(StreamCodecErrorCodes.MALFORMED, `frame count ${count} does not fit in the ${reader.remaining} bytes left`)
  }
  const frames: Frame[] = []
  for (let index = 0; index < Number(count); index++) {
    const frame = readFrame(reader, index)
    if (frame !== undefined) frames.push(frame)
  }
  return { ilpPacketType: ilpPacketType as IlpPacketType, sequence, prepareAmount, frames }
}
