import { Buffer } from 'node:buffer'
import express from 'express'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { paidRoute } from '@cogpay/express'
import { createPayFetch, getPayment } from '@cogpay/fetch'
import { createPayer, createPaymentServer, type Payer, type PayerOptions, type PaymentServer } from '@cogpay/ilp'
import { faultyPlugin, startTestnet, type Testnet } from '@cogpay/testnet'
import { createRequire } from 'node:module'
import { IlpPacketTypes, MAX_U64, decodePacket, encodePacket, formatRate, type Frame, type MoneyStream, type StreamPacket } from '@cogpay/stream'
import { deserializePrepare, serializeReject } from '../packages/stream/src/ilp.ts'
import { listen } from './support/network.ts'
import { ourClient, ourListener, side, type BtpPluginLike, type Side } from './support/stream-peers.ts'
import { sleep, until } from './support/wait.ts'

// Edges of @cogpay/stream's money and flow control, found by a review of its rate handling, RFC 29
// rules and codec: a spread on one asset, a rate that falls and one that dips within the bound,
// probing a path that T04s large packets, a receiver with a small window, and the codec's edges.
// Each test named "defect:" failed while its defect was there; "pins:" tests are attacks that failed.

/** An Express app with one paid route, and how many requests it served. */
async function paidApp(receiver: PaymentServer, price: bigint) {
  const state = { served: 0 }
  const server = express()
  server.get('/paid', paidRoute(price, { receiver }), (_req, res) => {
    state.served++
    res.json({ paid: res.locals.payment.paid.toString() })
  })
  server.get('/paid-no-refund', paidRoute(price, { receiver, refund: 'never' }), (_req, res) => {
    state.served++
    res.json({ paid: res.locals.payment.paid.toString() })
  })
  return { app: await listen(server), state }
}

/** A request's outcome, served or not, with what the payer spent on it. */
async function outcomeOf(payFetch: ReturnType<typeof createPayFetch>, url: string) {
  return payFetch(url).then(
    async (response) => ({ status: response.status, code: undefined as string | undefined, spent: getPayment(response)!.spent, body: await response.text() }),
    (err: { serverCode?: string; spent?: bigint; message?: string }) => ({
      status: 402,
      code: err.serverCode,
      spent: err.spent ?? -1n,
      body: String(err.message),
    }),
  )
}

describe('same asset, a hub that takes a spread (every connector does): the last unit of a price', () => {
  // The payer assumes a rate of 1 on a same-asset path (no probe). With any spread, a packet of
  // k units arrives as floor(k x (1 - spread)): k - 1 for a small k. The last unit of a price then
  // goes as a 1-unit share whose minimum rounds to 0; today's "one receiver unit at the minimum
  // rate" enlargement (2 units at 0.99) is refused because at the rate assumed (1) it would
  // deliver 2 > the room of 1, so the share stays 1 unit, delivers 0, and after 3 such packets
  // fruitlessShares stops the stream's money: the request fails though the cap covers it easily.
  let testnet: Testnet
  let receiver: PaymentServer
  let app: Awaited<ReturnType<typeof listen>>
  let state: { served: number }
  const payers: Payer[] = []

  beforeAll(async () => {
    testnet = await startTestnet({ second: { assetCode: 'USD', assetScale: 6, spread: 0.005 } })
    receiver = createPaymentServer({ uplink: testnet.uri('server') })
    await receiver.uplink.connect()
    ;({ app, state } = await paidApp(receiver, 1_000n))
  })
  afterAll(async () => {
    await app?.close()
    await Promise.allSettled(payers.map((payer) => payer.close()))
    await receiver?.close()
    await testnet?.close()
  })

  it('defect: a price of 1,000 XRP units with a cap of 2,000, through a 0.5 % same-asset spread, is never served (the last unit never arrives)', async () => {
    const payer = createPayer({ uplink: testnet.uri('payer') })
    payers.push(payer)
    await payer.start()
    const payFetch = createPayFetch({ payer, maxSpend: 2_000n })
    const outcome = await outcomeOf(payFetch, `${app.url}/paid`)
    expect(outcome.spent).toBeLessThanOrEqual(2_000n)
    expect({ status: outcome.status, code: outcome.code, served: state.served }, `spent ${outcome.spent}: ${outcome.body}`).toEqual({
      status: 200,
      code: undefined,
      served: 1,
    })
  }, 15_000)
})

