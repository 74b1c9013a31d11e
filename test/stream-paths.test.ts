import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { faultyPlugin, startTestnet, type FaultyPlugin, type Testnet } from '@cogpay/testnet'
import { formatRate, type MoneyStream } from '@cogpay/stream'
import { ourClient, ourListener, side, theirStream, type BtpPluginLike, type Side } from './support/stream-peers.ts'
import { sleep, until } from './support/wait.ts'

// Issue 10: @cogpay/stream on paths that are not one-to-one: across assets with a configured rate
// and a spread (the rate learned by probing, a minimum rate enforced, a rate that worsens
// mid-payment), a connector's maximum packet amount (F08), and temporary and lost packets.

const sides: Side[] = []
const track = (s: Side) => (sides.push(s), s)
afterAll(async () => {
  for (const s of sides) await s.plugin.disconnect()
})

type TheirConnection = import('ilp-protocol-stream').Connection

describe('across assets: XRP (scale 9) listener, USD (scale 6) client, 1 XRP = 2.5 USD, spread 1 %', () => {
  let testnet: Testnet
  beforeAll(async () => {
    testnet = await startTestnet({ second: { assetCode: 'USD', assetScale: 6, rate: 2.5, spread: 0.01 } })
  })
  afterAll(() => testnet.close())
  // One USD unit (1e-6 USD) buys 1e-6 / 2.5 XRP = 400 XRP units (1e-9), less 1 %: 396.
  const PER_UNIT = 396n

  async function pair(onStream: (stream: MoneyStream) => void, client: Parameters<typeof ourClient>[3] = {}) {
    const xrp = track(await side(testnet.uri()))
    const usd = track(await side(testnet.secondUri()))
    const listener = ourListener(xrp)
    listener.on('connection', (connection) => connection.on('stream', onStream))
    const { destinationAccount, sharedSecret } = listener.generateCredentials()
    return ourClient(usd, destinationAccount, sharedSecret, client)
  }

  it('learns the rate by probing and pays the asked XRP in USD, the cap in USD', async () => {
    let received = 0n
    const client = await pair((stream) => {
      stream.setReceiveMax(99_000n)
      stream.on('money', (amount) => (received += amount))
    })
    const stream = client.createStream()
    stream.setSendMax(1_000n)
    await client.open()
    await until(() => stream.totalSent > 0n && stream.inFlight === 0n && received >= 99_000n, 10_000)
    await sleep(100)
    expect(formatRate(client.exchangeRate!)).toBe('396')
    // 99,000 / 396 = 250 USD units exactly; the receiver's 1 % slack absorbs any rounding up.
    expect(stream.totalSent).toBe(250n)
    expect(received).toBe(250n * PER_UNIT)
    client.destroy()
  })

  it('never passes its cap in USD, whatever the XRP side asks', async () => {
    let received = 0n
    const client = await pair((stream) => {
      stream.setReceiveMax(10_000_000n)
      stream.on('money', (amount) => (received += amount))
    })
    const stream = client.createStream()
    stream.setSendMax(100n)
    const reached = new Promise((resolve) => stream.once('sendMaxReached', resolve))
    await client.open()
    await reached
    await sleep(100)
    expect(stream.totalSent).toBe(100n)
    expect(received).toBe(100n * PER_UNIT)
    client.destroy()
  })

  it('refuses to send below a minimum rate the caller set: nothing leaves, and it says why', async () => {
    let received = 0n
    const client = await pair(
      (stream) => {
        stream.setReceiveMax(99_000n)
        stream.on('money', (amount) => (received += amount))
      },
      { minExchangeRate: '400' },
    )
    const stream = client.createStream()
    const failed = new Promise<string>((resolve) => stream.once('moneyError', resolve))
    stream.setSendMax(1_000n)
    await client.open()
    expect(await failed).toMatch(/exchange rate 396 is below the minimum 400/)
    await sleep(100)
    expect(stream.totalSent).toBe(0n)
    expect(received).toBe(0n)
    client.destroy()
  })

  it('stops when the rate worsens mid-payment past its bound: clear error, spend under the cap', async () => {
    let received = 0n
    let serverStream: MoneyStream | undefined
    const client = await pair((stream) => {
      serverStream = stream
      // Metered: ask 10 USD units' worth at a time.
      stream.setReceiveMax(3_960n)
      stream.on('money', (amount) => {
        received += amount
        if (received >= stream.receiveMax) stream.setReceiveMax(stream.receiveMax + 3_960n)
      })
    })
    const stream = client.createStream()
    const failed = new Promise<string>((resolve) => stream.once('moneyError', resolve))
    stream.setSendMax(10_000n)
    await client.open()
    await until(() => stream.totalSent >= 50n, 10_000)
    // 1 XRP = 3 USD now: a USD unit buys 330 XRP units, below the 396 × 0.99 = 392.04 bound.
    testnet.setRate(3)
    const message = await failed
    expect(message).toMatch(/exchange rate fell to 330, below the minimum 392\.04/)
    const sentAtFailure = stream.totalSent
    await sleep(200)
    expect(stream.totalSent).toBe(sentAtFailure)
    expect(stream.totalSent).toBeLessThanOrEqual(10_000n)
    // Nothing below the bound was accepted: every unit that arrived came at 396.
    expect(serverStream!.totalReceived).toBe(stream.totalSent * PER_UNIT)
    testnet.setRate(2.5)
    client.destroy()
  })

  it('interop: ilp-protocol-stream pays our XRP listener from USD (it probes, we answer)', async () => {
    const xrp = track(await side(testnet.uri()))
    const usd = track(await side(testnet.secondUri()))
    const listener = ourListener(xrp)
    let received = 0n
    listener.on('connection', (connection) =>
      connection.on('stream', (stream) => {
        stream.setReceiveMax(39_600n)
        stream.on('money', (amount) => (received += amount))
      }),
    )
    const { destinationAccount, sharedSecret } = listener.generateCredentials()
    const connection: TheirConnection = await theirStream.createConnection({ plugin: usd.plugin as never, destinationAccount, sharedSecret })
    connection.on('error', () => {})
    const stream = connection.createStream()
    stream.on('error', () => {})
    stream.setSendMax(1000)
    await until(() => received >= 39_600n, 10_000)
    await sleep(100)
    expect(BigInt(stream.totalSent)).toBeLessThanOrEqual(101n)
    await connection.destroy().catch(() => {})
  })

  it('interop: we pay an ilp-protocol-stream server in XRP from USD', async () => {
    const xrp = track(await side(testnet.uri()))
    const usd = track(await side(testnet.secondUri()))
    const server = await theirStream.createServer({ plugin: xrp.plugin as never })
    let received = 0n
    server.on('connection', (connection: TheirConnection) => {
      connection.on('error', () => {})
      connection.on('stream', (stream) => {
        stream.on('error', () => {})
        stream.setReceiveMax(39_600)
        stream.on('money', (amount: string) => (received += BigInt(amount)))
      })
    })
    const { destinationAccount, sharedSecret } = server.generateAddressAndSecret()
    const client = ourClient(usd, destinationAccount, sharedSecret)
    const stream = client.createStream()
    stream.setSendMax(1000n)
    await client.open()
    await until(() => received >= 39_600n && stream.inFlight === 0n, 10_000)
    expect(stream.totalSent).toBe(100n)
    client.destroy()
  })
})

