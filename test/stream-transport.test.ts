import { Buffer } from 'node:buffer'
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestnet, type Testnet } from '@cogpay/testnet'
import { CloseCodes, NO_SUCH_CONNECTION, StreamIdsExhaustedError, type Connection, type MoneyStream, type StreamListener } from '@cogpay/stream'
// The ILP packet helpers of the transport itself, to hand-build what a stranger would send.
import { deserializeReply, serializePrepare } from '../packages/stream/src/ilp.ts'
import { ourClient, ourListener, side, type BtpPluginLike, type Side } from './support/stream-peers.ts'
import { sleep, until } from './support/wait.ts'

// Issue 10: @cogpay/stream's connections in both roles, over the real hub: money and data both
// ways, many streams, ids that come back whichever side closes, flow control and its events.

let testnet: Testnet
const sides: Side[] = []
const newSide = async () => {
  const s = await side(testnet.uri())
  sides.push(s)
  return s
}

beforeAll(async () => {
  testnet = await startTestnet()
})
afterAll(async () => {
  for (const s of sides) await s.plugin.disconnect()
  await testnet.close()
})

/** A listener and a client connected to it; `onStream` sets up each stream the client opens. */
async function pair(
  onStream: (stream: MoneyStream, connection: Connection) => void,
  options: { listener?: Parameters<typeof ourListener>[1]; client?: Parameters<typeof ourClient>[3] } = {},
): Promise<{ listener: StreamListener; client: Connection; server: () => Connection | undefined }> {
  const [a, b] = [await newSide(), await newSide()]
  const listener = ourListener(b, options.listener)
  let server: Connection | undefined
  listener.on('connection', (connection) => {
    server = connection
    connection.on('stream', (stream) => onStream(stream, connection))
  })
  const { destinationAccount, sharedSecret } = listener.generateCredentials()
  const client = ourClient(a, destinationAccount, sharedSecret, options.client)
  return { listener, client, server: () => server }
}

const sum = (values: bigint[]) => values.reduce((x, y) => x + y, 0n)

