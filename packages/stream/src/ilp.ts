import { Buffer } from 'node:buffer'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const IlpPacket = require('ilp-packet') as typeof import('ilp-packet')

/*
 * The ILPv4 packets a connection sends and answers, through ilp-packet (a kept library: the wire
 * format of ILP itself is not ours to write). Amounts cross this fence as `bigint`.
 */

/** What a connection sends through its plugin and hands to its peer. */
export interface IlpPrepare {
  readonly destination: string
  readonly amount: bigint
  readonly executionCondition: Buffer
  readonly expiresAt: Date
  readonly data: Buffer
}

/** The answer to a Prepare. */
export type IlpReply =
  | { readonly type: 'fulfill'; readonly fulfillment: Buffer; readonly data: Buffer }
  | { readonly type: 'reject'; readonly code: string; readonly triggeredBy: string; readonly message: string; readonly data: Buffer }

/** The ILP plugin interface (RFC 24) as far as a connection needs it: one call per Prepare. */
export interface DataPlugin {
  sendData(data: Buffer): Promise<Buffer>
}

/** ILPv4 packet type bytes (RFC 27). */
export const FULFILL = 13
export const REJECT = 14

export function serializePrepare(prepare: IlpPrepare): Buffer {
  return IlpPacket.serializeIlpPrepare({ ...prepare, amount: prepare.amount.toString() })
}

/** Parses a Prepare, or `undefined` for bytes that are not one. */
export function deserializePrepare(bytes: Buffer): IlpPrepare | undefined {
  try {
    const prepare = IlpPacket.deserializeIlpPrepare(bytes)
    return { ...prepare, amount: BigInt(prepare.amount) }
  } catch {
    return undefined
  }
}

export function serializeFulfill(fulfillment: Buffer, data: Buffer): Buffer {
  return IlpPacket.serializeIlpFulfill({ fulfillment, data })
}

export function serializeReject(code: string, triggeredBy: string, message: string, data: Buffer = Buffer.alloc(0)): Buffer {
  return IlpPacket.serializeIlpReject({ code, triggeredBy, message, data })
}

/** Parses a Fulfill or Reject, or `undefined` for bytes that are neither. */
export function deserializeReply(bytes: Buffer): IlpReply | undefined {
  try {
    if (bytes[0] === FULFILL) {
      const { fulfillment, data } = IlpPacket.deserializeIlpFulfill(bytes)
      return { type: 'fulfill', fulfillment, data }
    }
    if (bytes[0] === REJECT) {
      const { code, triggeredBy, message, data } = IlpPacket.deserializeIlpReject(bytes)
      return { type: 'reject', code, triggeredBy, message, data }
    }
  } catch {
    // neither
  }
  return undefined
}

/**
 * The largest amount an F08 (Amount Too Large) says fits the path, in the sender's units: the
 * reject's data holds what arrived at the connector and its maximum, both in the connector's
 * units (RFC 27), so the sender scales its own amount by their ratio. `undefined` when the data
 * does not say (then the sender halves its packets).
 */
export function maxPacketAmountFromF08(data: Buffer, sent: bigint): bigint | undefined {
  if (data.length < 16) return undefined
  const received = data.readBigUInt64BE(0)
  const maximum = data.readBigUInt64BE(8)
  if (received === 0n) return undefined
  return (sent * maximum) / received
}