describe('a USD route paid from XRP at 2.5 less 1 %, at most 1,000,000 XRP units a packet', () => {
  // Today's enlargement gives a share whose minimum rounds to 0 one receiver unit at the minimum
  // rate, "when at the rate learned it stays within the room". least = ceil(1 / minRate); at the
  // rate learned that is floor(1 / (1 - slippage)) receiver units: 2 once the slippage is 50 % or
  // more (or a configured minExchangeRate is half the rate or less), which passes a room of 1.
  // So with a loose bound the last unit's share is never enlarged: a 0.4 % dip (far inside the
  // bound) makes it deliver 0 three times, and the request fails instead of being served.
  const PRICE = 99_000n
  let testnet: Testnet
  let receiver: PaymentServer
  let app: Awaited<ReturnType<typeof listen>>
  let state: { served: number }
  const payers: Payer[] = []
  const newPayer = async (options: PayerOptions = {}) => {
    const payer = createPayer({ uplink: testnet.uri('payer'), ...options })
    payers.push(payer)
    await payer.start()
    return payer
  }

  beforeAll(async () => {
    testnet = await startTestnet({
      assetCode: 'XRP',
      assetScale: 9,
      maxPacketAmount: 1_000_000n,
      second: { assetCode: 'USD', assetScale: 6, rate: 2.5, spread: 0.01 },
    })
    receiver = createPaymentServer({ uplink: testnet.secondUri('server') })
    await receiver.uplink.connect()
    ;({ app, state } = await paidApp(receiver, PRICE))
  })
  afterAll(async () => {
    await app?.close()
    await Promise.allSettled(payers.map((payer) => payer.close()))
    await receiver?.close()
    await testnet?.close()
  })

  it('defect: the payer\'s next request after a stop at the rate is paid at half the rate (1.25 for 2.5), far below any minimum: its connection kept the fallen rate and no minimum', async () => {
    const payer = await newPayer()
    const payFetch = createPayFetch({ payer, maxSpend: 90_000_000n })
    let phase = 0
    payer.on('spend', ({ spent }) => {
      if (phase === 0 && spent >= 5_000_000n) {
        phase = 1
        testnet.setRate(2) // 20 % down: the first request stops, as it should
      }
    })
    try {
      const first = await outcomeOf(payFetch, `${app.url}/paid-no-refund`)
      expect(first.code).toBe('COGPAY_EXCHANGE_RATE_TOO_LOW')
      const before = { spent: payer.spent, served: state.served }
      payer.on('spend', ({ spent }) => {
        if (phase === 1 && spent - before.spent >= 5_000_000n) {
          phase = 2
          testnet.setRate(1.25) // half the rate the payer learned first, 37.5 % below the one it fell to
        }
      })
      const second = await outcomeOf(payFetch, `${app.url}/paid-no-refund`)
      expect(
        { status: second.status, code: second.code },
        `second request: spent ${second.spent} XRP units (40,000,000 at 2.5), ${state.served - before.served} served: ${second.body.slice(0, 200)}`,
      ).toEqual({ status: 402, code: 'COGPAY_EXCHANGE_RATE_TOO_LOW' })
    } finally {
      testnet.setRate(2.5)
    }
  }, 20_000)

  for (const [name, options] of [
    ['slippage 0.5', { slippage: '0.5' }],
    ['minExchangeRate 0.001 (the rate is 0.002475)', { minExchangeRate: '0.001' }],
  ] as const) {
    it(`defect: with ${name}, a 0.4 % dip mid-payment (2.5 -> 2.49, well within the bound) fails the request at its last unit although the cap covers it`, async () => {
      const payer = await newPayer(options)
      const maxSpend = 41_000_000n // 40,160,000 or so at 2.49
      const payFetch = createPayFetch({ payer, maxSpend })
      const before = state.served
      let changed = false
      payer.on('spend', ({ spent }) => {
        if (!changed && spent >= 5_000_000n) {
          changed = true
          testnet.setRate(2.49)
        }
      })
      try {
        const outcome = await outcomeOf(payFetch, `${app.url}/paid`)
        expect(changed).toBe(true)
        expect(outcome.spent).toBeLessThanOrEqual(maxSpend)
        expect({ status: outcome.status, code: outcome.code, served: state.served - before }, `spent ${outcome.spent}: ${outcome.body}`).toEqual({
          status: 200,
          code: undefined,
          served: 1,
        })
      } finally {
        testnet.setRate(2.5)
      }
    }, 20_000)
  }
})

