import { Buffer } from 'node:buffer'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { describe, expect, it } from 'vitest'
import {
  CloseCodes,
  IlpPacketTypes,
  MAX_U64,
  StreamListener,
  conditionFor,
  decryptPacket,
  deriveKeys,
  encodePacket,
  encryptPacket,
  fulfillmentFor,
  type Frame,
  type MoneyStream,
  type StreamPacket,
} from '@cogpay/stream'
// The ILP packet helpers of the transport itself, to hand-build what a peer or connector would send.
import { deserializePrepare, deserializeReply, serializeFulfill, serializePrepare, serializeReject } from '../packages/stream/src/ilp.ts'
// The codec's frame size bound, which the connection packs packets by (not exported).
import { frameSize } from '../packages/stream/src/frames.ts'
import { hostileServer, testnetSides } from './support/hostile-peer.ts'
import { ourClient, ourListener, side, theirStream, type BtpPluginLike } from './support/stream-peers.ts'
import { sleep, until } from './support/wait.ts'

// Attacks on @cogpay/stream (issue 10) by a peer holding the shared secret, by a connector on the
// path and by a stranger. Receiver-side attacks call the listener directly with hand-built
// Prepares (no network); sender-side ones run over the real hub, the malicious peer being a data
// handler on its own account and the malicious connector a wrapper at the sender's plugin.
// Each test is named after the defect it shows and fails until that defect is fixed; a test whose
// name starts with "pins:" is an attack that failed, kept to hold the invariant it checks.

const ILP_MAX_DATA = 32_767

// --- a receiver to attack, and a peer that holds its secret ---------------------------------------

interface Sent {
  reply: ReturnType<typeof deserializeReply>
  raw: Buffer
  packet: StreamPacket | undefined
}

/**
 * Our listener (no network: its own Prepares go nowhere) and a hostile client with the secret of
 * one of its tokens, which sends any frames it likes straight into `listener.handleData`.
 */
function hostileClient(
  options: {
    receiveMax?: bigint
    onStream?: (stream: MoneyStream) => void
    maxRemoteStreams?: number
    maxPacketsInFlight?: number
    /** Keep every stream the peer opens in `streams` (default true; off for floods). */
    keepStreams?: boolean
    /** How long the peer takes to answer the listener's own Prepares. Default 0. */
    answerDelayMs?: number
  } = {},
) {
  // What the listener's connection sends to the peer: each is answered as a quiet peer does (a
  // Fulfill with an encrypted reply and no frames when it can be fulfilled, else F99), and kept
  // for the test to read.
  const outgoing: StreamPacket[] = []
  /** The byte length of each of those Prepares' data (ILP allows 32,767). */
  const outgoingSizes: number[] = []
  const plugin = {
    sendData: async (bytes: Buffer): Promise<Buffer> => {
      const prepare = deserializePrepare(bytes)!
      outgoingSizes.push(prepare.data.length)
      if (options.answerDelayMs) await sleep(options.answerDelayMs)
      const decoded = decryptPacket(keys.encryptionKey, prepare.data)
      if (decoded.type !== 'valid') return serializeReject('F06', 'test.attack.peer', '')
      outgoing.push(decoded.packet)
      const fulfillment = Buffer.from(fulfillmentFor(keys.fulfillmentKey, prepare.data))
      const fulfill = Buffer.from(conditionFor(fulfillment)).equals(prepare.executionCondition)
      const reply = Buffer.from(
        encryptPacket(keys.encryptionKey, {
          ilpPacketType: fulfill ? IlpPacketTypes.Fulfill : IlpPacketTypes.Reject,
          sequence: decoded.packet.sequence,
          prepareAmount: prepare.amount,
          frames: [],
        }),
      )
      return fulfill ? serializeFulfill(fulfillment, reply) : serializeReject('F99', 'test.attack.peer', '', reply)
    },
  }
  const listener = new StreamListener({
    plugin,
    address: 'test.attack.rx',
    asset: { code: 'XRP', scale: 9 },
    ...(options.maxRemoteStreams === undefined ? {} : { maxRemoteStreams: options.maxRemoteStreams }),
    ...(options.maxPacketsInFlight === undefined ? {} : { maxPacketsInFlight: options.maxPacketsInFlight }),
  })
  const { destinationAccount, sharedSecret, token } = listener.generateCredentials()
  const keys = deriveKeys(sharedSecret)
  const streams = new Map<number, MoneyStream>()
  listener.on('connection', (connection) =>
    connection.on('stream', (stream) => {
      if (options.keepStreams !== false) streams.set(stream.id, stream)
      if (options.receiveMax !== undefined) stream.setReceiveMax(options.receiveMax)
      options.onStream?.(stream)
    }),
  )
  let sequence = 1n
  const prepare = (
    frames: Frame[],
    opts: { amount?: bigint; prepareAmount?: bigint; expiresAt?: Date; sequence?: bigint } = {},
  ): Buffer => {
    const data = Buffer.from(
      encryptPacket(keys.encryptionKey, {
        ilpPacketType: IlpPacketTypes.Prepare,
        sequence: opts.sequence ?? sequence++,
        prepareAmount: opts.prepareAmount ?? 0n,
        frames,
      }),
    )
    return serializePrepare({
      destination: destinationAccount,
      amount: opts.amount ?? 0n,
      executionCondition: Buffer.from(conditionFor(fulfillmentFor(keys.fulfillmentKey, data))),
      expiresAt: opts.expiresAt ?? new Date(Date.now() + 30_000),
      data,
    })
  }
  const send = (frames: Frame[], opts: Parameters<typeof prepare>[1] = {}): Sent => {
    const raw = listener.handleData(prepare(frames, opts))
    const reply = deserializeReply(raw)
    const decoded = reply && reply.data.length > 0 ? decryptPacket(keys.encryptionKey, reply.data) : undefined
    return { reply, raw, packet: decoded?.type === 'valid' ? decoded.packet : undefined }
  }
  return { listener, send, prepare, streams, outgoing, outgoingSizes, connection: () => listener.connectionFor(token) }
}

const money = (streamId: number | bigint, shares: bigint): Frame => ({ type: 'StreamMoney', streamId: BigInt(streamId), shares })
const data = (streamId: number, offset: number | bigint, bytes: Uint8Array): Frame => ({
  type: 'StreamData',
  streamId: BigInt(streamId),
  offset: BigInt(offset),
  data: bytes,
})
const usd: Frame = { type: 'ConnectionAssetDetails', sourceAssetCode: 'USD', sourceAssetScale: 6 }

