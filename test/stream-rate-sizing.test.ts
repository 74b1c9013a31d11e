import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import type { Frame } from '@cogpay/stream'
import { deserializePrepare, serializePrepare } from '../packages/stream/src/ilp.ts'
import { hostileServer, testnetSides } from './support/hostile-peer.ts'
import { ourClient, ourListener, type BtpPluginLike } from './support/stream-peers.ts'
import { sleep, until } from './support/wait.ts'

// How a sender sizes money by the rate its answers show: Fulfills that show a spread (on one
// asset too, for small prices and metered steps), F99s that show the rate is better than it
// thought, and receivers that lie about what arrived. A fake connector at the sender's plugin
// lowers each Prepare's amount, as a hub's spread does; the payee is our real listener. Each test
// named "defect:" failed while its defect was there.

const { newSide } = testnetSides()

/** A connector at the sender's edge that forwards each money Prepare with `shave(amount, index)` instead of its amount. */
function shavingConnector(shave: (amount: bigint, index: number) => bigint) {
  let index = 0
  return (inner: BtpPluginLike): BtpPluginLike => ({
    connect: () => inner.connect(),
    disconnect: () => inner.disconnect(),
    isConnected: () => inner.isConnected(),
    sendMoney: (amount) => inner.sendMoney(amount),
    registerDataHandler: (handler) => inner.registerDataHandler(handler),
    deregisterDataHandler: () => inner.deregisterDataHandler(),
    sendData: (bytes) => {
      const prepare = deserializePrepare(bytes)
      if (!prepare || prepare.destination.startsWith('peer.') || prepare.amount === 0n) return inner.sendData(bytes)
      return inner.sendData(serializePrepare({ ...prepare, amount: shave(prepare.amount, index++) }))
    },
  })
}

async function payee(receiveMax: bigint) {
  const b = await newSide()
  const listener = ourListener(b)
  let received = 0n
  listener.on('connection', (connection) =>
    connection.on('stream', (stream) => {
      stream.setReceiveMax(receiveMax)
      stream.on('money', (amount) => (received += amount))
    }),
  )
  return { listener, received: () => received, ...listener.generateCredentials() }
}

const sameAsset: Frame = { type: 'ConnectionAssetDetails', sourceAssetCode: 'XRP', sourceAssetScale: 9 }
const maxMoney = (streamId: number, receiveMax = 0n, totalReceived = 0n): Frame => ({ type: 'StreamMaxMoney', streamId: BigInt(streamId), receiveMax, totalReceived })