/**
 * A path whose liquidity ends at `limit` units a packet and says so as ilp-connector's balance
 * middleware does: T04 (Insufficient Liquidity) for a Prepare above it, no F08 (the hub itself
 * has no maximum packet amount). Wraps the sender's plugin, as the connector next to it would.
 */
function liquidityLimited(limit: bigint, log: bigint[]) {
  return (plugin: BtpPluginLike): BtpPluginLike =>
    new Proxy(plugin, {
      get(target, key, receiver) {
        if (key === 'sendData') {
          return async (data: Buffer) => {
            const prepare = deserializePrepare(data)
            if (prepare && !prepare.destination.startsWith('peer.')) {
              log.push(prepare.amount)
              if (prepare.amount > limit) return serializeReject('T04', 'test.hub', 'exceeded maximum balance')
            }
            return target.sendData(data)
          }
        }
        const value = Reflect.get(target, key, receiver) as unknown
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
      },
    })
}

describe('probing across assets whose scales are far apart: XRP (scale 9) pays USD in cents (scale 2), 1 XRP = 2.5 USD', () => {
  // A 1 XRP test packet (1e9 units) arrives as 250 cents: under today's PROBE_PRECISION of 1,000,
  // so the probe goes again "with the largest packet the path takes" whenever a larger test
  // packet was sent, whatever became of it. A 1,000 XRP test packet (1e12) that gets a T04 (a
  // path with less liquidity than that, and no F08: nothing shrinks #maxPacketAmount) makes
  // every round `continue`, at once, without the back-off a T04 asks for: 10 rounds of 4 packets
  // back to back, then 'could not learn the exchange rate'. Before today the 250 was taken.
  let testnet: Testnet
  const sides: Side[] = []
  beforeAll(async () => {
    testnet = await startTestnet({ second: { assetCode: 'USD', assetScale: 2, rate: 2.5 } })
  })
  afterAll(async () => {
    for (const s of sides) await s.plugin.disconnect().catch(() => {})
    await testnet?.close()
  })

  it('defect: a path that T04s packets above 100 XRP never carries money: the probe discards an answer of 250 cents 10 times in a row, with no back-off, and money stops', async () => {
    const sent: bigint[] = []
    const usd = await side(testnet.secondUri('usd'))
    const xrp = await side(testnet.uri('xrp'), liquidityLimited(100_000_000_000n, sent))
    sides.push(usd, xrp)
    let received = 0n
    const listener = ourListener(usd)
    listener.on('connection', (connection) =>
      connection.on('stream', (stream: MoneyStream) => {
        stream.setReceiveMax(1_000n) // 10 USD: 4 XRP
        stream.on('money', (amount) => (received += amount))
      }),
    )
    const { destinationAccount, sharedSecret } = listener.generateCredentials()
    const client = ourClient(xrp, destinationAccount, sharedSecret)
    let moneyError: string | undefined
    const stream = client.createStream()
    stream.on('moneyError', (message) => (moneyError = message))
    stream.setSendMax(5_000_000_000n)
    const started = Date.now()
    await client.open()
    await until(() => received >= 1_000n || moneyError !== undefined, 8_000).catch(() => {})
    const ms = Date.now() - started
    client.destroy()
    const tests = sent.filter((amount) => amount >= 1_000_000_000_000n).length
    expect({ received, moneyError }, `${sent.length} Prepares in ${ms} ms, ${tests} of them 1,000 XRP test packets answered T04`).toEqual({
      received: 1_000n,
      moneyError: undefined,
    })
  }, 15_000)
})