// --- memory, with a real gc -------------------------------------------------------------------------

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
/** Heap and ArrayBuffer bytes live after a full collection. */
function live(): { heap: number; buffers: number } {
  gc()
  gc()
  const usage = process.memoryUsage()
  return { heap: usage.heapUsed, buffers: usage.arrayBuffers }
}


const newAddress: Frame = { type: 'ConnectionNewAddress', sourceAccount: 'test.attack.peer' }
const maxMoney = (streamId: number, receiveMax = 0n, totalReceived = 0n): Frame => ({ type: 'StreamMaxMoney', streamId: BigInt(streamId), receiveMax, totalReceived })
const closeStream = (streamId: number): Frame => ({ type: 'StreamClose', streamId: BigInt(streamId), errorCode: CloseCodes.NoError, errorMessage: '' })
const replyType = (sent: Sent) => (sent.reply?.type === 'reject' ? sent.reply.code : sent.reply?.type)

describe('receiver: a peer holding the secret', () => {
  it('duplicate StreamMoney frames for one stream take it past its receive max, in one asset', () => {
    const peer = hostileClient({ receiveMax: 100n })
    // Two frames for stream 1, one share each: each half (100) is checked alone against the max.
    const sent = peer.send([money(1, 1n), money(1, 1n)], { amount: 200n })
    const stream = peer.streams.get(1)!
    expect(stream.totalReceived).toBeLessThanOrEqual(100n)
    expect(replyType(sent)).toBe('F99')
  })

  it('a receive max of 2^64-1 is passed past u64 (duplicate frames): the reply throws after the money was credited, unfulfilled', () => {
    const peer = hostileClient({ receiveMax: MAX_U64 })
    expect(replyType(peer.send([money(1, 1n)], { amount: MAX_U64 - 10n }))).toBe('fulfill')
    const stream = peer.streams.get(1)!
    let sent: Sent | undefined
    expect(() => (sent = peer.send([money(1, 1n), money(1, 1n)], { amount: 20n }))).not.toThrow()
    // Whatever the answer, money is credited only when fulfilled, and never past u64.
    if (replyType(sent!) !== 'fulfill') expect(stream.totalReceived).toBe(MAX_U64 - 10n)
    expect(stream.totalReceived).toBeLessThanOrEqual(MAX_U64)
  })

  it('across assets, the 1 % slack on a receive max of 2^64-1 goes past u64: the reply throws after the money was credited, unfulfilled', () => {
    const peer = hostileClient({ receiveMax: MAX_U64 })
    expect(replyType(peer.send([usd, money(1, 1n)], { amount: MAX_U64 - 1n }))).toBe('fulfill')
    const stream = peer.streams.get(1)!
    let sent: Sent | undefined
    expect(() => (sent = peer.send([money(1, 1n)], { amount: 1000n }))).not.toThrow()
    if (replyType(sent!) !== 'fulfill') expect(stream.totalReceived).toBe(MAX_U64 - 1n)
    expect(stream.totalReceived).toBeLessThanOrEqual(MAX_U64)
    expect(peer.connection()!.totalReceived).toBeLessThanOrEqual(MAX_U64)
  })

  it('across assets, "less than one sender unit" past the max trusts the shares the peer claims: one share takes 1,000 x the receive max', () => {
    const peer = hostileClient({ receiveMax: 1000n })
    // The peer says its packet is one unit of its asset, worth 1,000,000 of ours.
    const sent = peer.send([usd, money(1, 1n)], { amount: 1_000_000n })
    const stream = peer.streams.get(1)!
    // 1 % over the max is 1,010; a bound the receiver sets itself must hold, not one the peer names.
    expect(stream.totalReceived).toBeLessThanOrEqual(2000n)
    expect(replyType(sent)).toBe('F99')
  })

  it('zero-share StreamMoney frames on a zero-amount Prepare throw a RangeError (division by zero) out of handleData', () => {
    const peer = hostileClient({ receiveMax: 100n })
    let sent: Sent | undefined
    expect(() => (sent = peer.send([money(1, 0n), money(1, 0n)], { amount: 0n }))).not.toThrow()
    expect(sent!.reply).toBeDefined()
  })

  it('an expired Prepare is fulfilled and its money credited (the connector will not pay for it)', () => {
    const peer = hostileClient({ receiveMax: 100n })
    const sent = peer.send([money(1, 1n)], { amount: 50n, expiresAt: new Date(Date.now() - 1000) })
    expect(replyType(sent)).not.toBe('fulfill')
    expect(peer.streams.get(1)?.totalReceived ?? 0n).toBe(0n)
  })

  it('out-of-order data: overlapping early segments are all held, far past the stream window (16 KiB)', () => {
    const peer = hostileClient()
    peer.send([maxMoney(1)])
    const before = live()
    const chunk = randomBytes(8000)
    // Each segment lies within the window (offset + 8,000 <= 16,384), each at another offset.
    for (let offset = 1; offset <= 1000; offset++) peer.send([data(1, offset, chunk)])
    const held = live().buffers - before.buffers
    expect(peer.streams.get(1)!.isOpen).toBe(true)
    expect(held).toBeLessThan(2 * 1024 * 1024)
  })

  it('out-of-order data: a 1-byte early segment pins its whole decrypted packet (16 KB each)', () => {
    const peer = hostileClient()
    peer.send([maxMoney(1)])
    const before = live()
    const junk = randomBytes(16_000)
    // One byte of data, and a receipt the receiver ignores: the byte is a view into the plaintext.
    for (let offset = 1; offset <= 1000; offset++) {
      peer.send([data(1, offset, Buffer.from([offset & 0xff])), { type: 'StreamReceipt', streamId: 1n, receipt: junk }])
    }
    const held = live().buffers - before.buffers
    expect(held).toBeLessThan(2 * 1024 * 1024)
  })

  it('out-of-order data: putting 16,383 early bytes back in order is quadratic (one packet blocks the event loop)', () => {
    const peer = hostileClient()
    peer.send([maxMoney(1)])
    let frames: Frame[] = []
    // Every byte of the window but the first, each a segment of its own, the last offset first.
    for (let offset = 16_383; offset >= 1; offset--) {
      frames.push(data(1, offset, Buffer.from([1])))
      if (frames.length === 2500 || offset === 1) {
        peer.send(frames)
        frames = []
      }
    }
    let delivered = 0
    peer.streams.get(1)!.on('data', (chunk) => (delivered += chunk.length))
    const started = performance.now()
    peer.send([data(1, 0, Buffer.from([1]))])
    const elapsed = performance.now() - started
    expect(delivered).toBe(16_384)
    // A 1-byte packet. Linear reassembly takes a few ms; 100 streams of it would take 100 times this.
    expect(elapsed).toBeLessThan(250)
  })

  it('closed stream ids are remembered forever while a lower one stays open (memory grows with every stream)', async () => {
    // Stream 1 stays open (a long-lived stream, as a lease's); streams 3, 5, 7, ... open and close.
    const peer = hostileClient({ keepStreams: false, maxRemoteStreams: 1000 })
    peer.send([newAddress, maxMoney(1)])
    let next = 3
    let closed = 0
    const batch = () => {
      const frames: Frame[] = []
      for (const limit = 2 * (1000 + closed); next <= limit; next += 2, closed++) {
        frames.push({ type: 'StreamMaxData', streamId: BigInt(next), maxOffset: 0n }, closeStream(next))
      }
      expect(replyType(peer.send(frames))).toBe('fulfill')
    }
    for (let i = 0; i < 5; i++) batch()
    await sleep(0)
    peer.outgoing.length = 0
    const before = live()
    for (let i = 0; i < 100; i++) {
      batch()
      // The listener's own packets go out (its ConnectionMaxStreamId raises).
      await sleep(0)
    }
    peer.outgoing.length = 0
    const grown = live().heap - before.heap
    expect(closed).toBeGreaterThan(100_000)
    expect(peer.connection()!.streamCount).toBe(1)
    // ~100,000 closed ids cost ~1.5 MB in the set; with stream 1 closed too the growth is ~0.3 MB.
    expect(grown).toBeLessThan(1024 * 1024)
  })

  it('a ConnectionMaxStreamId frame is queued for every closed stream, and while packets are in flight they pile into one Prepare past 32,767 bytes', async () => {
    // One packet in flight at a time, answered after 50 ms.
    const peer = hostileClient({ keepStreams: false, maxRemoteStreams: 1000, maxPacketsInFlight: 1, answerDelayMs: 50 })
    let next = 1
    let closed = 0
    // The peer opens and closes 1,000 streams a packet: the listener's first raise goes out, then 35 more packets.
    const batch = () => {
      const frames: Frame[] = []
      for (const limit = 2 * (1000 + closed); next <= limit; next += 2, closed++) {
        frames.push({ type: 'StreamMaxData', streamId: BigInt(next), maxOffset: 0n }, closeStream(next))
      }
      peer.send(frames)
    }
    peer.send([newAddress])
    batch()
    await sleep(0)
    expect(peer.connection()!.packetsInFlight).toBe(1)
    for (let i = 0; i < 35; i++) batch()
    await until(() => peer.connection()!.packetsInFlight === 0 && peer.outgoing.length >= 2, 5000)
    const largest = Math.max(...peer.outgoingSizes)
    const frames = Math.max(...peer.outgoing.map((packet) => packet.frames.length))
    expect(largest).toBeLessThanOrEqual(ILP_MAX_DATA)
    // One limit is all the peer needs to hear.
    expect(frames).toBeLessThan(100)
  })

  it('money on stream id 2^64-1 throws out of handleData (Number(streamId) rounds it to 2^64, and the StreamClose reply cannot be encoded)', () => {
    const peer = hostileClient({ receiveMax: 1000n })
    let sent: Sent | undefined
    expect(() => (sent = peer.send([money(MAX_U64, 1n)], { amount: 10n }))).not.toThrow()
    expect(replyType(sent!)).toBe('F99')
  })

  it('a send-only client (no ConnectionNewAddress, as RFC 29 allows) makes the server keep every frame it cannot send: memory grows with each stream', async () => {
    // The application ends each stream the peer opens: each close is a StreamClose to tell.
    const peer = hostileClient({ keepStreams: false, maxRemoteStreams: 1000, onStream: (stream) => stream.end() })
    let next = 1
    let closed = 0
    const batch = () => {
      const frames: Frame[] = []
      for (const limit = 2 * (1000 + closed); next <= limit; next += 2, closed++) frames.push({ type: 'StreamMaxData', streamId: BigInt(next), maxOffset: 0n })
      peer.send(frames)
    }
    for (let i = 0; i < 5; i++) batch()
    await sleep(10)
    const before = live()
    for (let i = 0; i < 50; i++) {
      batch()
      await sleep(0)
    }
    await sleep(10)
    const grown = live().heap - before.heap
    expect(closed).toBeGreaterThan(50_000)
    expect(peer.connection()!.streamCount).toBe(0)
    expect(grown).toBeLessThan(512 * 1024)
  })

  it('a Prepare naming 4,000 refused streams gets a 115 KB reply, past the 32,767 bytes ILP allows', () => {
    const peer = hostileClient({ receiveMax: 1000n })
    const frames: Frame[] = []
    // Even ids: the server's own parity, never opened.
    for (let i = 1; i <= 4000; i++) frames.push(money(2 * i, 1n))
    const request = peer.prepare(frames, { amount: 10n })
    const reply = deserializeReply(peer.listener.handleData(request))!
    expect(reply.type).toBe('reject')
    expect(reply.data.length).toBeLessThanOrEqual(ILP_MAX_DATA)
  })

  it('(working tree, RESTART) a connector replaying the client\'s first Prepare drops the live connection and its streams', () => {
    const peer = hostileClient({ receiveMax: 1000n })
    // The client's opening packet, as every connector on the path saw it: sequence 1, its address.
    const opening = peer.prepare([newAddress, maxMoney(1)])
    expect(deserializeReply(peer.listener.handleData(opening))?.type).toBe('fulfill')
    const opened = peer.connection()!
    expect(replyType(peer.send([money(1, 1n)], { amount: 10n }))).toBe('fulfill')
    // The same bytes again: not a client that started over (that one encrypts anew), a replay.
    peer.listener.handleData(opening)
    expect(opened.isOpen).toBe(true)
    expect(peer.connection()).toBe(opened)
    expect(peer.streams.get(1)!.isOpen).toBe(true)
  })

  // --- attacks that failed: invariants pinned ---

  it('pins: money with a ConnectionClose, or with a StreamClose of its own stream, is turned away and not credited', () => {
    const peer = hostileClient({ receiveMax: 1000n })
    expect(replyType(peer.send([money(1, 1n), closeStream(1)], { amount: 10n }))).toBe('F99')
    expect(peer.streams.get(1)!.totalReceived).toBe(0n)
    expect(replyType(peer.send([money(3, 1n), { type: 'ConnectionClose', errorCode: CloseCodes.NoError, errorMessage: '' }], { amount: 10n }))).toBe('F99')
    expect(peer.connection()).toBeUndefined()
    expect(peer.streams.get(3)?.totalReceived ?? 0n).toBe(0n)
  })

  it('pins: less than the named minimum, a wrong condition, or a closed stream: no credit', () => {
    const peer = hostileClient({ receiveMax: 1000n })
    expect(replyType(peer.send([money(1, 1n)], { amount: 10n, prepareAmount: 11n }))).toBe('F99')
    // A condition that is not this packet's: the fulfillment would not match.
    const other = deserializePrepare(peer.prepare([money(1, 1n)], { amount: 10n }))!
    const forged = deserializePrepare(peer.prepare([money(1, 1n)], { amount: 10n }))!
    const mixed = serializePrepare({ ...forged, executionCondition: other.executionCondition })
    expect(deserializeReply(peer.listener.handleData(mixed))?.type).toBe('reject')
    expect(replyType(peer.send([closeStream(1)]))).toBe('fulfill')
    const closed = peer.send([money(1, 1n)], { amount: 10n })
    expect(replyType(closed)).toBe('F99')
    expect(closed.packet?.frames.some((frame) => frame.type === 'StreamClose' && frame.streamId === 1n)).toBe(true)
    expect(peer.streams.get(1)!.totalReceived).toBe(0n)
  })

  it('pins: wrong-parity, huge and past-the-limit stream ids, and huge offsets, open nothing and never throw', () => {
    const peer = hostileClient({ receiveMax: 1000n })
    const ids = [0n, 2n, 1_000_000n, 2n ** 53n + 1n, 2n ** 63n + 1n]
    for (const id of ids) {
      expect(replyType(peer.send([money(id, 1n)], { amount: 10n }))).toBe('F99')
      expect(replyType(peer.send([{ type: 'StreamMaxMoney', streamId: id, receiveMax: MAX_U64, totalReceived: MAX_U64 }]))).toBe('fulfill')
      expect(replyType(peer.send([{ type: 'StreamData', streamId: id, offset: MAX_U64, data: Buffer.from('x') }]))).not.toBe(undefined)
    }
    expect(peer.streams.size).toBe(0)
    expect(peer.connection()!.streamCount).toBe(0)
    // Stream 1, then data at the largest offset: a flow control error, which closes the
    // connection (RFC 29 §4.4.4).
    peer.send([maxMoney(1)])
    const connection = peer.connection()!
    expect(() => peer.send([data(1, MAX_U64, Buffer.from('x'))])).not.toThrow()
    expect(peer.streams.get(1)!.isOpen).toBe(false)
    expect(connection.closeInfo).toMatchObject({ code: CloseCodes.FlowControlError, byPeer: false })
  })

  it('pins: shares that sum past 2^64-1 split the amount exactly, in bigint', () => {
    const peer = hostileClient({ receiveMax: 1000n })
    const sent = peer.send([money(1, MAX_U64), money(3, MAX_U64), money(5, MAX_U64)], { amount: 301n })
    expect(replyType(sent)).toBe('fulfill')
    expect([1, 3, 5].map((id) => peer.streams.get(id)!.totalReceived)).toEqual([100n, 100n, 101n])
    expect(peer.connection()!.totalReceived).toBe(301n)
  })

  it('pins: a peer cannot hold more than maxRemoteStreams streams open, whatever ids it names', () => {
    const peer = hostileClient({ keepStreams: false, maxRemoteStreams: 10 })
    const frames: Frame[] = []
    for (let id = 1; id < 2000; id += 2) frames.push(maxMoney(id))
    peer.send(frames)
    expect(peer.connection()!.streamCount).toBeLessThanOrEqual(10)
  })
})

