import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestnet, type Testnet } from '@cogpay/testnet'
import type { MoneyStream } from '@cogpay/stream'
import { ourClient, ourListener, side, theirStream, type Side } from './support/stream-peers.ts'
import { sleep, until } from './support/wait.ts'

// Issue 10, "Interop is the contract": @cogpay/stream against ilp-protocol-stream 2.7.2-alpha.3
// in both roles, over the real hub. Their side never knows ours is not theirs: it probes the
// rate, opens streams, pays and writes as it does with itself.

type TheirConnection = import('ilp-protocol-stream').Connection
type TheirStream = import('ilp-protocol-stream').DataAndMoneyStream

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

describe('our client, their server (ilp-protocol-stream createServer)', () => {
  async function theirServer(onStream: (stream: TheirStream, connection: TheirConnection) => void) {
    const b = await newSide()
    const server = await theirStream.createServer({ plugin: b.plugin as never })
    server.on('connection', (connection: TheirConnection) => {
      connection.on('error', () => {})
      connection.on('stream', (stream: TheirStream) => {
        stream.on('error', () => {})
        onStream(stream, connection)
      })
    })
    const { destinationAccount, sharedSecret } = server.generateAddressAndSecret()
    const a = await newSide()
    return { server, client: ourClient(a, destinationAccount, sharedSecret) }
  }

  it('pays it up to its receive max and exchanges data', async () => {
    let received = 0n
    let text = ''
    const { server, client } = await theirServer((stream) => {
      stream.setReceiveMax(1000)
      stream.on('money', (amount: string) => (received += BigInt(amount)))
      stream.on('data', (chunk: Buffer) => {
        text += chunk.toString()
        stream.write('pong\n')
      })
    })
    const stream = client.createStream()
    let answer = ''
    stream.on('data', (chunk) => (answer += chunk.toString()))
    stream.write('ping\n')
    stream.setSendMax(5000n)
    await client.open()
    await until(() => stream.totalSent === 1000n && answer === 'pong\n', 5000)
    await sleep(50)
    expect(received).toBe(1000n)
    expect(text).toBe('ping\n')
    client.destroy()
    await Promise.race([server.close().catch(() => {}), sleep(300)])
  })

  it('is paid by it on our own stream (money the other way: it probes the rate first)', async () => {
    const { server, client } = await theirServer((stream) => stream.setSendMax(250))
    const stream = client.createStream()
    stream.setReceiveMax(250n)
    stream.write('hello\n')
    await client.open()
    await until(() => stream.totalReceived === 250n, 10_000)
    client.destroy()
    await Promise.race([server.close().catch(() => {}), sleep(300)])
  })

  it('runs 200 streams in sequence on one connection: its ids come back as we close ours', async () => {
    let paid = 0n
    const { server, client } = await theirServer((stream) => {
      stream.setReceiveMax(10)
      stream.on('money', (amount: string) => (paid += BigInt(amount)))
    })
    await client.open()
    for (let i = 0; i < 200; i++) {
      await until(() => client.canCreateStream, 5000)
      const stream = client.createStream()
      stream.setSendMax(10n)
      await until(() => stream.totalSent === 10n, 5000)
      stream.end()
      await until(() => !stream.isOpen, 5000)
    }
    await sleep(50)
    expect(paid).toBe(2000n)
    client.destroy()
    await Promise.race([server.close().catch(() => {}), sleep(300)])
  })
})

describe('their client (ilp-protocol-stream createConnection), our listener', () => {
  async function theirClient(onStream: (stream: MoneyStream) => void) {
    const b = await newSide()
    const listener = ourListener(b)
    listener.on('connection', (connection) => connection.on('stream', onStream))
    const { destinationAccount, sharedSecret } = listener.generateCredentials()
    const a = await newSide()
    const connection: TheirConnection = await theirStream.createConnection({
      plugin: a.plugin as never,
      destinationAccount,
      sharedSecret,
    })
    connection.on('error', () => {})
    return { listener, connection }
  }

  it('pays us up to our receive max and exchanges data', async () => {
    let text = ''
    let ours: MoneyStream | undefined
    const { connection } = await theirClient((stream) => {
      ours = stream
      stream.setReceiveMax(700n)
      stream.on('data', (chunk) => {
        text += chunk.toString()
        stream.write('pong\n')
      })
    })
    const stream = connection.createStream()
    stream.on('error', () => {})
    let answer = ''
    stream.on('data', (chunk: Buffer) => (answer += chunk.toString()))
    stream.write('ping\n')
    stream.setSendMax(5000)
    await until(() => ours?.totalReceived === 700n && answer === 'pong\n' && stream.totalSent === '700', 10_000)
    expect(text).toBe('ping\n')
    await sleep(50)
    expect(ours?.totalReceived).toBe(700n)
    await connection.destroy().catch(() => {})
  })

  it('is paid by us on its stream (a refund the other way)', async () => {
    const { connection } = await theirClient((stream) => stream.setSendMax(300n))
    const stream = connection.createStream()
    stream.on('error', () => {})
    stream.setReceiveMax(300)
    stream.write('hello\n')
    await until(() => stream.totalReceived === '300', 10_000)
    await connection.destroy().catch(() => {})
  })

  it('runs 100 streams in sequence, closed by either side: our listener hands every id back', async () => {
    let opened = 0
    const { connection } = await theirClient((stream) => {
      opened++
      stream.setReceiveMax(10n)
      stream.on('money', () => {
        if (stream.totalReceived === 10n && stream.id % 4 === 1) stream.end()
      })
    })
    for (let i = 0; i < 100; i++) {
      const stream = connection.createStream()
      stream.on('error', () => {})
      let closed = false
      stream.once('close', () => (closed = true))
      stream.setSendMax(10)
      await until(() => stream.totalSent === '10', 5000)
      if (stream.id % 4 !== 1) stream.end()
      await until(() => closed, 5000).catch((err) => {
        throw new Error(`stream ${stream.id} (${i}) did not close: ${err}`)
      })
    }
    expect(opened).toBe(100)
    await connection.destroy().catch(() => {})
  })
})