describe('our client (XRP) pays our listener (USD) at 2.5 less 1 %, at most 1,000,000 XRP units a packet', () => {
  // #failMoney forgets the rate (#rate and #minRate undefined, no minExchangeRate configured),
  // but the other Prepares in flight when the rate fell are still to be answered. Each F99 of
  // theirs goes through #answered's rate check, `if (this.#minRate && observed < minRate)`, which
  // #minRate undefined skips, and then `this.#rate = observed`: the connection now "knows" the
  // fallen rate with no minimum at all. The next stream sends without probing, and each later
  // F99 only lowers #rate again: money goes on at any rate, however far it falls.
  let testnet: Testnet
  const sides: Side[] = []
  beforeAll(async () => {
    testnet = await startTestnet({
      assetCode: 'XRP',
      assetScale: 9,
      maxPacketAmount: 1_000_000n,
      second: { assetCode: 'USD', assetScale: 6, rate: 2.5, spread: 0.01 },
    })
  })
  afterAll(async () => {
    for (const s of sides) await s.plugin.disconnect().catch(() => {})
    await testnet?.close()
  })

  it('defect: after a 20 % fall stopped one stream, the connection keeps the fallen rate with no minimum, and a later stream pays on while the rate halves', async () => {
    const usd = await side(testnet.secondUri('usd'))
    const xrp = await side(testnet.uri('xrp'))
    sides.push(usd, xrp)
    const listener = ourListener(usd)
    const arrived = new Map<number, bigint>()
    listener.on('connection', (connection) =>
      connection.on('stream', (stream: MoneyStream) => {
        stream.setReceiveMax(99_000n)
        stream.on('money', (amount) => arrived.set(stream.id, (arrived.get(stream.id) ?? 0n) + amount))
      }),
    )
    const { destinationAccount, sharedSecret } = listener.generateCredentials()
    const client = ourClient(xrp, destinationAccount, sharedSecret)
    try {
      const pay = (onSent: (sent: bigint) => void) => {
        const stream = client.createStream()
        const state = { stream, error: undefined as string | undefined }
        stream.on('moneyError', (message) => (state.error = message))
        stream.on('outgoingMoney', () => onSent(stream.totalSent))
        stream.setSendMax(200_000_000n)
        return state
      }
      // 1: the rate falls 20 % after 5,000,000 (past the 1 % slippage): money stops, as it should.
      const first = pay((sent) => sent >= 5_000_000n && testnet.setRate(2))
      await client.open()
      await until(() => first.error !== undefined, 5_000)
      await sleep(200) // the Prepares in flight are answered
      const after = { rate: client.exchangeRate && formatRate(client.exchangeRate), min: client.minExchangeRate && formatRate(client.minExchangeRate) }
      // 2: a later stream (the payer's next request), and the rate halves again from 2 to 1.25.
      const second = pay((sent) => sent >= 5_000_000n && testnet.setRate(1.25))
      await until(() => second.error !== undefined || second.stream.totalSent >= 70_000_000n, 5_000).catch(() => {})
      await sleep(200)
      expect(
        { stopped: second.error !== undefined, sentUnder: second.stream.totalSent < 20_000_000n },
        `after stream 1 stopped (${first.error}) the connection had rate ${after.rate} and minimum ${after.min}; stream 2 sent ${second.stream.totalSent}, ${arrived.get(second.stream.id) ?? 0n} USD units arrived (${
          second.error ?? 'no moneyError'
        })`,
      ).toEqual({ stopped: true, sentUnder: true })
    } finally {
      client.destroy()
      testnet.setRate(2.5)
    }
  }, 15_000)
})