describe('@cogpay/stream connections', () => {
  it('pays and exchanges data on one stream, and the first packet carries the stream', async () => {
    const received: bigint[] = []
    let serverText = ''
    const { client } = await pair((stream) => {
      stream.setReceiveMax(1000n)
      stream.on('money', (amount) => received.push(amount))
      stream.on('data', (chunk) => {
        serverText += chunk.toString()
        stream.write('pong\n')
      })
    })
    const stream = client.createStream()
    let clientText = ''
    stream.on('data', (chunk) => (clientText += chunk.toString()))
    stream.write('ping\n')
    stream.setSendMax(1500n)
    await client.open()
    await until(() => stream.totalSent === 1000n && clientText === 'pong\n', 5000)
    expect(serverText).toBe('ping\n')
    expect(sum(received)).toBe(1000n)
    expect(stream.remoteReceived).toBe(1000n)
    // The server asked for 1000 of the 1500 the client would send: it is waiting on more asks.
    expect(stream.inFlight).toBe(0n)
    client.destroy()
  })

  it('never sends past sendMax, and says so when the peer asks for more (sendMaxReached)', async () => {
    let serverStream: MoneyStream | undefined
    const { client } = await pair((stream) => {
      serverStream = stream
      stream.setReceiveMax(1000n)
    })
    const stream = client.createStream()
    stream.setSendMax(400n)
    const reached = new Promise<{ remoteReceiveMax: bigint }>((resolve) => stream.once('sendMaxReached', resolve))
    await client.open()
    const state = await reached
    expect(state.remoteReceiveMax).toBe(1000n)
    await sleep(100)
    expect(stream.totalSent).toBe(400n)
    expect(serverStream!.totalReceived).toBe(400n)
    // Raised, it goes on to what the peer asks, and no further.
    stream.setSendMax(5000n)
    await until(() => stream.totalSent === 1000n, 5000)
    await sleep(100)
    expect(serverStream!.totalReceived).toBe(1000n)
    client.destroy()
  })

  it('reports MoneyBlocked on both sides when the receiver allows nothing yet', async () => {
    let serverStream: MoneyStream | undefined
    let blockedResolve!: (value: { sendMax: bigint }) => void
    const remoteBlocked = new Promise<{ sendMax: bigint }>((resolve) => (blockedResolve = resolve))
    const { client } = await pair((stream) => {
      serverStream = stream
      stream.on('remoteMoneyBlocked', (state) => blockedResolve(state))
    })
    const stream = client.createStream()
    const blocked = new Promise((resolve) => stream.once('moneyBlocked', resolve))
    stream.setSendMax(300n)
    await client.open()
    await blocked
    expect((await remoteBlocked).sendMax).toBe(300n)
    expect(stream.totalSent).toBe(0n)
    serverStream!.setReceiveMax(300n)
    await until(() => stream.totalSent === 300n, 5000)
    client.destroy()
  })

  it('lowers a receive max while money flows: what was in flight past it is turned away', async () => {
    let serverStream: MoneyStream | undefined
    const { client } = await pair((stream) => {
      serverStream = stream
      stream.setReceiveMax(1_000_000n)
      stream.on('money', () => {
        if (stream.totalReceived >= 50n) stream.setReceiveMax(stream.totalReceived)
      })
    }, { listener: {}, client: {} })
    // Small packets through a small max packet amount is not needed: many streams race instead.
    const stream = client.createStream()
    stream.setSendMax(1_000_000n)
    await client.open()
    await until(() => serverStream !== undefined && serverStream.totalReceived > 0n, 5000)
    await sleep(200)
    expect(stream.totalSent).toBe(serverStream!.totalReceived)
    expect(stream.totalSent).toBeLessThanOrEqual(1_000_000n)
    client.destroy()
  })

  it('sends money both ways on one stream (a refund from the receiver)', async () => {
    let serverStream: MoneyStream | undefined
    const { client } = await pair((stream) => {
      serverStream = stream
      stream.setReceiveMax(100n)
      stream.on('money', () => {
        if (stream.totalReceived === 100n) stream.setSendMax(30n)
      })
    })
    const stream = client.createStream()
    stream.setSendMax(100n)
    stream.setReceiveMax(30n)
    await client.open()
    // The receiver counts it as the Prepare is fulfilled; the sender once the Fulfill is back.
    await until(() => stream.totalReceived === 30n && serverStream?.totalSent === 30n, 5000)
    expect(stream.totalSent).toBe(100n)
    client.destroy()
  })

  it('runs 300 streams through a limit of 4 open at once: ids come back whichever side closes first', async () => {
    let opened = 0
    const { client } = await pair(
      (stream) => {
        opened++
        stream.setReceiveMax(10n)
        // Every other stream is closed by the listener's side once paid.
        stream.on('money', () => {
          if (stream.totalReceived === 10n && stream.id % 4 === 1) stream.end()
        })
      },
      { listener: { maxRemoteStreams: 4 } },
    )
    await client.open()
    let paid = 0n
    for (let i = 0; i < 300; i++) {
      const stream = client.createStream()
      stream.setSendMax(10n)
      await until(() => stream.totalSent === 10n, 5000)
      paid += stream.totalSent
      if (stream.isOpen && stream.id % 4 !== 1) stream.end()
      await until(() => !stream.isOpen, 5000)
      // The peer's raise may still be on its way: wait for room rather than fail.
      await until(() => client.canCreateStream, 5000)
    }
    expect(opened).toBe(300)
    expect(paid).toBe(3000n)
    expect(client.streamCount).toBe(0)
    client.destroy()
  })

  it('refuses a fifth stream past a limit of 4 (StreamIdsExhaustedError), not the connection', async () => {
    const { client } = await pair((stream) => stream.setReceiveMax(10n), { listener: { maxRemoteStreams: 4 } })
    await client.open()
    await sleep(50)
    const streams = [1, 2, 3, 4].map(() => client.createStream())
    expect(() => client.createStream()).toThrow(StreamIdsExhaustedError)
    for (const stream of streams) stream.setSendMax(10n)
    await until(() => streams.every((stream) => stream.totalSent === 10n), 5000)
    streams[0]!.end()
    await until(() => client.canCreateStream, 5000)
    const fifth = client.createStream()
    fifth.setSendMax(10n)
    await until(() => fifth.totalSent === 10n, 5000)
    client.destroy()
  })

  it('pays 50 concurrent streams on one connection with several packets in flight', async () => {
    const { client } = await pair((stream) => stream.setReceiveMax(100n))
    await client.open()
    let peak = 0
    const watch = setInterval(() => (peak = Math.max(peak, client.packetsInFlight)), 0)
    // Opened a turn apart, so each goes in a packet of its own while the others are in flight.
    const streams: MoneyStream[] = []
    for (let i = 0; i < 50; i++) {
      const stream = client.createStream()
      stream.setSendMax(100n)
      streams.push(stream)
      await new Promise((resolve) => setImmediate(resolve))
      peak = Math.max(peak, client.packetsInFlight)
    }
    await until(() => streams.every((stream) => stream.totalSent === 100n), 10_000)
    clearInterval(watch)
    expect(client.totalSent).toBe(5000n)
    expect(peak).toBeGreaterThanOrEqual(2)
    client.destroy()
  })

  it('delivers 200 KiB each way in order through the data windows', async () => {
    const big = randomBytes(200 * 1024)
    let echoed = 0
    const { client } = await pair((stream) => {
      stream.on('data', (chunk) => {
        echoed += chunk.length
        stream.write(chunk)
      })
    })
    const stream = client.createStream()
    const chunks: Buffer[] = []
    stream.on('data', (chunk) => chunks.push(chunk))
    for (let at = 0; at < big.length; at += 10_000) stream.write(big.subarray(at, at + 10_000))
    await client.open()
    await until(() => Buffer.concat(chunks).length === big.length, 20_000)
    expect(echoed).toBe(big.length)
    expect(Buffer.concat(chunks).equals(big)).toBe(true)
    await stream.flushed()
    expect(stream.writableLength).toBe(0)
    client.destroy()
  })

  it('closes with an error the peer reads, on a stream and on the connection', async () => {
    const closes: { code: number; message: string; byPeer: boolean }[] = []
    let serverConnection: Connection | undefined
    const { client } = await pair((stream, connection) => {
      serverConnection = connection
      stream.on('close', (info) => closes.push(info))
    })
    const stream = client.createStream()
    stream.write('x')
    await client.open()
    await until(() => serverConnection !== undefined, 5000)
    stream.destroy('no thanks')
    await until(() => closes.length === 1, 5000)
    expect(closes[0]).toEqual({ code: CloseCodes.ApplicationError, message: 'no thanks', byPeer: true })
    const closed = serverConnection!.whenClosed
    client.destroy('going away')
    const info = await closed
    expect(info).toEqual({ code: CloseCodes.ApplicationError, message: 'going away', byPeer: true })
  })

  it('closes an idle connection on both sides', async () => {
    let serverConnection: Connection | undefined
    const { client, server } = await pair(() => {}, { listener: { idleTimeoutMs: 300 }, client: { idleTimeoutMs: 300 } })
    await client.open()
    serverConnection = server()
    const info = await client.whenClosed
    expect(info.message).toMatch(/idle/)
    await until(() => serverConnection === undefined || !serverConnection.isOpen, 2000)
  })

  it('a receive max raised in answer to the money, after an await, rides in the Fulfill: no Prepare of its own (a metered step cost two packets, a round trip more)', async () => {
    let prepares = 0
    const counting = (plugin: BtpPluginLike): BtpPluginLike => {
      const send = plugin.sendData.bind(plugin)
      plugin.sendData = (data: Buffer) => {
        if (data[0] === 12) prepares++
        return send(data)
      }
      return plugin
    }
    const a = await newSide()
    const b = await side(testnet.uri(), counting)
    sides.push(b)
    const listener = ourListener(b)
    let steps = 0
    listener.on('connection', (connection) =>
      connection.on('stream', (stream) => {
        stream.holdAnswers = true
        stream.setReceiveMax(1n)
        // As a meter does: the next step is charged once this one is paid, after an await.
        stream.on('money', () => {
          void (async () => {
            await null
            await null
            if (++steps < 20) stream.setReceiveMax(stream.totalReceived + 1n)
          })()
        })
      }),
    )
    const { destinationAccount, sharedSecret } = listener.generateCredentials()
    const client = ourClient(a, destinationAccount, sharedSecret)
    const stream = client.createStream()
    stream.setSendMax(1000n)
    await client.open()
    await until(() => stream.totalSent === 20n, 5000)
    // The listener's side sent no Prepare for the 19 raises (a lazy close or two at most).
    expect(prepares).toBeLessThanOrEqual(2)
    client.destroy()
  })

  it("answers a packet of a connection it no longer has with a ConnectionClose, credits nothing and keeps no state (the client's packets were taken by a new connection that could never answer, and its requests waited out their timeouts)", async () => {
    const received: bigint[] = []
    const { listener, client, server } = await pair((stream) => {
      stream.setReceiveMax(10_000n)
      stream.on('money', (amount) => received.push(amount))
    })
    const stream = client.createStream()
    stream.setSendMax(100n)
    await client.open()
    await until(() => stream.totalSent === 100n, 5000)
    // The listener's end goes without a word (as when its close is lost on the way).
    server()!.drop('gone without a word')
    expect(listener.connectionCount).toBe(0)
    const started = performance.now()
    stream.setSendMax(200n)
    const info = await client.whenClosed
    expect(performance.now() - started).toBeLessThan(1000)
    expect(info).toEqual({ code: CloseCodes.ProtocolViolation, message: NO_SUCH_CONNECTION, byPeer: true })
    expect(sum(received)).toBe(100n)
    expect(stream.totalSent).toBe(100n)
    expect(listener.connectionCount).toBe(0)
  })

  it('turns garbage away with the right ILP code and keeps no state (F01, F02, F06)', async () => {
    const b = await newSide()
    const listener = ourListener(b)
    const reject = (bytes: Buffer) => bytes.readUInt8(0)
    expect(reject(listener.handleData(randomBytes(100)))).toBe(14)
    const { destinationAccount } = listener.generateCredentials()
    const rejectCode = (bytes: Buffer) => {
      const reply = deserializeReply(bytes)
      return reply?.type === 'reject' ? reply.code : reply?.type
    }
    const prepare = (destination: string, data: Buffer) =>
      serializePrepare({
        destination,
        amount: 10n,
        executionCondition: randomBytes(32),
        expiresAt: new Date(Date.now() + 5000),
        data,
      })
    expect(rejectCode(listener.handleData(randomBytes(100)))).toBe('F01')
    expect(rejectCode(listener.handleData(prepare(b.address, randomBytes(60))))).toBe('F02')
    expect(rejectCode(listener.handleData(prepare(destinationAccount, randomBytes(60))))).toBe('F06')
    expect(rejectCode(listener.handleData(prepare(`${b.address}.nope`, randomBytes(60))))).toBe('F06')
    expect(listener.connectionCount).toBe(0)
  })
})
