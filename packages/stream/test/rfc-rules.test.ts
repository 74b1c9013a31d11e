import { Buffer } from 'node:buffer'
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'
import {
  CloseCodes,
  IlpPacketTypes,
  StreamListener,
  conditionFor,
  createConnection,
  decryptPacket,
  deriveKeys,
  encryptPacket,
  fulfillmentFor,
  type ClientConnectionOptions,
  type Connection,
  type Frame,
  type ListenerOptions,
  type MoneyStream,
  type StreamKeys,
  type StreamPacket,
} from '../src/index.ts'
import { deserializePrepare, deserializeReply, serializeFulfill, serializePrepare, serializeReject } from '../src/ilp.ts'

// RFC 29 rules an audit found @cogpay/stream broke (or never tested), each test named after the
// defect. Two of our endpoints talk through plugins that hand each Prepare to the other side a
// turn later, as a hub would; a hand-built peer (our codec, the shared secret) sends what an
// honest endpoint never would.

const ASSET = { code: 'XRP', scale: 9 }
const require = createRequire(import.meta.url)
const theirReceipts = require('ilp-protocol-stream/dist/src/util/receipt.js') as typeof import('ilp-protocol-stream/dist/src/util/receipt.js')

/** Resolves after `ms`. */
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Waits until `condition()` holds, polling every 5 ms; throws after `ms`. */
async function until(condition: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`)
    await sleep(5)
  }
}

/** The STREAM packet inside a Prepare, under `keys`. */
function readPrepare(keys: StreamKeys, bytes: Buffer): StreamPacket {
  const decoded = decryptPacket(keys.encryptionKey, deserializePrepare(bytes)!.data)
  if (decoded.type !== 'valid') throw new Error('a Prepare that does not decrypt')
  return decoded.packet
}

/**
 * Our listener and our client, each the other's plugin: a Prepare reaches the other side a turn
 * later (several are in flight at once, as through a hub). Every Prepare either side sends is
 * kept, decrypted, in `sent`.
 */
function pair(options: { listener?: Partial<ListenerOptions>; client?: Partial<ClientConnectionOptions> } = {}) {
  const sent: { from: 'client' | 'server'; packet: StreamPacket }[] = []
  let client: Connection | undefined
  let server: Connection | undefined
  const listener = new StreamListener({
    ...options.listener,
    address: 'test.rfc.server',
    asset: ASSET,
    plugin: {
      sendData: async (bytes) => {
        sent.push({ from: 'server', packet: readPrepare(keys, bytes) })
        await new Promise((resolve) => setImmediate(resolve))
        return client!.handleDataLater(bytes)
      },
    },
  })
  listener.on('connection', (connection) => (server = connection))
  const { destinationAccount, sharedSecret } = listener.generateCredentials()
  const keys = deriveKeys(sharedSecret)
  client = createConnection({
    ...options.client,
    plugin: {
      sendData: async (bytes) => {
        sent.push({ from: 'client', packet: readPrepare(keys, bytes) })
        await new Promise((resolve) => setImmediate(resolve))
        return listener.handleDataLater(bytes)
      },
    },
    sourceAccount: 'test.rfc.client',
    asset: ASSET,
    destinationAccount,
    sharedSecret,
  })
  return { listener, client, server: () => server, sent }
}

/**
 * Our listener, and a peer with the secret of one of its tokens that sends any frames it likes
 * straight into `listener.handleData`. The listener's own Prepares are answered as a quiet peer
 * does (fulfilled when they can be, else F99, with an empty encrypted reply) and kept in `toPeer`.
 */
function rawPeer(options: Partial<ListenerOptions> = {}) {
  const toPeer: StreamPacket[] = []
  const listener = new StreamListener({
    ...options,
    address: 'test.rfc.server',
    asset: ASSET,
    plugin: {
      sendData: async (bytes) => {
        const prepare = deserializePrepare(bytes)!
        const packet = readPrepare(keys, bytes)
        toPeer.push(packet)
        const fulfillment = Buffer.from(fulfillmentFor(keys.fulfillmentKey, prepare.data))
        const fulfill = Buffer.from(conditionFor(fulfillment)).equals(prepare.executionCondition)
        const reply = Buffer.from(
          encryptPacket(keys.encryptionKey, {
            ilpPacketType: fulfill ? IlpPacketTypes.Fulfill : IlpPacketTypes.Reject,
            sequence: packet.sequence,
            prepareAmount: prepare.amount,
            frames: [],
          }),
        )
        return fulfill ? serializeFulfill(fulfillment, reply) : serializeReject('F99', 'test.rfc.peer', '', reply)
      },
    },
  })
  const { destinationAccount, sharedSecret, token } = listener.generateCredentials()
  const keys = deriveKeys(sharedSecret)
  let sequence = 1n
  /** Sends one Prepare carrying `frames`; returns the reply's type (or code) and its STREAM frames. */
  const send = (frames: Frame[], at = sequence++) => {
    const data = Buffer.from(encryptPacket(keys.encryptionKey, { ilpPacketType: IlpPacketTypes.Prepare, sequence: at, prepareAmount: 0n, frames }))
    const raw = listener.handleData(
      serializePrepare({
        destination: destinationAccount,
        amount: 0n,
        executionCondition: Buffer.from(conditionFor(fulfillmentFor(keys.fulfillmentKey, data))),
        expiresAt: new Date(Date.now() + 30_000),
        data,
      }),
    )
    const reply = deserializeReply(raw)!
    const decoded = reply.data.length > 0 ? decryptPacket(keys.encryptionKey, reply.data) : undefined
    return { type: reply.type === 'reject' ? reply.code : reply.type, frames: decoded?.type === 'valid' ? decoded.packet.frames : [] }
  }
  return { listener, send, toPeer, connection: () => listener.connectionFor(token) }
}

const hello: Frame[] = [
  { type: 'ConnectionNewAddress', sourceAccount: 'test.rfc.peer' },
  { type: 'ConnectionAssetDetails', sourceAssetCode: ASSET.code, sourceAssetScale: ASSET.scale },
]
const data = (streamId: number, offset: number, bytes: Uint8Array): Frame => ({ type: 'StreamData', streamId: BigInt(streamId), offset: BigInt(offset), data: bytes })
const connectionClose = (frames: readonly Frame[]) => frames.find((frame) => frame.type === 'ConnectionClose')

describe('connection-level flow control (RFC 29 §4.5)', () => {
  it('the ConnectionMaxData we advertise covers every open stream\'s limit, so a peer within its streams\' limits is never past it (with a small stream window, honest senders were closed with FlowControlError)', () => {
    // A small stream window: each stream still takes bytes up to offset 16,384 (what every sender
    // assumes). Bytes held out of order (offset 1 on, never handed on) fill stream after stream to
    // its limit; the connection's advertised max data stays above their sum, and it stays open.
    const peer = rawPeer({ streamWindow: 1000 })
    let advertised = 0n
    const heard = (frames: readonly Frame[]) => {
      for (const frame of frames) if (frame.type === 'ConnectionMaxData' && frame.maxOffset > advertised) advertised = frame.maxOffset
    }
    heard(peer.send(hello).frames)
    let total = 0n
    for (let id = 1; id <= 19; id += 2) {
      heard(peer.send([data(id, 1, Buffer.alloc(16_383))]).frames)
      total += 16_384n
      expect(advertised, `after ${total} bytes on ${(id + 1) / 2} streams`).toBeGreaterThanOrEqual(total)
    }
    expect(peer.connection()?.isOpen).toBe(true)
    // One byte past a stream's own limit is what a peer cannot send: that closes the connection.
    const connection = peer.connection()!
    const reply = peer.send([data(21, 16_384, Buffer.alloc(1))])
    expect(connection.closeInfo).toMatchObject({ code: CloseCodes.FlowControlError, byPeer: false })
    expect(reply.type).toBe('F99')
    expect(connectionClose(reply.frames)).toMatchObject({ errorCode: CloseCodes.FlowControlError })
  })

  it('the ConnectionMaxData we advertise never falls below a value we advertised before, nor below the 65,534 bytes every sender assumes (it fell as streams closed)', () => {
    const peer = rawPeer({ streamWindow: 1000 })
    const limits: bigint[] = []
    const heard = (frames: readonly Frame[]) => {
      for (const frame of frames) if (frame.type === 'ConnectionMaxData') limits.push(frame.maxOffset)
    }
    heard(peer.send(hello).frames)
    // Ten streams with 500 bytes each, handed on: the limit grows with them.
    for (let id = 1; id <= 19; id += 2) heard(peer.send([data(id, 0, Buffer.alloc(500))]).frames)
    for (let id = 1; id <= 19; id += 2) heard(peer.send([{ type: 'StreamClose', streamId: BigInt(id), errorCode: CloseCodes.NoError, errorMessage: '' }]).frames)
    expect(limits.length).toBeGreaterThan(20)
    for (const [index, limit] of limits.entries()) {
      expect(limit).toBeGreaterThanOrEqual(65_534n)
      if (index > 0) expect(limit).toBeGreaterThanOrEqual(limits[index - 1]!)
    }
  })

  it('honest endpoints are never closed by it: 5 streams of 30,000 bytes each way through a window of 1,000', async () => {
    const payload = Buffer.alloc(30_000, 7)
    const { client, server, listener } = pair({ listener: { streamWindow: 1000 }, client: { streamWindow: 1000 } })
    const received = new Map<string, number>()
    const count = (side: string, stream: MoneyStream) =>
      stream.on('data', (chunk) => received.set(`${side} ${stream.id}`, (received.get(`${side} ${stream.id}`) ?? 0) + chunk.length))
    listener.on('connection', (connection) => connection.on('stream', (stream) => count('server', stream)))
    client.on('stream', (stream) => count('client', stream))
    for (let i = 0; i < 5; i++) client.createStream().write(payload)
    await client.open()
    await until(() => server() !== undefined, 2000)
    for (let i = 0; i < 5; i++) server()!.createStream().write(payload)
    const done = () => received.size === 10 && [...received.values()].every((n) => n === payload.length)
    await until(() => done() || !client.isOpen, 10_000)
    expect(client.closeInfo).toBeUndefined()
    expect(server()!.closeInfo).toBeUndefined()
    expect([...received.values()]).toEqual(Array(10).fill(payload.length))
    client.destroy()
  })
})

describe('stream-level flow control (RFC 29 §4.4.4)', () => {
  it('a peer that sends past a stream\'s max offset loses the connection with FlowControlError (it lost only that stream, with ApplicationError)', () => {
    const peer = rawPeer()
    peer.send(hello)
    const connection = peer.connection()!
    let stream: MoneyStream | undefined
    connection.on('stream', (opened) => (stream = opened))
    peer.send([data(1, 0, Buffer.from('x'))])
    const reply = peer.send([data(1, 16_384, Buffer.from('past the max'))])
    // RFC 29 §4.4.4: "The receiving endpoint MUST close the connection with a FlowControlError".
    expect(connection.closeInfo).toMatchObject({ code: CloseCodes.FlowControlError, byPeer: false })
    expect(connection.closeInfo!.message).toContain('stream 1')
    expect(stream!.isOpen).toBe(false)
    // The peer is told so in the reply, which credits nothing.
    expect(reply.type).toBe('F99')
    expect(connectionClose(reply.frames)).toMatchObject({ errorCode: CloseCodes.FlowControlError })
  })
})

describe('packets per connection (RFC 29 §5.1.3)', () => {
  it('packetLimit is checked when a connection or listener is built: an integer from 3 to 2^31 (there was no limit at all)', () => {
    const plugin = { sendData: async () => Buffer.alloc(0) }
    const base = { plugin, sourceAccount: 'test.rfc.client', asset: ASSET, destinationAccount: 'test.rfc.server', sharedSecret: Buffer.alloc(32) }
    for (const packetLimit of [0, 2, 2.5, 2 ** 31 + 1, Number.NaN]) {
      expect(() => createConnection({ ...base, packetLimit })).toThrow(RangeError)
      expect(() => new StreamListener({ plugin, address: 'test.rfc.server', asset: ASSET, packetLimit })).toThrow(RangeError)
    }
    expect(() => createConnection({ ...base, packetLimit: 3 })).not.toThrow()
    expect(() => createConnection({ ...base, packetLimit: 2 ** 31 })).not.toThrow()
  })

  it('a connection closes before it sends the packet its limit forbids, its ConnectionClose the last packet (it sent packets for ever)', async () => {
    const { client, server, sent } = pair({ client: { packetLimit: 10 } })
    const stream = client.createStream()
    await client.open()
    // One packet per write, until the connection closes (it never did: a bounded loop).
    for (let i = 0; i < 30 && client.isOpen; i++) {
      stream.write(`chunk ${i}`)
      await stream.flushed()
    }
    expect(client.closeInfo).toMatchObject({ code: CloseCodes.InternalError, byPeer: false })
    await until(() => server()?.isOpen === false, 2000)
    expect(server()!.closeInfo).toMatchObject({ code: CloseCodes.InternalError, byPeer: true })
    const ours = sent.filter(({ from }) => from === 'client').map(({ packet }) => packet)
    expect(ours.map((packet) => packet.sequence)).toEqual([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n])
    expect(connectionClose(ours.at(-1)!.frames)).toMatchObject({ errorCode: CloseCodes.InternalError })
  })

  it("a peer's packet with sequence 2^31 (its 2^31st) closes the connection (it was answered as any other)", () => {
    const peer = rawPeer()
    peer.send(hello)
    const connection = peer.connection()!
    const reply = peer.send([data(1, 0, Buffer.from('x'))], 2n ** 31n)
    expect(connection.closeInfo).toMatchObject({ code: CloseCodes.InternalError, byPeer: false })
    expect(reply.type).toBe('F99')
    expect(connectionClose(reply.frames)).toMatchObject({ errorCode: CloseCodes.InternalError })
  })
})

/** Counts of a blocked side's events and of what its peer heard, for one direction. */
interface Blocking {
  blocked: number[]
  heard: bigint[]
}
const blocking = (): Blocking => ({ blocked: [], heard: [] })

describe('DataBlocked frames (RFC 29 §4.4.4, §5.3.4, §5.3.13)', () => {
  it('bytes that wait on a stream max offset are told to the peer (StreamDataBlocked: its remoteDataBlocked never fired), once per limit, both ways', async () => {
    const payload = Buffer.alloc(40_000, 1)
    const [up, down] = [blocking(), blocking()]
    let serverGot = 0
    const { client, listener } = pair()
    listener.on('connection', (connection) =>
      connection.on('stream', (stream) => {
        stream.on('data', (chunk) => (serverGot += chunk.length))
        stream.on('remoteDataBlocked', (state) => up.heard.push(state.maxOffset))
        stream.on('dataBlocked', (state) => down.blocked.push(state.remoteMaxOffset))
        stream.write(payload)
      }),
    )
    const stream = client.createStream()
    let clientGot = 0
    stream.on('data', (chunk) => (clientGot += chunk.length))
    stream.on('dataBlocked', (state) => up.blocked.push(state.remoteMaxOffset))
    stream.on('remoteDataBlocked', (state) => down.heard.push(state.maxOffset))
    stream.write(payload)
    await client.open()
    await until(() => serverGot === payload.length && clientGot === payload.length, 5000)
    await sleep(50)
    for (const direction of [up, down]) {
      // 40,000 bytes through windows of 16,384: blocked at 16,384 and again at 32,768.
      expect(direction.blocked.length).toBeGreaterThanOrEqual(1)
      expect(new Set(direction.blocked).size).toBe(direction.blocked.length)
      expect(direction.heard).toEqual(direction.blocked.map(() => BigInt(payload.length)))
    }
    client.destroy()
  })

  it('bytes that wait on the connection max data are told to the peer (ConnectionDataBlocked: never sent), once per limit, both ways', async () => {
    for (const sender of ['client', 'server'] as const) {
      // Five streams of 16,384 bytes each: within each stream's limit, past the 65,534 bytes a
      // sender assumes the connection takes (and the 65,536 a fresh endpoint advertises).
      const payload = Buffer.alloc(16_384, 2)
      const direction = blocking()
      let got = 0
      const { client, listener, server } = pair()
      listener.on('connection', (connection) => connection.on('stream', (stream) => stream.on('data', (chunk) => (got += chunk.length))))
      client.on('stream', (stream) => stream.on('data', (chunk) => (got += chunk.length)))
      await client.open()
      await until(() => server() !== undefined, 2000)
      const [from, to] = sender === 'client' ? [client, server()!] : [server()!, client]
      const wanted: number[] = []
      from.on('dataBlocked', (state) => {
        direction.blocked.push(state.remoteMaxOffset)
        wanted.push(state.writeOffset)
      })
      to.on('remoteDataBlocked', (maxOffset) => direction.heard.push(maxOffset))
      for (let i = 0; i < 5; i++) from.createStream().write(payload)
      await until(() => got === 5 * payload.length, 5000)
      await sleep(50)
      expect(direction.blocked.length, sender).toBeGreaterThanOrEqual(1)
      expect(new Set(direction.blocked).size, sender).toBe(direction.blocked.length)
      expect(wanted, sender).toEqual(direction.blocked.map(() => 5 * payload.length))
      expect(direction.heard, sender).toEqual(direction.blocked.map(() => BigInt(5 * payload.length)))
      client.destroy()
    }
  })
})

describe('receipts (RFC 39)', () => {
  it('the StreamReceipt frames a receiver sends are on the stream, the latest as `receipt` and each as a `receipt` event (they were decoded and dropped)', async () => {
    const [receiptSecret, receiptNonce, sharedSecret] = [randomBytes(32), randomBytes(16), randomBytes(32)]
    const keys = deriveKeys(sharedSecret)
    const issued: Buffer[] = []
    let received = 0n
    // A receiver that takes 10 at a time and answers each payment with a receipt for its total
    // (made by ilp-protocol-stream's RFC 39 code, as its servers do).
    const receiver = async (bytes: Buffer): Promise<Buffer> => {
      const prepare = deserializePrepare(bytes)!
      const packet = readPrepare(keys, bytes)
      received += prepare.amount
      const frames: Frame[] = [
        { type: 'ConnectionAssetDetails', sourceAssetCode: ASSET.code, sourceAssetScale: ASSET.scale },
        { type: 'StreamMaxMoney', streamId: 1n, receiveMax: received + 10n, totalReceived: received },
      ]
      if (prepare.amount > 0n) {
        const receipt = theirReceipts.createReceipt({ nonce: receiptNonce, streamId: '1', totalReceived: received.toString(), secret: receiptSecret })
        issued.push(receipt)
        frames.push({ type: 'StreamReceipt', streamId: 1n, receipt })
      }
      const reply = Buffer.from(encryptPacket(keys.encryptionKey, { ilpPacketType: IlpPacketTypes.Fulfill, sequence: packet.sequence, prepareAmount: prepare.amount, frames }))
      return serializeFulfill(Buffer.from(fulfillmentFor(keys.fulfillmentKey, prepare.data)), reply)
    }
    const client = createConnection({ plugin: { sendData: receiver }, sourceAccount: 'test.rfc.client', asset: ASSET, destinationAccount: 'test.rfc.receiver', sharedSecret })
    const stream = client.createStream()
    const heard: Buffer[] = []
    stream.on('receipt', (receipt) => heard.push(receipt))
    expect(stream.receipt).toBeUndefined()
    stream.setSendMax(30n)
    await client.open()
    await until(() => stream.totalSent === 30n, 2000)
    expect(issued).toHaveLength(3)
    expect(heard).toEqual(issued)
    expect(stream.receipt).toEqual(issued[2])
    expect(theirReceipts.verifyReceipt(stream.receipt!, receiptSecret).totalReceived.toString()).toBe('30')
    client.destroy()
  })
})

describe('streams the listener side opens (RFC 29 §3.3: even ids)', () => {
  it('a stream the server opens towards the client carries money and data both ways', async () => {
    const { client, server } = pair()
    const opened: MoneyStream[] = []
    let atClient = ''
    client.on('stream', (stream) => {
      opened.push(stream)
      stream.setReceiveMax(50n)
      stream.setSendMax(20n)
      stream.on('data', (chunk) => (atClient += chunk.toString()))
      stream.write('from the client')
    })
    await client.open()
    await until(() => server() !== undefined, 2000)
    const stream = server()!.createStream()
    const second = server()!.createStream()
    let atServer = ''
    stream.on('data', (chunk) => (atServer += chunk.toString()))
    stream.setSendMax(50n)
    stream.setReceiveMax(20n)
    stream.write('from the server')
    await until(() => opened[0]?.totalReceived === 50n && stream.totalReceived === 20n && atClient.length > 0 && atServer.length > 0, 5000)
    expect([stream.id, second.id]).toEqual([2, 4])
    await until(() => opened.length === 2, 2000)
    expect(opened.map((s) => s.id)).toEqual([2, 4])
    expect(stream.totalSent).toBe(50n)
    expect(opened[0]!.totalSent).toBe(20n)
    expect(atClient).toBe('from the server')
    expect(atServer).toBe('from the client')
    expect(client.totalReceived).toBe(50n)
    expect(server()!.totalReceived).toBe(20n)
    client.destroy()
  })
})