describe('flow control against honest senders, on one asset', () => {
  let testnet: Testnet
  const sides: Side[] = []
  beforeAll(async () => {
    testnet = await startTestnet()
  })
  afterAll(async () => {
    for (const s of sides) await s.plugin.disconnect().catch(() => {})
    await testnet?.close()
  })

  /**
   * Our client opens streams, writes 16 KiB on each, and closes them (half destroyed at once, half
   * ended) on one connection to our listener for `ms`, its Prepares meeting `t04` T04s.
   * Resolves with the listener connection's close, if it closed.
   */
  async function churn(streamWindow: number, t04: number, destroy: boolean, ms: number, seed: number) {
    const server = await side(testnet.uri('server'))
    const client = await side(testnet.uri('client'), (plugin) => faultyPlugin(plugin, { faults: { rejectT04: t04, direction: 'outgoing' }, seed }) as unknown as BtpPluginLike)
    sides.push(server, client)
    const listener = ourListener(server, { streamWindow })
    let serverClose: unknown
    listener.on('connection', (connection) => connection.on('close', (info) => (serverClose = info)))
    const { destinationAccount, sharedSecret } = listener.generateCredentials()
    const connection = ourClient(client, destinationAccount, sharedSecret)
    await connection.open()
    const deadline = Date.now() + ms
    let opened = 0
    while (Date.now() < deadline && !serverClose && connection.isOpen) {
      let streams: MoneyStream[]
      try {
        streams = Array.from({ length: 6 }, () => connection.createStream())
      } catch {
        await sleep(20)
        continue
      }
      for (const stream of streams) stream.write(Buffer.alloc(16_384, 7))
      opened += streams.length
      await sleep(2)
      for (const stream of streams.slice(0, 3)) destroy ? stream.destroy() : stream.end()
      await sleep(3)
      for (const stream of streams.slice(3)) stream.end()
      await sleep(5)
    }
    const info = serverClose ?? connection.closeInfo
    connection.destroy()
    await client.plugin.disconnect()
    await server.plugin.disconnect()
    return { info, opened }
  }

  // The sender counts ConnectionMaxData over its open streams (as ilp-protocol-stream does), and a
  // stream it closes leaves that count at once; the receiver counts its own open streams, which
  // keep a closed stream's bytes until the StreamClose arrives. The slack the receiver's check
  // has for that is `streamWindow` per open stream, while bytes held out of order may reach offset
  // 16,384 on each stream whatever the window: with a window below 16,384, an honest sender that
  // churns streams is closed with FlowControlError.
  for (const [name, t04, destroy] of [
    ['streams destroyed, a tenth of the Prepares T04', 0.1, true],
    ['streams ended cleanly, a tenth of the Prepares T04', 0.1, false],
  ] as const) {
    it(`defect: with streamWindow 1,000, our listener closes our honest client with FlowControlError (${name})`, async () => {
      const results = []
      for (let seed = 1; seed <= 3; seed++) {
        const result = await churn(1_000, t04, destroy, 1_000, seed)
        results.push(result)
        if (result.info) break
      }
      const closed = results.find((result) => result.info)
      expect(closed?.info, `${results.length} connections of 1 s: ${JSON.stringify(closed)}`).toBeUndefined()
    }, 15_000)
  }

  it('pins: with the default streamWindow the same churn (destroyed streams, T04s) is never closed', async () => {
    for (let seed = 1; seed <= 2; seed++) {
      const result = await churn(16_384, 0.1, true, 1_000, seed)
      expect(result.info, JSON.stringify(result)).toBeUndefined()
    }
  }, 15_000)
})

