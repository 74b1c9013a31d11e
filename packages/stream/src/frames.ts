import { Buffer } from 'node:buffer'
import { StreamCodecError, StreamCodecErrorCodes } from './codec-error.js'
import { MAX_U64, OerReader, OerWriter } from './oer.js'

/** The wire type byte of every frame RFC 29 §5.3 defines. */
export const FrameTypes = {
  ConnectionClose: 0x01,
  ConnectionNewAddress: 0x02,
  ConnectionMaxData: 0x03,
  ConnectionDataBlocked: 0x04,
  ConnectionMaxStreamId: 0x05,
  ConnectionStreamIdBlocked: 0x06,
  ConnectionAssetDetails: 0x07,
  StreamClose: 0x10,
  StreamMoney: 0x11,
  StreamMaxMoney: 0x12,
  StreamMoneyBlocked: 0x13,
  StreamData: 0x14,
  StreamMaxData: 0x15,
  StreamDataBlocked: 0x16,
  StreamReceipt: 0x17,
} as const

/** The name of a frame type, the discriminant of {@link Frame}. */
export type FrameType = keyof typeof FrameTypes

/** Closes the connection; `errorCode` is one of `CloseCodes` (any UInt8 decodes). */
export interface ConnectionCloseFrame {
  readonly type: 'ConnectionClose'
  readonly errorCode: number
  readonly errorMessage: string
}
/** The sender's new ILP address. */
export interface ConnectionNewAddressFrame {
  readonly type: 'ConnectionNewAddress'
  readonly sourceAccount: string
}
/** Total bytes the sender accepts on the connection. */
export interface ConnectionMaxDataFrame {
  readonly type: 'ConnectionMaxData'
  readonly maxOffset: bigint
}
/** Total bytes the sender wants to send on the connection. */
export interface ConnectionDataBlockedFrame {
  readonly type: 'ConnectionDataBlocked'
  readonly maxOffset: bigint
}
/** The largest stream id the sender accepts. */
export interface ConnectionMaxStreamIdFrame {
  readonly type: 'ConnectionMaxStreamId'
  readonly maxStreamId: bigint
}
/** The largest stream id the sender wants to open. */
export interface ConnectionStreamIdBlockedFrame {
  readonly type: 'ConnectionStreamIdBlocked'
  readonly maxStreamId: bigint
}
/** The sender's asset; it never changes during a connection. */
export interface ConnectionAssetDetailsFrame {
  readonly type: 'ConnectionAssetDetails'
  readonly sourceAssetCode: string
  /** UInt8. */
  readonly sourceAssetScale: number
}
/** Closes one stream; `errorCode` is one of `CloseCodes` (any UInt8 decodes). */
export interface StreamCloseFrame {
  readonly type: 'StreamClose'
  readonly streamId: bigint
  readonly errorCode: number
  readonly errorMessage: string
}
/** This stream's share of the Prepare amount, relative to the other StreamMoney frames of the packet. */
export interface StreamMoneyFrame {
  readonly type: 'StreamMoney'
  readonly streamId: bigint
  readonly shares: bigint
}
/** How much the sender accepts on the stream in total, and has received, in its own units. */
export interface StreamMaxMoneyFrame {
  readonly type: 'StreamMaxMoney'
  readonly streamId: bigint
  /** Decodes as the largest u64 when the wire value is longer (RFC 29 §5.1.4). */
  readonly receiveMax: bigint
  readonly totalReceived: bigint
}
/** How much the sender wants to send on the stream in total, and has sent, in its own units. */
export interface StreamMoneyBlockedFrame {
  readonly type: 'StreamMoneyBlocked'
  readonly streamId: bigint
  /** Decodes as the largest u64 when the wire value is longer (RFC 29 §5.1.4). */
  readonly sendMax: bigint
  readonly totalSent: bigint
}
/** Application bytes at `offset` of the stream's byte stream. */
export interface StreamDataFrame {
  readonly type: 'StreamData'
  readonly streamId: bigint
  readonly offset: bigint
  readonly data: Uint8Array
}
/** Total bytes the sender accepts on the stream. */
export interface StreamMaxDataFrame {
  readonly type: 'StreamMaxData'
  readonly streamId: bigint
  readonly maxOffset: bigint
}
/** Total bytes the sender wants to send on the stream. */
export interface StreamDataBlockedFrame {
  readonly type: 'StreamDataBlocked'
  readonly streamId: bigint
  readonly maxOffset: bigint
}
/** An RFC 39 receipt for the stream's total received, opaque to the codec. */
export interface StreamReceiptFrame {
  readonly type: 'StreamReceipt'
  readonly streamId: bigint
  readonly receipt: Uint8Array
}

/**
 * A STREAM frame, discriminated by `type`. Field names follow RFC 29 (and ilp-protocol-stream);
 * every u64 is a `bigint`.
 */
