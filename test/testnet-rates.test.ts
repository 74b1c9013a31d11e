import { Buffer } from 'node:buffer'
import { createHash, randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createPlugin, type IlpPlugin } from '@cogpay/ilp'
import { startTestnet, type Testnet } from '@cogpay/testnet'

// Issue 10, "Exchange rates": the embedded network quotes a configured rate other than 1 between
// its two assets, with a spread, and the rate can change while it runs. Raw ILP Prepares through
// the real connector, from a BTP child in one asset to a child in the other: each receiver
// fulfills and records the amount that reached it, which is the connector's doing alone.

// ilp-packet is the testnet's dependency, not the workspace root's: loaded, and typed, from there.
const require = createRequire(new URL('../packages/testnet/package.json', import.meta.url))
const IlpPacket = require('ilp-packet') as typeof import('../packages/testnet/node_modules/ilp-packet/dist/index.js')

const FULFILLMENT = Buffer.alloc(32, 7)
const CONDITION = createHash('sha256').update(FULFILLMENT).digest()

/** A BTP child of the hub that fulfills every Prepare and remembers the amount each one carried. */
interface Child {
  plugin: IlpPlugin
  address: string
  /** Amount that arrived, by the last segment of the Prepare's destination. */
  arrived: Map<string, bigint>
  /** Prepares whose answer is held until the promise resolves, by the same key. */
  hold: Map<string, Promise<void>>
}

async function child(uri: string, childPrefix: string): Promise<Child> {
  const plugin = createPlugin(uri)
  const arrived = new Map<string, bigint>()
  const hold = new Map<string, Promise<void>>()
  plugin.registerDataHandler(async (data) => {
    const prepare = IlpPacket.deserializeIlpPrepare(data)
    const key = prepare.destination.split('.').at(-1)!
    arrived.set(key, BigInt(prepare.amount))
    await hold.get(key)
    return IlpPacket.serializeIlpFulfill({ fulfillment: FULFILLMENT, data: Buffer.alloc(0) })
  })
  await plugin.connect()
  return { plugin, address: `${childPrefix}.${new URL(uri).username}`, arrived, hold }
}

/** Sends `amount` from one child to another through the hub; resolves with what arrived. */
async function send(from: Child, to: Child, amount: bigint, key = randomBytes(4).toString('hex')): Promise<bigint> {
  const answer = await from.plugin.sendData(
    IlpPacket.serializeIlpPrepare({
      amount: amount.toString(),
      destination: `${to.address}.${key}`,
      executionCondition: CONDITION,
      expiresAt: new Date(Date.now() + 10_000),
      data: Buffer.alloc(0),
    }),
  )
  if (answer[0] !== IlpPacket.Type.TYPE_ILP_FULFILL) {
    const reject = IlpPacket.deserializeIlpReject(answer)
    throw new Error(`rejected: ${reject.code} ${reject.message}`)
  }
  const arrived = to.arrived.get(key)
  if (arrived === undefined) throw new Error(`fulfilled, but ${key} never reached ${to.address}`)
  return arrived
}

/** floor(amount × num / den), computed in bigint: the expected delivery, independent of the hub's arithmetic. */
const times = (amount: bigint, num: bigint, den: bigint) => (amount * num) / den

