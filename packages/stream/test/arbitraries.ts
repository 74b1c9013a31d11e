import fc from 'fast-check'
import { IlpPacketTypes, MAX_U64, type Frame, type FrameType, type StreamPacket } from '../src/index.ts'

/** Seeded, so a red run replays: STREAM_SEED=… npx vitest run packages/stream. */
export const seed = Number(process.env.STREAM_SEED ?? 20261229)

/** u64 values, weighted toward the edges where VarUInt lengths change. */
export const u64 = fc.oneof(
  fc.bigInt({ min: 0n, max: MAX_U64 }),
  fc.constantFrom(0n, 1n, 0x7fn, 0x80n, 0xffn, 0x100n, 0xffff_ffffn, 0x1_0000_0000n, 2n ** 53n, MAX_U64 - 1n, MAX_U64),
)
const uint8 = fc.integer({ min: 0, max: 255 })
/** Valid Unicode (no lone surrogates), so UTF-8 round-trips; long enough to need a two-byte length prefix. */
const text = fc.string({ unit: 'binary', maxLength: 200 })
const bytes = fc.uint8Array({ maxLength: 400 })

/** One arbitrary per frame type, so a test can run each type on its own. */
export const frameArbitraries: { [T in FrameType]: fc.Arbitrary<Extract<Frame, { type: T }>> } = {
  ConnectionClose: fc.record({ type: fc.constant('ConnectionClose'), errorCode: uint8, errorMessage: text }),
  ConnectionNewAddress: fc.record({ type: fc.constant('ConnectionNewAddress'), sourceAccount: text }),
  ConnectionMaxData: fc.record({ type: fc.constant('ConnectionMaxData'), maxOffset: u64 }),
  ConnectionDataBlocked: fc.record({ type: fc.constant('ConnectionDataBlocked'), maxOffset: u64 }),
  ConnectionMaxStreamId: fc.record({ type: fc.constant('ConnectionMaxStreamId'), maxStreamId: u64 }),
  ConnectionStreamIdBlocked: fc.record({ type: fc.constant('ConnectionStreamIdBlocked'), maxStreamId: u64 }),
  ConnectionAssetDetails: fc.record({ type: fc.constant('ConnectionAssetDetails'), sourceAssetCode: text, sourceAssetScale: uint8 }),
  StreamClose: fc.record({ type: fc.constant('StreamClose'), streamId: u64, errorCode: uint8, errorMessage: text }),
  StreamMoney: fc.record({ type: fc.constant('StreamMoney'), streamId: u64, shares: u64 }),
  StreamMaxMoney: fc.record({ type: fc.constant('StreamMaxMoney'), streamId: u64, receiveMax: u64, totalReceived: u64 }),
  StreamMoneyBlocked: fc.record({ type: fc.constant('StreamMoneyBlocked'), streamId: u64, sendMax: u64, totalSent: u64 }),
  StreamData: fc.record({ type: fc.constant('StreamData'), streamId: u64, offset: u64, data: bytes }),
  StreamMaxData: fc.record({ type: fc.constant('StreamMaxData'), streamId: u64, maxOffset: u64 }),
  StreamDataBlocked: fc.record({ type: fc.constant('StreamDataBlocked'), streamId: u64, maxOffset: u64 }),
  StreamReceipt: fc.record({ type: fc.constant('StreamReceipt'), streamId: u64, receipt: bytes }),
}

export const frame: fc.Arbitrary<Frame> = fc.oneof(...Object.values(frameArbitraries))

export const packet: fc.Arbitrary<StreamPacket> = fc.record({
  ilpPacketType: fc.constantFrom(IlpPacketTypes.Prepare, IlpPacketTypes.Fulfill, IlpPacketTypes.Reject),
  sequence: u64,
  prepareAmount: u64,
  frames: fc.array(frame, { maxLength: 8 }),
})

/** A packet with byte fields as hex, so packets decoded from a Buffer and built from a Uint8Array compare equal. */
export function comparable(value: StreamPacket): unknown {
  return {
    ...value,
    frames: value.frames.map((f) =>
      Object.fromEntries(Object.entries(f).map(([key, v]) => [key, v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v])),
    ),
  }
}