describe('a connector with a maximum packet amount of 1,000 (F08)', () => {
  let testnet: Testnet
  beforeAll(async () => {
    testnet = await startTestnet({ maxPacketAmount: 1_000n })
  })
  afterAll(() => testnet.close())

  it('learns the maximum from the F08 and pays 25,000 in packets that fit', async () => {
    const a = track(await side(testnet.uri()))
    const b = track(await side(testnet.uri()))
    const listener = ourListener(b)
    let packets = 0
    listener.on('connection', (connection) =>
      connection.on('stream', (stream) => {
        stream.setReceiveMax(25_000n)
        stream.on('money', () => packets++)
      }),
    )
    const { destinationAccount, sharedSecret } = listener.generateCredentials()
    const client = ourClient(a, destinationAccount, sharedSecret)
    const stream = client.createStream()
    stream.setSendMax(25_000n)
    await client.open()
    await until(() => stream.totalSent === 25_000n, 10_000)
    expect(client.maxPacketAmount).toBe(1_000n)
    expect(packets).toBe(25)
    client.destroy()
  })
})

describe('temporary and lost packets (testnet faultyPlugin)', () => {
  let testnet: Testnet
  beforeAll(async () => {
    testnet = await startTestnet()
  })
  afterAll(() => testnet.close())

  async function faulty(faults: Parameters<typeof faultyPlugin>[1]) {
    let wrapped: FaultyPlugin | undefined
    const a = track(await side(testnet.uri(), (plugin) => (wrapped = faultyPlugin(plugin as never, faults) as never) as unknown as BtpPluginLike))
    const b = track(await side(testnet.uri()))
    const listener = ourListener(b)
    let received = 0n
    listener.on('connection', (connection) =>
      connection.on('stream', (stream) => {
        stream.setReceiveMax(10_000n)
        stream.on('money', (amount) => (received += amount))
      }),
    )
    const { destinationAccount, sharedSecret } = listener.generateCredentials()
    const client = ourClient(a, destinationAccount, sharedSecret, { packetTimeoutMs: 5000 })
    return { client, received: () => received, plugin: wrapped! }
  }

  it('retries T04s with backoff and gets everything through', async () => {
    const { client, received } = await faulty({ seed: 7, faults: { rejectT04: 0.3, packets: 'money', direction: 'outgoing' } })
    await client.open()
    for (let i = 0; i < 20; i++) {
      const stream = client.createStream()
      stream.setSendMax(100n)
      await until(() => stream.totalSent === 100n, 10_000)
      stream.end()
    }
    expect(received()).toBe(2000n)
    client.destroy()
  })

  it('counts a payment whose Fulfill was lost as in doubt, against sendMax: never past the cap', async () => {
    const { client, received, plugin } = await faulty({
      seed: 3,
      responseTimeoutMs: 1000,
      faults: { dropFulfill: { every: 2, times: 1 }, packets: 'money', direction: 'outgoing' },
    })
    await client.open()
    const stream = client.createStream()
    stream.setSendMax(300n)
    // Asked for 100 at a time: the second packet's Fulfill is lost.
    await until(() => received() > 0n, 5000)
    await sleep(2500)
    expect(stream.totalSent + stream.inDoubt).toBeLessThanOrEqual(300n)
    expect(received()).toBeLessThanOrEqual(300n)
    expect(received()).toBe(stream.totalSent + stream.inDoubt)
    expect(plugin.stats.outgoing.inDoubt).toBe(stream.inDoubt)
    client.destroy()
  })
})