describe('a configured rate between the two assets: 1 USD = 2.5 XRP, 1 % spread', () => {
  // First asset USD (scale 6), second XRP (scale 9): rate 2.5 is 2.5 XRP per USD, so one USD unit
  // (1e-6 USD) is 2,500 XRP units (1e-9 XRP) before the spread, 2,475 after; one XRP unit is
  // 0.0004 USD units before the spread, 0.000396 after.
  let testnet: Testnet
  let usd: Child
  let usd2: Child
  let xrp: Child
  let xrp2: Child

  beforeAll(async () => {
    testnet = await startTestnet({ assetCode: 'USD', assetScale: 6, second: { assetCode: 'XRP', assetScale: 9, rate: 2.5, spread: 0.01 } })
    const second = testnet.second!
    ;[usd, usd2, xrp, xrp2] = await Promise.all([
      child(testnet.uri('usd'), testnet.childPrefix),
      child(testnet.uri('usdtwo'), testnet.childPrefix),
      child(testnet.secondUri('xrp'), second.childPrefix),
      child(testnet.secondUri('xrptwo'), second.childPrefix),
    ])
  })
  afterAll(async () => {
    await Promise.all([usd, usd2, xrp, xrp2].map((c) => c?.plugin.disconnect()))
    await testnet?.close()
  })

  it('reports the rate and spread it was given', () => {
    expect(testnet.second).toMatchObject({ assetCode: 'XRP', assetScale: 9, rate: 2.5, spread: 0.01 })
  })

  it('USD to XRP: floor(amount × 2.5 × 0.99 × 10^3) arrives', async () => {
    for (const amount of [1n, 7n, 1000n, 123_457n, 4_000_000_000n]) {
      // × 5/2 × 99/100 × 1000
      expect(await send(usd, xrp, amount)).toBe(times(amount, 5n * 99n * 1000n, 2n * 100n))
    }
    expect(await send(usd, xrp, 1000n)).toBe(2_475_000n)
  })

  it('XRP to USD: floor(amount / 2.5 × 0.99 × 10^-3) arrives, rounded down', async () => {
    for (const amount of [1n, 2_525n, 2_526n, 12_345n, 1_000_000n, 123_456_789n]) {
      // × 2/5 × 99/100 / 1000
      expect(await send(xrp, usd, amount)).toBe(times(amount, 2n * 99n, 5n * 100n * 1000n))
    }
    expect(await send(xrp, usd, 1_000_000n)).toBe(396n) // 0.001 XRP = 0.0004 USD, less 1 %
    expect(await send(xrp, usd, 2_525n)).toBe(0n) // 0.9999 of a USD unit
    expect(await send(xrp, usd, 2_526n)).toBe(1n)
  })

  it('a payment there and back loses the spread twice, and nothing to the rate', async () => {
    const there = await send(usd, xrp, 10_000n)
    expect(there).toBe(24_750_000n)
    expect(await send(xrp, usd, there)).toBe(9_801n) // 10,000 × 0.99 × 0.99
  })

  it('same-asset routes pay 1 - spread, in either asset', async () => {
    expect(await send(usd, usd2, 1000n)).toBe(990n)
    expect(await send(xrp, xrp2, 123_456n)).toBe(times(123_456n, 99n, 100n))
  })

  it('setRate applies from the next Prepare, both ways; a Prepare already forwarded keeps its amount', async () => {
    try {
      expect(await send(usd, xrp, 1000n)).toBe(2_475_000n)
      // A Prepare that has reached its receiver, and whose answer is held there.
      let release!: () => void
      xrp.hold.set('held', new Promise<void>((resolve) => (release = resolve)))
      const held = send(usd, xrp, 1000n, 'held')
      while (!xrp.arrived.has('held')) await new Promise((resolve) => setTimeout(resolve, 5))

      // The rate worsens for a USD payer: 1 USD = 2 XRP.
      testnet.setRate(2)
      expect(testnet.second!.rate).toBe(2)
      expect(await send(usd, xrp, 1000n)).toBe(1_980_000n) // 1000 × 2 × 0.99 × 10^3
      expect(await send(xrp, usd, 1_000_000n)).toBe(495n) // 1e6 / 2 × 0.99 / 10^3
      release()
      expect(await held).toBe(2_475_000n)

      testnet.setRate(1.2345)
      expect(await send(usd, xrp, 1000n)).toBe(times(1000n, 12_345n * 99n * 1000n, 10_000n * 100n))
      // 1 / 1.2345 × 0.99 = 0.80194410692588092…, which the hub rounds to 15 digits: 0.801944106925881.
      expect(await send(xrp, usd, 1_000_000_000n)).toBe(801_944n)
    } finally {
      testnet.setRate(2.5)
    }
    expect(await send(usd, xrp, 1000n)).toBe(2_475_000n)
  })

  it('setSpread applies from the next Prepare, on every route', async () => {
    try {
      testnet.setSpread(0)
      expect(testnet.second!.spread).toBe(0)
      expect(await send(usd, xrp, 1000n)).toBe(2_500_000n)
      expect(await send(xrp, usd, 1_000_000n)).toBe(400n)
      expect(await send(usd, usd2, 1000n)).toBe(1000n)
      testnet.setSpread(0.05)
      expect(await send(usd, xrp, 1000n)).toBe(2_375_000n)
      expect(await send(xrp, usd, 1_000_000n)).toBe(380n)
      expect(await send(xrp, xrp2, 1000n)).toBe(950n)
    } finally {
      testnet.setSpread(0.01)
    }
    expect(await send(usd, xrp, 1000n)).toBe(2_475_000n)
  })

  it('refuses a rate or spread that makes no sense, and keeps the one it had', async () => {
    for (const rate of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => testnet.setRate(rate)).toThrow(RangeError)
    }
    for (const spread of [-0.01, 1, Number.NaN]) {
      expect(() => testnet.setSpread(spread)).toThrow(RangeError)
    }
    expect(testnet.second).toMatchObject({ rate: 2.5, spread: 0.01 })
    expect(await send(usd, xrp, 1000n)).toBe(2_475_000n)
    await expect(startTestnet({ second: { assetCode: 'USD', assetScale: 6, rate: 0 } })).rejects.toThrow(/rate must be/)
    await expect(startTestnet({ second: { assetCode: 'USD', assetScale: 6, spread: 1 } })).rejects.toThrow(/spread must be/)
  })
})