describe('listener: a stranger without the secret', () => {
  it('pins: 5,000 Prepares to random tokens and garbage cost no connection and no memory', () => {
    const listener = new StreamListener({ plugin: { sendData: async () => serializeReject('F02', 'test.x', '') }, address: 'test.attack.rx', asset: { code: 'XRP', scale: 9 } })
    const before = live()
    const codes = new Set<string>()
    for (let i = 0; i < 5000; i++) {
      const bytes = serializePrepare({
        destination: `test.attack.rx.${randomBytes(18).toString('base64url')}`,
        amount: BigInt(i),
        executionCondition: randomBytes(32),
        expiresAt: new Date(Date.now() + 30_000),
        data: randomBytes(28 + (i % 500)),
      })
      const reply = deserializeReply(listener.handleData(bytes))
      codes.add(reply?.type === 'reject' ? reply.code : String(reply?.type))
    }
    expect([...codes]).toEqual(['F06'])
    expect(listener.connectionCount).toBe(0)
    expect(live().heap - before.heap).toBeLessThan(1024 * 1024)
  })
})

// --- the sender, over the real hub ------------------------------------------------------------------

const { newSide } = testnetSides()

/**
 * A malicious connector at the sender's edge: every Prepare its plugin sends (but IL-DCP) goes
 * through `intercept`, which may forward it to the real hub or answer it itself.
 */