export type Frame =
  | ConnectionCloseFrame
  | ConnectionNewAddressFrame
  | ConnectionMaxDataFrame
  | ConnectionDataBlockedFrame
  | ConnectionMaxStreamIdFrame
  | ConnectionStreamIdBlockedFrame
  | ConnectionAssetDetailsFrame
  | StreamCloseFrame
  | StreamMoneyFrame
  | StreamMaxMoneyFrame
  | StreamMoneyBlockedFrame
  | StreamDataFrame
  | StreamMaxDataFrame
  | StreamDataBlockedFrame
  | StreamReceiptFrame

const invalid = (message: string) => new StreamCodecError(StreamCodecErrorCodes.INVALID_FIELD, message)

function u64(value: unknown, field: string): bigint {
  if (typeof value !== 'bigint' || value < 0n || value > MAX_U64) {
    throw invalid(`${field}=${String(value)} is not a u64 bigint (0 to ${MAX_U64})`)
  }
  return value
}

function uint8(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xff) {
    throw invalid(`${field}=${String(value)} is not a UInt8 (an integer 0 to 255)`)
  }
  return value
}

function text(value: unknown, field: string): string {
  if (typeof value !== 'string') throw invalid(`${field} is ${typeof value}, not a string`)
  return value
}

function bytes(value: unknown, field: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw invalid(`${field} is not a Uint8Array`)
  return value
}

/** Writes one frame's contents (without its type byte and length prefix), checking every field. */
function writeContents(frame: Frame, out: OerWriter): void {
  const where = (field: string) => `${frame.type}.${field}`
  switch (frame.type) {
    case 'ConnectionClose':
      out.writeUInt8(uint8(frame.errorCode, where('errorCode')))
      out.writeUtf8String(text(frame.errorMessage, where('errorMessage')))
      return
    case 'ConnectionNewAddress':
      out.writeUtf8String(text(frame.sourceAccount, where('sourceAccount')))
      return
    case 'ConnectionMaxData':
    case 'ConnectionDataBlocked':
      out.writeVarUInt(u64(frame.maxOffset, where('maxOffset')))
      return
    case 'ConnectionMaxStreamId':
    case 'ConnectionStreamIdBlocked':
      out.writeVarUInt(u64(frame.maxStreamId, where('maxStreamId')))
      return
    case 'ConnectionAssetDetails':
      out.writeUtf8String(text(frame.sourceAssetCode, where('sourceAssetCode')))
      out.writeUInt8(uint8(frame.sourceAssetScale, where('sourceAssetScale')))
      return
    case 'StreamClose':
      out.writeVarUInt(u64(frame.streamId, where('streamId')))
      out.writeUInt8(uint8(frame.errorCode, where('errorCode')))
      out.writeUtf8String(text(frame.errorMessage, where('errorMessage')))
      return
    case 'StreamMoney':
      out.writeVarUInt(u64(frame.streamId, where('streamId')))
      out.writeVarUInt(u64(frame.shares, where('shares')))
      return
    case 'StreamMaxMoney':
      out.writeVarUInt(u64(frame.streamId, where('streamId')))
      out.writeVarUInt(u64(frame.receiveMax, where('receiveMax')))
      out.writeVarUInt(u64(frame.totalReceived, where('totalReceived')))
      return
    case 'StreamMoneyBlocked':
      out.writeVarUInt(u64(frame.streamId, where('streamId')))
      out.writeVarUInt(u64(frame.sendMax, where('sendMax')))
      out.writeVarUInt(u64(frame.totalSent, where('totalSent')))
      return
    case 'StreamData':
      out.writeVarUInt(u64(frame.streamId, where('streamId')))
      out.writeVarUInt(u64(frame.offset, where('offset')))
      out.writeVarOctetString(bytes(frame.data, where('data')))
      return
    case 'StreamMaxData':
    case 'StreamDataBlocked':
      out.writeVarUInt(u64(frame.streamId, where('streamId')))
      out.writeVarUInt(u64(frame.maxOffset, where('maxOffset')))
      return
    case 'StreamReceipt':
      out.writeVarUInt(u64(frame.streamId, where('streamId')))
      out.writeVarOctetString(bytes(frame.receipt, where('receipt')))
      return
    default:
      throw invalid(`unknown frame type ${JSON.stringify((frame as { type: unknown }).type)}`)
  }
}

/**
 * Writes a frame: its type byte, then its contents as a VarOctetString, in place. A frame that
 * does not encode throws with part of it written: the writer is then the caller's to discard.
 */
export function writeFrame(frame: Frame, out: OerWriter): void {
  out.writeUInt8(FrameTypes[frame.type] ?? 0)
  const mark = out.beginOctets()
  writeContents(frame, out)
  out.endOctets(mark)
}

/**
 * The bytes {@link writeFrame} writes for a frame, at most (a u64 is counted at its full 9): how
 * a sender keeps a packet within ILP's 32,767 bytes without encoding it twice.
 */