describe('without a rate, the hub converts as before: the ratio of the scales less the spread', () => {
  // The setup of test/cross-asset.test.ts: XRP (scale 9) first, USD (scale 6) second, 1 % spread.
  let testnet: Testnet
  let xrp: Child
  let xrp2: Child
  let usd: Child

  beforeAll(async () => {
    testnet = await startTestnet({ second: { assetCode: 'USD', assetScale: 6, spread: 0.01 } })
    ;[xrp, xrp2, usd] = await Promise.all([
      child(testnet.uri('xrp'), testnet.childPrefix),
      child(testnet.uri('xrptwo'), testnet.childPrefix),
      child(testnet.secondUri('usd'), testnet.second!.childPrefix),
    ])
  })
  afterAll(async () => {
    await Promise.all([xrp, xrp2, usd].map((c) => c?.plugin.disconnect()))
    await testnet?.close()
  })

  it('one USD unit arrives as 990 XRP units, 1,000 XRP units as 0.99 of a USD unit (0), same-asset less 1 %', async () => {
    expect(testnet.second).toMatchObject({ rate: 1, spread: 0.01 })
    expect(await send(usd, xrp, 1n)).toBe(990n)
    expect(await send(usd, xrp, 100n)).toBe(99_000n)
    expect(await send(xrp, usd, 1_000_000n)).toBe(990n)
    expect(await send(xrp, usd, 1000n)).toBe(0n)
    expect(await send(xrp, usd, 1011n)).toBe(1n)
    expect(await send(xrp, xrp2, 1000n)).toBe(990n)
  })

  it('setRate works here too: 1 XRP = 2 USD from the next Prepare', async () => {
    testnet.setRate(2)
    try {
      expect(await send(xrp, usd, 1_000_000n)).toBe(1_980n)
      expect(await send(usd, xrp, 100n)).toBe(49_500n)
    } finally {
      testnet.setRate(1)
    }
    expect(await send(usd, xrp, 1n)).toBe(990n)
  })
})

describe('one asset, as before', () => {
  let testnet: Testnet
  let alice: Child
  let bob: Child

  beforeAll(async () => {
    testnet = await startTestnet()
    ;[alice, bob] = await Promise.all([child(testnet.uri('alice'), testnet.childPrefix), child(testnet.uri('bob'), testnet.childPrefix)])
  })
  afterAll(async () => {
    await Promise.all([alice, bob].map((c) => c?.plugin.disconnect()))
    await testnet?.close()
  })

  it('delivers every unit sent (no spread), and has no rate to set', async () => {
    expect(await send(alice, bob, 1n)).toBe(1n)
    expect(await send(alice, bob, 123_456_789n)).toBe(123_456_789n)
    expect(testnet.second).toBeUndefined()
    expect(() => testnet.setRate(2)).toThrow(/without a second asset/)
    expect(() => testnet.setSpread(0.01)).toThrow(/without a second asset/)
  })
})