function connectorAtEdge(intercept: (bytes: Buffer, prepare: NonNullable<ReturnType<typeof deserializePrepare>>, forward: () => Promise<Buffer>) => Promise<Buffer>) {
  return (inner: BtpPluginLike): BtpPluginLike => ({
    connect: () => inner.connect(),
    disconnect: () => inner.disconnect(),
    isConnected: () => inner.isConnected(),
    sendMoney: (amount) => inner.sendMoney(amount),
    registerDataHandler: (handler) => inner.registerDataHandler(handler),
    deregisterDataHandler: () => inner.deregisterDataHandler(),
    sendData: (bytes) => {
      const prepare = deserializePrepare(bytes)
      if (!prepare || prepare.destination.startsWith('peer.')) return inner.sendData(bytes)
      return intercept(bytes, prepare, () => inner.sendData(bytes))
    },
  })
}

/** Catches unhandled rejections and uncaught exceptions (instead of vitest) until `restore()`. */
function trapCrashes() {
  const errors: unknown[] = []
  const events = ['unhandledRejection', 'uncaughtException'] as const
  const saved = events.map((event) => process.listeners(event as 'unhandledRejection'))
  const onError = (error: unknown) => errors.push(error)
  for (const event of events) {
    process.removeAllListeners(event)
    process.on(event as 'unhandledRejection', onError)
  }
  return {
    errors,
    restore() {
      events.forEach((event, index) => {
        process.removeListener(event as 'unhandledRejection', onError)
        for (const listener of saved[index]!) process.on(event as 'unhandledRejection', listener as never)
      })
    },
  }
}