export function frameSize(frame: Frame): number {
  let contents: number
  switch (frame.type) {
    case 'ConnectionClose':
      contents = 1 + stringSize(frame.errorMessage)
      break
    case 'ConnectionNewAddress':
      contents = stringSize(frame.sourceAccount)
      break
    case 'ConnectionAssetDetails':
      contents = stringSize(frame.sourceAssetCode) + 1
      break
    case 'StreamClose':
      contents = 9 + 1 + stringSize(frame.errorMessage)
      break
    case 'StreamData':
      contents = 18 + octetsSize(frame.data.length)
      break
    case 'StreamReceipt':
      contents = 9 + octetsSize(frame.receipt.length)
      break
    case 'StreamMaxMoney':
    case 'StreamMoneyBlocked':
      contents = 27
      break
    case 'StreamMoney':
    case 'StreamMaxData':
    case 'StreamDataBlocked':
      contents = 18
      break
    default:
      contents = 9
  }
  return 1 + octetsSize(contents)
}

/** A VarOctetString of `length` bytes: its length prefix and the bytes. */
function octetsSize(length: number): number {
  return (length < 0x80 ? 1 : length < 0x100 ? 2 : length < 0x10000 ? 3 : 5) + length
}

function stringSize(value: string): number {
  return octetsSize(Buffer.byteLength(value, 'utf8'))
}

/**
 * Reads a frame; `undefined` for a type this version does not know, whose contents are skipped
 * (RFC 29 §5.3). Bytes after a known frame's fields are ignored, as a later version may add fields.
 */
export function readFrame(reader: OerReader, index: number): Frame | undefined {
  const typeByte = reader.readUInt8(`frame ${index} type`)
  const contents = new OerReader(reader.readVarOctetString(`frame ${index} contents`))
  const field = (name: string) => `frame ${index} (type ${typeByte}) ${name}`
  switch (typeByte) {
    case FrameTypes.ConnectionClose:
      return {
        type: 'ConnectionClose',
        errorCode: contents.readUInt8(field('errorCode')),
        errorMessage: contents.readUtf8String(field('errorMessage')),
      }
    case FrameTypes.ConnectionNewAddress:
      return { type: 'ConnectionNewAddress', sourceAccount: contents.readUtf8String(field('sourceAccount')) }
    case FrameTypes.ConnectionMaxData:
      return { type: 'ConnectionMaxData', maxOffset: contents.readVarUInt(field('maxOffset')) }
    case FrameTypes.ConnectionDataBlocked:
      return { type: 'ConnectionDataBlocked', maxOffset: contents.readVarUInt(field('maxOffset')) }
    case FrameTypes.ConnectionMaxStreamId:
      return { type: 'ConnectionMaxStreamId', maxStreamId: contents.readVarUInt(field('maxStreamId')) }
    case FrameTypes.ConnectionStreamIdBlocked:
      return { type: 'ConnectionStreamIdBlocked', maxStreamId: contents.readVarUInt(field('maxStreamId')) }
    case FrameTypes.ConnectionAssetDetails:
      return {
        type: 'ConnectionAssetDetails',
        sourceAssetCode: contents.readUtf8String(field('sourceAssetCode')),
        sourceAssetScale: contents.readUInt8(field('sourceAssetScale')),
      }
    case FrameTypes.StreamClose:
      return {
        type: 'StreamClose',
        streamId: contents.readVarUInt(field('streamId')),
        errorCode: contents.readUInt8(field('errorCode')),
        errorMessage: contents.readUtf8String(field('errorMessage')),
      }
    case FrameTypes.StreamMoney:
      return {
        type: 'StreamMoney',
        streamId: contents.readVarUInt(field('streamId')),
        shares: contents.readVarUInt(field('shares')),
      }
    case FrameTypes.StreamMaxMoney:
      return {
        type: 'StreamMaxMoney',
        streamId: contents.readVarUInt(field('streamId')),
        receiveMax: contents.readSaturatingVarUInt(field('receiveMax')),
        totalReceived: contents.readVarUInt(field('totalReceived')),
      }
    case FrameTypes.StreamMoneyBlocked:
      return {
        type: 'StreamMoneyBlocked',
        streamId: contents.readVarUInt(field('streamId')),
        sendMax: contents.readSaturatingVarUInt(field('sendMax')),
        totalSent: contents.readVarUInt(field('totalSent')),
      }
    case FrameTypes.StreamData:
      return {
        type: 'StreamData',
        streamId: contents.readVarUInt(field('streamId')),
        offset: contents.readVarUInt(field('offset')),
        data: contents.readVarOctetString(field('data')),
      }
    case FrameTypes.StreamMaxData:
      return {
        type: 'StreamMaxData',
        streamId: contents.readVarUInt(field('streamId')),
        maxOffset: contents.readVarUInt(field('maxOffset')),
      }
    case FrameTypes.StreamDataBlocked:
      return {
        type: 'StreamDataBlocked',
        streamId: contents.readVarUInt(field('streamId')),
        maxOffset: contents.readVarUInt(field('maxOffset')),
      }
    case FrameTypes.StreamReceipt:
      return {
        type: 'StreamReceipt',
        streamId: contents.readVarUInt(field('streamId')),
        receipt: contents.readVarOctetString(field('receipt')),
      }
    default:
      return undefined
  }
}