describe('a minimum rate above the path\'s (0.003 for 0.002475): probes after #failMoney forgets the rate', () => {
  let testnet: Testnet
  const sides: Side[] = []
  beforeAll(async () => {
    testnet = await startTestnet({ second: { assetCode: 'USD', assetScale: 6, rate: 2.5, spread: 0.01 } })
  })
  afterAll(async () => {
    for (const s of sides) await s.plugin.disconnect().catch(() => {})
    await testnet?.close()
  })

  it('pins: each stream that wants money costs one probe and fails; a failed stream never pays again when its sendMax is raised; nothing is sent in between (no probe loop)', async () => {
    const sent: bigint[] = []
    const usd = await side(testnet.secondUri('usd'))
    const xrp = await side(testnet.uri('xrp'), liquidityLimited(MAX_U64, sent))
    sides.push(usd, xrp)
    let received = 0n
    const listener = ourListener(usd)
    listener.on('connection', (connection) =>
      connection.on('stream', (stream: MoneyStream) => {
        stream.setReceiveMax(1_000_000n)
        stream.on('money', (amount) => (received += amount))
      }),
    )
    const { destinationAccount, sharedSecret } = listener.generateCredentials()
    const client = ourClient(xrp, destinationAccount, sharedSecret, { minExchangeRate: '0.003' })
    try {
      const errors: string[] = []
      const first = client.createStream()
      first.on('moneyError', (m) => errors.push(m))
      first.setSendMax(10_000_000n)
      await client.open()
      await until(() => errors.length === 1, 5_000)
      const afterFirst = sent.length
      first.setSendMax(20_000_000n)
      await sleep(300)
      const afterRaise = sent.length
      const second = client.createStream()
      second.on('moneyError', (m) => errors.push(m))
      second.setSendMax(10_000_000n)
      await until(() => errors.length === 2, 5_000)
      await sleep(300)
      expect({ received, firstSent: first.totalSent, secondSent: second.totalSent, raisedSent: afterRaise - afterFirst }).toEqual({ received: 0n, firstSent: 0n, secondSent: 0n, raisedSent: 0 })
      expect(sent.length, `Prepares: ${sent.join(',')}`).toBeLessThanOrEqual(12)
    } finally {
      client.destroy()
    }
  }, 15_000)
})