const evilAsset: Frame = { type: 'ConnectionAssetDetails', sourceAssetCode: 'EVL', sourceAssetScale: 0 }
const sameAsset: Frame = { type: 'ConnectionAssetDetails', sourceAssetCode: 'XRP', sourceAssetScale: 9 }

/** Our real listener on a new side, paid on every stream up to `receiveMax`. */
async function payee(receiveMax: bigint, options: Parameters<typeof ourListener>[1] = {}) {
  const b = await newSide()
  const listener = ourListener(b, options)
  let received = 0n
  listener.on('connection', (connection) =>
    connection.on('stream', (stream) => {
      stream.setReceiveMax(receiveMax)
      stream.on('money', (amount) => (received += amount))
    }),
  )
  return { listener, received: () => received, ...listener.generateCredentials() }
}

describe('sender: a malicious peer', () => {
  it('a peer claiming a huge exchange rate crashes the sender: the minimum amount passes 2^64-1 and encrypting the Prepare rejects unhandled', async () => {
    const trap = trapCrashes()
    try {
      const [a, b] = [await newSide(), await newSide()]
      const secret = randomBytes(32)
      // It says it is another asset, that 2^64-1 of its units arrived for every test packet, and
      // that it takes 2^64-1 on each of two streams.
      hostileServer(b, secret, () => ({
        fulfill: false,
        prepareAmount: MAX_U64,
        frames: [evilAsset, maxMoney(1, MAX_U64), maxMoney(3, MAX_U64)],
      }))
      const client = ourClient(a, `${b.address}.evil`, secret)
      const streams = [client.createStream(), client.createStream()]
      for (const stream of streams) stream.setSendMax(1_000_000n)
      await client.open()
      await until(() => trap.errors.length > 0 || client.exchangeRate !== undefined, 5000)
      await sleep(300)
      client.destroy()
      expect(trap.errors.map(String)).toEqual([])
      // Nor does money stay "in flight" for ever on a packet that was never sent.
      expect(streams.map((stream) => stream.inFlight)).toEqual([0n, 0n])
    } finally {
      trap.restore()
    }
  })

  it('pins: a peer lying about its receive max, its totals and what arrived is paid exactly sendMax, never more', async () => {
    const [a, b] = [await newSide(), await newSide()]
    const secret = randomBytes(32)
    // Fulfills all, says it received nothing, wants 2^64-1, and that 0 arrived each time.
    const stats = hostileServer(b, secret, () => ({ prepareAmount: 0n, frames: [sameAsset, maxMoney(1, MAX_U64, 0n), maxMoney(3, MAX_U64, 0n)] }))
    const client = ourClient(a, `${b.address}.liar`, secret, { maxPacketsInFlight: 4 })
    const streams = [client.createStream(), client.createStream()]
    streams[0]!.setSendMax(12_345n)
    streams[1]!.setSendMax(1n)
    await client.open()
    await until(() => streams.every((stream) => stream.totalSent === stream.sendMax), 5000)
    await sleep(100)
    expect(stats.paid).toBe(12_346n)
    expect(client.totalSent).toBe(12_346n)
    client.destroy()
  })

  it('a peer that fulfills every packet, says nothing arrived, and keeps its room at one unit is paid packet after packet up to the whole sendMax (money now stops after 3 such packets)', async () => {
    const [a, b] = [await newSide(), await newSide()]
    const secret = randomBytes(32)
    const stats = hostileServer(b, secret, () => ({ prepareAmount: 0n, frames: [sameAsset, maxMoney(1, 10n, 9n)] }))
    const client = ourClient(a, `${b.address}.keeper`, secret, { maxPacketsInFlight: 1 })
    const stream = client.createStream()
    stream.setSendMax(1000n)
    const moneyError = new Promise<string>((resolve) => stream.once('moneyError', resolve))
    await client.open()
    expect(await Promise.race([moneyError, sleep(3000).then(() => 'no moneyError within 3 s')])).toMatch(/3 packets in a row were fulfilled with nothing arriving/)
    await sleep(100)
    // Three packets of a unit or two (sized to bring one unit at the minimum rate once the first
    // showed nothing arriving): a few units, not the sendMax of 1,000.
    expect(stats.paid).toBeLessThanOrEqual(6n)
    expect(stream.totalSent).toBe(stats.paid)
    expect(stream.sendable).toBe(0n)
    client.destroy()
  })

  it('pins: across assets, a peer claiming a tiny rate (nothing of value arrives) still gets no more than sendMax', async () => {
    const [a, b] = [await newSide(), await newSide()]
    const secret = randomBytes(32)
    const stats = hostileServer(b, secret, () => ({ prepareAmount: 1n, frames: [evilAsset, maxMoney(1, MAX_U64, 0n)] }))
    const client = ourClient(a, `${b.address}.tiny`, secret)
    const stream = client.createStream()
    stream.setSendMax(5_000_000n)
    await client.open()
    await until(() => stream.totalSent === 5_000_000n || stream.moneyError !== undefined, 5000)
    await sleep(100)
    expect(stats.paid).toBeLessThanOrEqual(5_000_000n)
    expect(stream.totalSent + stream.inDoubt).toBeLessThanOrEqual(5_000_000n)
    client.destroy()
  })

  it('pins: replies carrying another sequence are not read (their receive max never opens the tap)', async () => {
    const [a, b] = [await newSide(), await newSide()]
    const secret = randomBytes(32)
    const stats = hostileServer(b, secret, (packet) => ({ sequence: packet.sequence + 1n, frames: [sameAsset, maxMoney(1, MAX_U64)] }))
    const client = ourClient(a, `${b.address}.seq`, secret)
    const stream = client.createStream()
    stream.setSendMax(1000n)
    await client.open().catch(() => {})
    await sleep(300)
    expect(stream.remoteReceiveMax).toBe(0n)
    expect(stats.paid).toBe(0n)
    client.destroy()
  })
})