describe('rate learned from Fulfills', () => {
  it('defect: same asset, one packet delivered at exactly the minimum (1 % less, within the slippage), then the path is honest: the payment never completes (every later packet overshoots the room, F99, no rate update)', async () => {
    const { destinationAccount, sharedSecret, received } = await payee(10_000n)
    let prepares = 0
    const a = await newSide(shavingConnector((amount, index) => (prepares++, index === 0 ? (amount * 99n) / 100n : amount)))
    const client = ourClient(a, destinationAccount, sharedSecret)
    const stream = client.createStream()
    stream.setSendMax(20_000n)
    await client.open()
    await until(() => received() >= 10_000n, 4000).catch(() => {})
    const state = { received: received(), rate: client.exchangeRate && `${client.exchangeRate.numerator}/${client.exchangeRate.denominator}`, totalSent: stream.totalSent, moneyError: stream.moneyError, prepares }
    client.destroy()
    console.log('one-dip state', state)
    expect(state).toMatchObject({ received: 10_000n })
  }, 10_000)

  for (const price of [1_000n, 12_345n, 99_999n, 1_000_001n]) {
    it(`same asset, a steady 0.5 % spread: a price of ${price} completes`, async () => {
      const { destinationAccount, sharedSecret, received } = await payee(price)
      const a = await newSide(shavingConnector((amount) => (amount * 995n) / 1000n))
      const client = ourClient(a, destinationAccount, sharedSecret)
      const stream = client.createStream()
      stream.setSendMax(price * 2n)
      await client.open()
      await until(() => received() >= price, 4000).catch(() => {})
      const state = { received: received(), totalSent: stream.totalSent, moneyError: stream.moneyError }
      client.destroy()
      expect(state).toMatchObject({ received: price })
      expect(state.totalSent).toBeLessThanOrEqual(price * 2n)
    }, 10_000)
  }

  it('a receiver claiming 10x arrived in its Fulfills: the minimum asked of later packets stays at the minimum rate', async () => {
    const [a, b] = [await newSide(), await newSide()]
    const secret = randomBytes(32)
    const stats = hostileServer(b, secret, (_packet, amount) => ({ prepareAmount: amount * 10n, frames: [sameAsset, maxMoney(1, 1_000_000n, 0n)] }))
    const client = ourClient(a, `${b.address}.big`, secret, { maxPacketsInFlight: 1 })
    const stream = client.createStream()
    stream.setSendMax(100_000n)
    await client.open()
    await until(() => stats.prepares > 20 || stream.totalSent === 100_000n, 3000).catch(() => {})
    client.destroy()
    const money = stats.seen.filter((s) => s.amount > 0n)
    expect(money.length).toBeGreaterThan(0)
    for (const { amount, min } of money) expect(min).toBeGreaterThanOrEqual((amount * 99n) / 100n)
    expect(stats.paid).toBeLessThanOrEqual(100_000n)
  })

  it('a receiver claiming a rate far below the minimum in its Fulfills (100 of each packet): never past sendMax, minimum kept', async () => {
    const [a, b] = [await newSide(), await newSide()]
    const secret = randomBytes(32)
    const stats = hostileServer(b, secret, (_packet, amount) => ({ prepareAmount: amount > 0n ? 100n : 0n, frames: [sameAsset, maxMoney(1, 1_000_000n, 0n)] }))
    const client = ourClient(a, `${b.address}.low`, secret, { maxPacketsInFlight: 1 })
    const stream = client.createStream()
    stream.setSendMax(5_000_000n)
    await client.open()
    await until(() => stream.totalSent === 5_000_000n || stream.moneyError !== undefined, 3000).catch(() => {})
    await sleep(100)
    client.destroy()
    for (const { amount, min } of stats.seen.filter((s) => s.amount > 0n)) expect(min).toBeGreaterThanOrEqual((amount * 99n) / 100n)
    expect(stats.paid).toBeLessThanOrEqual(5_000_000n)
    expect(stream.totalSent + stream.inDoubt).toBeLessThanOrEqual(5_000_000n)
  })

  for (const price of [50n, 99n]) {
    it(`defect: same asset, a steady 0.5 % spread: a small price of ${price} (no packet ever delivers 100) completes`, async () => {
      const { destinationAccount, sharedSecret, received } = await payee(price)
      const a = await newSide(shavingConnector((amount) => (amount * 995n) / 1000n))
      const client = ourClient(a, destinationAccount, sharedSecret)
      const stream = client.createStream()
      stream.setSendMax(price * 2n)
      await client.open()
      await until(() => received() >= price || stream.moneyError !== undefined, 4000).catch(() => {})
      const state = { received: received(), totalSent: stream.totalSent, moneyError: stream.moneyError }
      client.destroy()
      expect(state).toMatchObject({ received: price, moneyError: undefined })
    }, 10_000)
  }

  it('defect: same asset, a steady 0.5 % spread, metered: the receive max grows 10 at a time to 300, the payment completes', async () => {
    const b = await newSide()
    const listener = ourListener(b)
    let received = 0n
    listener.on('connection', (connection) =>
      connection.on('stream', (stream) => {
        stream.setReceiveMax(10n)
        stream.on('money', (amount) => {
          received += amount
          if (stream.totalReceived >= stream.receiveMax && stream.receiveMax < 300n) setTimeout(() => stream.setReceiveMax(stream.receiveMax + 10n), 1)
        })
      }),
    )
    const { destinationAccount, sharedSecret } = listener.generateCredentials()
    const a = await newSide(shavingConnector((amount) => (amount * 995n) / 1000n))
    const client = ourClient(a, destinationAccount, sharedSecret)
    const stream = client.createStream()
    stream.setSendMax(1_000n)
    await client.open()
    await until(() => received >= 300n || stream.moneyError !== undefined, 5000).catch(() => {})
    const state = { received, totalSent: stream.totalSent, moneyError: stream.moneyError }
    client.destroy()
    expect(state).toMatchObject({ received: 300n, moneyError: undefined })
  }, 10_000)
})