describe('the codec at its edges (5f9c82f)', () => {
  const theirs = createRequire(import.meta.url)('ilp-protocol-stream/dist/src/packet.js') as typeof import('ilp-protocol-stream/dist/src/packet.js')
  const EDGES = [
    0n, 1n, 127n, 128n, 255n, 256n, 0xffffn, 0x1_0000n, 0xff_ffffn, 0x100_0000n, 0xffff_ffffn, 0x1_0000_0000n, 0x1_0000_0001n,
    0xff_ffff_ffffn, 0x100_0000_0000n, 0xffff_ffff_ffffn, 0x1_0000_0000_0000n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n,
    0xff_ffff_ffff_ffffn, 0x100_0000_0000_0000n, 0xffff_ffff_0000_0000n, 0x8000_0000_0000_0000n, MAX_U64 - 1n, MAX_U64,
  ]

  it('pins: every VarUInt edge (2^8k boundaries, 2^32 halves, 2^53, u64 max) in every u64 field serializes as ilp-protocol-stream does and reads back', () => {
    for (const value of EDGES) {
      const s = value.toString()
      const packet: StreamPacket = {
        ilpPacketType: IlpPacketTypes.Fulfill,
        sequence: value,
        prepareAmount: value,
        frames: [
          { type: 'StreamMoney', streamId: value, shares: value },
          { type: 'StreamMaxMoney', streamId: value, receiveMax: value, totalReceived: value },
          { type: 'ConnectionMaxData', maxOffset: value },
          { type: 'StreamData', streamId: value, offset: value, data: new Uint8Array(3) },
        ],
      }
      const their = new theirs.Packet(s, IlpPacketTypes.Fulfill, s, [
        new theirs.StreamMoneyFrame(s, s),
        new theirs.StreamMaxMoneyFrame(s, s, s),
        new theirs.ConnectionMaxDataFrame(s),
        new theirs.StreamDataFrame(s, s, Buffer.alloc(3)),
      ])
      const bytes = encodePacket(packet)
      expect(Buffer.from(bytes).toString('hex'), s).toBe(their._serialize().toString('hex'))
      const decoded = decodePacket(bytes)
      expect(decoded.type === 'valid' ? decoded.packet.frames.map((f) => ('streamId' in f ? f.streamId : 0n)) : 'invalid', s).toEqual([value, value, 0n, value])
      expect(decoded.type === 'valid' && decoded.packet.sequence).toBe(value)
    }
  })

  it('pins: a frame that throws mid-write (an errorCode of 256 after its stream id) leaves no trace in the next packet; pooled packets never overlap or show bytes past their length', () => {
    const bad: Frame = { type: 'StreamClose', streamId: 5n, errorCode: 256, errorMessage: 'x'.repeat(300) }
    expect(() => encodePacket({ ilpPacketType: IlpPacketTypes.Prepare, sequence: 1n, prepareAmount: 0n, frames: [{ type: 'StreamMoney', streamId: 1n, shares: 1n }, bad] })).toThrow(/errorCode/)
    const secret = new Uint8Array(200).fill(0xee)
    const outputs: Uint8Array[] = []
    for (let i = 0; i < 200; i++) {
      const frames: Frame[] = i % 2 ? [{ type: 'StreamData', streamId: 1n, offset: 0n, data: secret }] : [{ type: 'StreamMoney', streamId: 1n, shares: 1n }]
      outputs.push(encodePacket({ ilpPacketType: IlpPacketTypes.Prepare, sequence: BigInt(i), prepareAmount: 0n, frames }))
    }
    const small = outputs.filter((_, i) => i % 2 === 0)
    for (const bytes of small) {
      expect(bytes.length).toBeLessThan(16)
      expect(Buffer.from(bytes).includes(0xee)).toBe(false)
      expect(Buffer.from(bytes).equals(Buffer.from(bytes.slice()))).toBe(true)
    }
    // Views of one pool: no two overlap.
    const spans = outputs.map((b) => [b.buffer, b.byteOffset, b.byteOffset + b.byteLength] as const)
    for (let a = 0; a < spans.length; a++)
      for (let b = a + 1; b < spans.length; b++) {
        const [ba, sa, ea] = spans[a]!
        const [bb, sb, eb] = spans[b]!
        if (ba === bb) expect(sa >= eb || sb >= ea, `${a} and ${b}`).toBe(true)
      }
    // The earlier packets are unchanged by the later ones.
    expect(decodePacket(outputs[0]!).type).toBe('valid')
    expect(outputs.every((bytes, i) => { const d = decodePacket(bytes); return d.type === 'valid' && d.packet.sequence === BigInt(i) })).toBe(true)
  })

  it('pins: frame contents of 127, 128, 255, 256, 65,535 and 65,536 bytes (1-, 2-, 3- and 4-byte length prefixes) read back intact', () => {
    for (const size of [127 - 20, 128 - 20, 255 - 20, 256 - 20, 65_535 - 20, 65_536 - 20, 127, 128, 255, 256, 65_535, 65_536]) {
      const data = new Uint8Array(size).map((_, i) => (i * 7) % 256)
      const bytes = encodePacket({ ilpPacketType: IlpPacketTypes.Prepare, sequence: 1n, prepareAmount: 0n, frames: [{ type: 'StreamReceipt', streamId: MAX_U64, receipt: data }, { type: 'StreamData', streamId: 1n, offset: MAX_U64 - 1n, data }] })
      const decoded = decodePacket(bytes)
      expect(decoded.type, String(size)).toBe('valid')
      if (decoded.type !== 'valid') continue
      const [receipt, stream] = decoded.packet.frames
      expect(receipt?.type === 'StreamReceipt' && Buffer.from(receipt.receipt).equals(Buffer.from(data))).toBe(true)
      expect(stream?.type === 'StreamData' && stream.offset === MAX_U64 - 1n && Buffer.from(stream.data).equals(Buffer.from(data))).toBe(true)
    }
  })
})