describe('sender: a malicious connector', () => {
  it('an F08 that claims the packet fits (maximum >= received) is resent at once, for ever: a packet storm with no backoff', async () => {
    const { destinationAccount, sharedSecret } = await payee(1000n)
    let f08s = 0
    const a = await newSide(
      connectorAtEdge(async (_bytes, prepare, forward) => {
        if (prepare.amount === 0n) return forward()
        f08s++
        // Bounded: past 3,000 the connector answers T04 (so the test ends); a real one need not.
        await new Promise((resolve) => setImmediate(resolve))
        if (f08s > 3000) return serializeReject('T04', 'test.hub', 'enough')
        const said = Buffer.alloc(16)
        said.writeBigUInt64BE(prepare.amount, 0)
        said.writeBigUInt64BE(prepare.amount, 8)
        return serializeReject('F08', 'test.hub', 'amount too large', said)
      }),
    )
    const client = ourClient(a, destinationAccount, sharedSecret)
    const stream = client.createStream()
    stream.setSendMax(1000n)
    await client.open()
    await until(() => f08s > 0, 5000)
    const start = f08s
    await sleep(500)
    const inHalfASecond = f08s - start
    client.destroy()
    // With the backoff a T04 gets (50 ms doubling), half a second holds a handful of retries.
    expect(inHalfASecond).toBeLessThan(50)
  })

  it('pins: a T04 storm backs off, and the idle timeout still ends the connection', async () => {
    const { destinationAccount, sharedSecret } = await payee(1000n)
    let t04s = 0
    const a = await newSide(
      connectorAtEdge(async (_bytes, prepare, forward) => {
        if (prepare.amount === 0n) return forward()
        t04s++
        return serializeReject('T04', 'test.hub', 'insufficient liquidity')
      }),
    )
    const client = ourClient(a, destinationAccount, sharedSecret, { idleTimeoutMs: 800 })
    const stream = client.createStream()
    stream.setSendMax(1000n)
    await client.open()
    const info = await Promise.race([client.whenClosed, sleep(4000).then(() => undefined)])
    expect(info?.message).toMatch(/idle/)
    expect(t04s).toBeGreaterThan(0)
    expect(t04s).toBeLessThan(30)
    expect(stream.totalSent).toBe(0n)
  })

  it('pins: a Fulfill with a wrong fulfillment, or one handed back after expiry, is counted in doubt, and ends the connection: never past sendMax', async () => {
    for (const fault of ['wrong fulfillment', 'late'] as const) {
      // A metered payee: 100 at a time, up to 300.
      const b = await newSide()
      const listener = ourListener(b)
      let received = 0n
      listener.on('connection', (connection) =>
        connection.on('stream', (stream) => {
          stream.setReceiveMax(100n)
          stream.on('money', (amount) => {
            received += amount
            if (stream.receiveMax < 300n) stream.setReceiveMax(stream.receiveMax + 100n)
          })
        }),
      )
      const { destinationAccount, sharedSecret } = listener.generateCredentials()
      let fulfills = 0
      const a = await newSide(
        connectorAtEdge(async (_bytes, prepare, forward) => {
          const reply = await forward()
          // The second Fulfill of money is spoiled.
          if (prepare.amount === 0n || reply[0] !== 13 || ++fulfills !== 2) return reply
          if (fault === 'late') {
            await sleep(2700)
            return reply
          }
          return serializeFulfill(randomBytes(32), deserializeReply(reply)!.data)
        }),
      )
      // The hub wants 2 s of expiry at least.
      const client = ourClient(a, destinationAccount, sharedSecret, { packetTimeoutMs: 2500 })
      const stream = client.createStream()
      stream.setSendMax(1000n)
      await client.open()
      // A Prepare without a valid answer ends the connection (as ilp-protocol-stream's does): the
      // path or the peer is not to be trusted; its owner opens a new one.
      await until(() => !client.isOpen, 8000)
      await sleep(fault === 'late' ? 400 : 100)
      expect(client.closeInfo?.message).toMatch(fault === 'late' ? /not answered: no answer within 2500 ms/ : /fulfillment does not match/)
      expect(stream.inDoubt).toBe(100n)
      // The payee got exactly what the payer counts as sent or in doubt, and never past sendMax.
      expect({ fault, received }).toEqual({ fault, received: stream.totalSent + stream.inDoubt })
      expect(stream.totalSent + stream.inDoubt).toBeLessThanOrEqual(1000n)
    }
  })
})

describe('timers', () => {
  it('destroy() leaves the ref\'d expiry timer of an unanswered Prepare: the process stays alive packetTimeoutMs after the connection closed', async () => {
    // A process of its own: it opens a connection whose plugin never answers, destroys it, and
    // should then have nothing left to wait for.
    const script = `
      import { createConnection } from '@cogpay/stream'
      import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
      const connection = createConnection({
        plugin: { sendData: () => new Promise(() => {}) },
        sharedSecret: randomBytes(32),
        sourceAccount: 'test.attack.client',
        destinationAccount: 'test.attack.server',
        asset: { code: 'XRP', scale: 9 },
        packetTimeoutMs: 2500,
      })
      connection.open().catch(() => {})
      setTimeout(() => {
        connection.destroy()
        console.log('destroyed ' + Date.now())
      }, 50)
    `
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: fileURLToPath(new URL('..', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
    const exited = await new Promise<number>((resolve) => child.once('exit', () => resolve(Date.now())))
    const destroyedAt = Number(/destroyed (\d+)/.exec(out)?.[1])
    expect(destroyedAt).toBeGreaterThan(0)
    // Exit follows destroy() at once (well under the 2.5 s the expiry timer would hold it).
    expect(exited - destroyedAt).toBeLessThan(1000)
  })
})

describe('interop and configuration edges', () => {
  it('a listener with streamWindow below 16,384 destroys a stream whose first packet carries the 16 KiB every sender assumes (ours and ilp-protocol-stream)', async () => {
    const results: unknown[] = []
    for (const sender of ['ours', 'theirs'] as const) {
      const b = await newSide()
      const listener = ourListener(b, { streamWindow: 4096 })
      let got = 0
      const closes: string[] = []
      listener.on('connection', (connection) =>
        connection.on('stream', (stream) => {
          stream.on('data', (chunk) => (got += chunk.length))
          stream.on('close', (info) => closes.push(info.message))
        }),
      )
      const { destinationAccount, sharedSecret } = listener.generateCredentials()
      const a = await newSide()
      const payload = randomBytes(10_000)
      // What the stream went through before the sender hung up (its own close follows).
      let before: string[] = []
      if (sender === 'ours') {
        const client = ourClient(a, destinationAccount, sharedSecret)
        client.createStream().write(payload)
        await client.open()
        await until(() => got === payload.length || closes.length > 0, 5000)
        before = [...closes]
        client.destroy()
      } else {
        const connection = await theirStream.createConnection({ plugin: a.plugin as never, destinationAccount, sharedSecret })
        connection.on('error', () => {})
        const stream = connection.createStream()
        stream.on('error', () => {})
        stream.write(payload)
        await until(() => got === payload.length || closes.length > 0, 5000)
        before = [...closes]
        await connection.destroy().catch(() => {})
      }
      results.push({ sender, got, closes: before })
    }
    expect(results).toEqual([
      { sender: 'ours', got: 10_000, closes: [] },
      { sender: 'theirs', got: 10_000, closes: [] },
    ])
  })

  it('pins: an ilp-protocol-stream server with receive max Infinity (2^64-1 and more on the wire) is paid exactly our sendMax', async () => {
    const b = await newSide()
    const server = await theirStream.createServer({ plugin: b.plugin as never })
    let received = 0n
    server.on('connection', (connection: import('ilp-protocol-stream').Connection) => {
      connection.on('error', () => {})
      connection.on('stream', (stream) => {
        stream.on('error', () => {})
        stream.setReceiveMax(Infinity)
        stream.on('money', (amount: string) => (received += BigInt(amount)))
      })
    })
    const { destinationAccount, sharedSecret } = server.generateAddressAndSecret()
    const client = ourClient(await newSide(), destinationAccount, sharedSecret)
    const stream = client.createStream()
    stream.setSendMax(5000n)
    await client.open()
    await until(() => stream.totalSent === 5000n, 5000)
    await sleep(100)
    expect(stream.remoteReceiveMax).toBe(MAX_U64)
    expect(received).toBe(5000n)
    client.destroy()
    await Promise.race([server.close().catch(() => {}), sleep(300)])
  })

  it('pins: ilp-protocol-stream paying a stream our application closes at once: nothing credited, no crash, its stream closes', async () => {
    const b = await newSide()
    const listener = ourListener(b)
    let credited = 0n
    listener.on('connection', (connection) =>
      connection.on('stream', (stream) => {
        stream.setReceiveMax(1000n)
        stream.on('money', (amount) => (credited += amount))
        stream.destroy('not today')
      }),
    )
    const { destinationAccount, sharedSecret } = listener.generateCredentials()
    const connection = await theirStream.createConnection({ plugin: (await newSide()).plugin as never, destinationAccount, sharedSecret })
    connection.on('error', () => {})
    const stream = connection.createStream()
    let closed = false
    stream.on('error', () => {})
    stream.on('close', () => (closed = true))
    stream.setSendMax(1000)
    await until(() => closed, 5000)
    expect(credited).toBe(0n)
    expect(stream.totalSent).toBe('0')
    await connection.destroy().catch(() => {})
  })
})

// --- fixes the attacks above do not reach on their own ------------------------------------------

describe('follow-ups to the attacks', () => {
  it('pins: streams whose first packets arrive out of order all open (5 before 3 before 1); a closed id stays closed; skipped ids stay openable', () => {
    const peer = hostileClient({ receiveMax: 100n, maxRemoteStreams: 10 })
    for (const id of [5, 3, 1]) expect(replyType(peer.send([money(id, 1n)], { amount: 10n }))).toBe('fulfill')
    expect([1, 3, 5].map((id) => peer.streams.get(id)?.totalReceived)).toEqual([10n, 10n, 10n])
    // Closed by the peer: its id does not open again.
    peer.send([closeStream(3)])
    const again = peer.send([money(3, 1n)], { amount: 10n })
    expect(replyType(again)).toBe('F99')
    expect(again.packet?.frames.some((frame) => frame.type === 'StreamClose' && frame.streamId === 3n)).toBe(true)
    // A jump to the top of the limit (2 x (10 + 1 closed) = 22): the ids it skipped open later.
    expect(replyType(peer.send([money(21, 1n)], { amount: 10n }))).toBe('fulfill')
    for (const id of [19, 7]) expect(replyType(peer.send([money(id, 1n)], { amount: 10n }))).toBe('fulfill')
    expect(peer.connection()!.streamCount).toBe(5)
  })

  it("remoteStreamIdsBlocked fires once per limit, not for every ConnectionStreamIdBlocked frame", () => {
    const peer = hostileClient()
    peer.send([newAddress])
    const seen: bigint[] = []
    peer.connection()!.on('remoteStreamIdsBlocked', (max) => seen.push(max))
    for (let i = 0; i < 50; i++) peer.send([{ type: 'ConnectionStreamIdBlocked', maxStreamId: 202n }])
    expect(seen).toEqual([202n])
    // A stream opens and closes: the limit moves, and the peer blocked at the new one is heard.
    peer.send([maxMoney(1), closeStream(1)])
    for (let i = 0; i < 50; i++) peer.send([{ type: 'ConnectionStreamIdBlocked', maxStreamId: 204n }])
    expect(seen).toEqual([202n, 204n])
  })

  it('a closed listener opens no new connection for a later Prepare (F02)', () => {
    const peer = hostileClient()
    peer.send([newAddress])
    peer.listener.close()
    expect(replyType(peer.send([maxMoney(1)]))).toBe('F02')
    expect(peer.listener.connectionCount).toBe(0)
  })

  it('a listener with options no connection can run with throws when it is built, not out of handleData on its first packet', () => {
    const base = { plugin: { sendData: async () => serializeReject('F02', 'test.x', '') }, address: 'test.attack.rx', asset: { code: 'XRP', scale: 9 } }
    expect(() => new StreamListener({ ...base, maxPacketsInFlight: 0 })).toThrow(RangeError)
    expect(() => new StreamListener({ ...base, slippage: '1' })).toThrow(RangeError)
    expect(() => new StreamListener({ ...base, streamWindow: 4096 })).not.toThrow()
  })

  it("a 'money' listener that throws leaves the packet fulfilled and credited once; its error surfaces on its own", async () => {
    const trap = trapCrashes()
    try {
      const peer = hostileClient({
        receiveMax: 100n,
        onStream: (stream) =>
          stream.on('money', () => {
            throw new Error('a listener bug')
          }),
      })
      const sent = peer.send([money(1, 1n)], { amount: 10n })
      await sleep(0)
      expect(replyType(sent)).toBe('fulfill')
      expect(peer.streams.get(1)!.totalReceived).toBe(10n)
      expect(peer.connection()!.totalReceived).toBe(10n)
      expect(trap.errors.map(String)).toEqual(['Error: a listener bug'])
    } finally {
      trap.restore()
    }
  })

  it("pins: a 'money' listener that raises the receive max is answered with the new max in the same reply", () => {
    const peer = hostileClient({ receiveMax: 100n, onStream: (stream) => stream.on('money', () => stream.setReceiveMax(stream.receiveMax + 100n)) })
    const sent = peer.send([money(1, 1n)], { amount: 100n })
    expect(replyType(sent)).toBe('fulfill')
    expect(sent.packet?.frames).toContainEqual({ type: 'StreamMaxMoney', streamId: 1n, receiveMax: 200n, totalReceived: 100n })
  })

  it('packets and replies for 600 streams, each with a new receive max and data to send, stay within 32,767 bytes', async () => {
    const peer = hostileClient({
      keepStreams: false,
      maxRemoteStreams: 1000,
      onStream: (stream) => {
        stream.setReceiveMax(1000n)
        stream.write(randomBytes(1000))
      },
    })
    const frames: Frame[] = []
    for (let id = 1; id <= 1199; id += 2) frames.push(maxMoney(id))
    const sent = peer.send([newAddress, ...frames])
    expect(replyType(sent)).toBe('fulfill')
    expect(sent.reply!.data.length).toBeLessThanOrEqual(ILP_MAX_DATA)
    await until(() => peer.outgoing.length >= 3 && peer.connection()!.packetsInFlight === 0, 5000)
    expect(Math.max(...peer.outgoingSizes)).toBeLessThanOrEqual(ILP_MAX_DATA)
    // Every stream's new max went out, none dropped for want of room.
    const told = new Set(peer.outgoing.flatMap((packet) => packet.frames.filter((frame) => frame.type === 'StreamMaxMoney').map((frame) => frame.streamId)))
    expect(told.size).toBe(600)
  })

  it('pins: frameSize bounds what every frame takes on the wire, at its largest values', () => {
    const long = 'é'.repeat(700)
    const frames: Frame[] = [
      { type: 'ConnectionClose', errorCode: 255, errorMessage: long },
      { type: 'ConnectionNewAddress', sourceAccount: 'test.' + 'a'.repeat(1000) },
      { type: 'ConnectionAssetDetails', sourceAssetCode: 'XRP', sourceAssetScale: 255 },
      { type: 'ConnectionMaxData', maxOffset: MAX_U64 },
      { type: 'ConnectionDataBlocked', maxOffset: MAX_U64 },
      { type: 'ConnectionMaxStreamId', maxStreamId: MAX_U64 },
      { type: 'ConnectionStreamIdBlocked', maxStreamId: MAX_U64 },
      { type: 'StreamClose', streamId: MAX_U64, errorCode: 255, errorMessage: long },
      { type: 'StreamMoney', streamId: MAX_U64, shares: MAX_U64 },
      { type: 'StreamMaxMoney', streamId: MAX_U64, receiveMax: MAX_U64, totalReceived: MAX_U64 },
      { type: 'StreamMoneyBlocked', streamId: MAX_U64, sendMax: MAX_U64, totalSent: MAX_U64 },
      { type: 'StreamData', streamId: MAX_U64, offset: MAX_U64, data: randomBytes(30_000) },
      { type: 'StreamData', streamId: 1n, offset: 0n, data: randomBytes(100) },
      { type: 'StreamMaxData', streamId: MAX_U64, maxOffset: MAX_U64 },
      { type: 'StreamDataBlocked', streamId: MAX_U64, maxOffset: MAX_U64 },
      { type: 'StreamReceipt', streamId: MAX_U64, receipt: randomBytes(58) },
    ]
    // A packet of one frame: 8 bytes of header (version, type, sequence 1, amount 0, one frame).
    for (const frame of frames) {
      const wire = encodePacket({ ilpPacketType: IlpPacketTypes.Prepare, sequence: 1n, prepareAmount: 0n, frames: [frame] }).length - 8
      expect({ type: frame.type, fits: wire <= frameSize(frame) }).toEqual({ type: frame.type, fits: true })
    }
  })

  it("the rate probe's wait between attempts ends when the connection is destroyed (the process exits at once)", async () => {
    // A process of its own: the peer says it has another asset, then turns every test packet
    // away with T04, so the probe waits (50 ms doubling). Destroyed in its fifth wait (1.6 s).
    const ilp = new URL('../packages/stream/src/ilp.ts', import.meta.url).href
    const script = `
      import { Buffer } from 'node:buffer'
      import { randomBytes } from 'node:crypto'
      import { IlpPacketTypes, createConnection, decryptPacket, deriveKeys, encryptPacket } from '@cogpay/stream'
      import { deserializePrepare, serializeReject } from '${ilp}'
      const sharedSecret = randomBytes(32)
      const keys = deriveKeys(sharedSecret)
      let prepares = 0
      const connection = createConnection({
        plugin: {
          sendData: async (bytes) => {
            const prepare = deserializePrepare(bytes)
            const decoded = decryptPacket(keys.encryptionKey, prepare.data)
            if (decoded.type !== 'valid') return serializeReject('F06', 'test.attack.server', '')
            if (prepares++ > 0) return serializeReject('T04', 'test.attack.hub', 'no liquidity')
            const reply = encryptPacket(keys.encryptionKey, {
              ilpPacketType: IlpPacketTypes.Reject,
              sequence: decoded.packet.sequence,
              prepareAmount: 0n,
              frames: [{ type: 'ConnectionAssetDetails', sourceAssetCode: 'EVL', sourceAssetScale: 0 }],
            })
            return serializeReject('F99', 'test.attack.server', '', Buffer.from(reply))
          },
        },
        sharedSecret,
        sourceAccount: 'test.attack.client',
        destinationAccount: 'test.attack.server',
        asset: { code: 'XRP', scale: 9 },
      })
      connection.createStream().setSendMax(1000n)
      connection.open().catch(() => {})
      setTimeout(() => {
        connection.destroy()
        console.log('destroyed ' + Date.now() + ' prepares ' + prepares)
      }, 1600)
    `
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: fileURLToPath(new URL('..', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
    const exited = await new Promise<number>((resolve) => child.once('exit', () => resolve(Date.now())))
    const destroyedAt = Number(/destroyed (\d+)/.exec(out)?.[1])
    // The probe ran (test packets went), and nothing it waits on holds the process.
    expect(Number(/prepares (\d+)/.exec(out)?.[1])).toBeGreaterThan(5)
    expect(exited - destroyedAt).toBeLessThan(700)
  })
})
