import express from 'express'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { meteredRoute, paidRoute } from '@cogpay/express'
import type { Meter } from '@cogpay/core'
import { createPayFetch, getPayment, SpendLimitError } from '@cogpay/fetch'
import { createPayer, createPaymentServer, type Payer, type PaymentServer } from '@cogpay/ilp'
import { startTestnet, type Testnet } from '@cogpay/testnet'
import { listen } from './support/network.ts'

// Cross-asset payments on the embedded network (issue 10 asks for a second asset; the cap in the
// payer's own units was never exercised across assets). The server prices in XRP (scale 9); the
// payer holds USD (scale 6). The hub's rate is the ratio of the scales less a 1 % spread: one USD
// unit (1e-6) arrives as 990 XRP units (1e-9 each).
describe('a payer in another asset than the server', () => {
  let testnet: Testnet
  let receiver: PaymentServer
  let payer: Payer
  let app: Awaited<ReturnType<typeof listen>>

  beforeAll(async () => {
    testnet = await startTestnet({ second: { assetCode: 'USD', assetScale: 6, spread: 0.01 } })
    receiver = createPaymentServer({ uplink: testnet.uri('server') })
    payer = createPayer({ uplink: testnet.secondUri('payer') })
    await Promise.all([receiver.uplink.connect(), payer.start()])
    const server = express()
    server.get('/paid', paidRoute(99_000n, { receiver }), (_req, res) => void res.json({ paid: res.locals.payment.paid.toString() }))
    server.get('/fails', paidRoute(99_000n, { receiver }), () => {
      throw new Error('the work failed')
    })
    server.get('/metered', meteredRoute({ receiver }), async (_req, res) => {
      const meter: Meter = res.locals.meter
      for (let step = 0; step < 10; step++) await meter.charge(9_900n)
      res.send('ten steps')
    })
    app = await listen(server)
  })
  afterAll(async () => {
    await app.close()
    await payer.close()
    await receiver.close()
    await testnet.close()
  })

  it('the two sides are in different assets', () => {
    expect(payer.asset).toEqual({ code: 'USD', scale: 6 })
    expect(receiver.uplink.asset).toEqual({ code: 'XRP', scale: 9 })
  })

  it('a fixed price in XRP is paid in USD: the server gets at least its price, the payer pays about price / 990, within its cap', async () => {
    const payFetch = createPayFetch({ payer, maxSpend: 1000n })
    const response = await payFetch(`${app.url}/paid`)
    expect(response.status).toBe(200)
    const { paid } = (await response.json()) as { paid: string }
    expect(BigInt(paid)).toBeGreaterThanOrEqual(99_000n)
    const spent = getPayment(response)!.spent
    // 99,000 / 990 = 100 USD units, and STREAM may round up by a packet's worth.
    expect(spent).toBeGreaterThanOrEqual(100n)
    expect(spent).toBeLessThanOrEqual(102n)
    // Not comparable across assets: the price is not flagged as above the cap.
    expect(getPayment(response)!.priceAboveCap).toBe(false)
  })

  it('a cap below the price, in the payer\'s own units, is never exceeded: at most the cap leaves, and the request is refused', async () => {
    const payFetch = createPayFetch({ payer, maxSpend: 50n })
    const before = payer.spent
    const error = await payFetch(`${app.url}/paid`).catch((err: unknown) => err)
    expect(error).toBeInstanceOf(SpendLimitError)
    expect((error as SpendLimitError).spent).toBeLessThanOrEqual(50n)
    expect(payer.spent - before).toBeLessThanOrEqual(50n)
  })

  it('a metered route in XRP: the payer pays as it goes in USD, never past its cap', async () => {
    // 10 steps of 9,900 XRP units cost 100 USD units. A cap of 60 stops it partway (before its
    // body: a 402), at most 60 spent.
    const short = createPayFetch({ payer, maxSpend: 60n })
    const error = await short(`${app.url}/metered`).catch((err: unknown) => err)
    expect(error).toBeInstanceOf(SpendLimitError)
    expect((error as SpendLimitError).spent).toBeGreaterThan(0n)
    expect((error as SpendLimitError).spent).toBeLessThanOrEqual(60n)
  })

  it('a metered response that completes across assets keeps its final message, six times in a row (on ilp-protocol-stream it was lost in 2 to 4 runs of 6 in session 4, the body read as cut; it did not reproduce there on the day this test was written, so this guards rather than shows it)', async () => {
    const payFetch = createPayFetch({ payer, maxSpend: 1000n })
    for (let run = 0; run < 6; run++) {
      const response = await payFetch(`${app.url}/metered`)
      expect(await response.text()).toBe('ten steps')
      const done = await getPayment(response)!.done
      expect(done).toMatchObject({ complete: true })
      // 99,000 XRP units at 990 per USD unit: 100, and never past the cap.
      expect(done.spent).toBeGreaterThanOrEqual(100n)
      expect(done.spent).toBeLessThanOrEqual(110n)
    }
  })

  it('a refund crosses back: the failed handler pays back, and the payer accepts at most what it paid, in USD', async () => {
    const payFetch = createPayFetch({ payer, maxSpend: 1000n })
    const response = await payFetch(`${app.url}/fails`)
    expect(response.status).toBe(500)
    const payment = getPayment(response)!
    expect(payment.spent).toBeGreaterThanOrEqual(100n)
    // The refund of the XRP received comes back through the spread again: a little less than paid.
    expect(payment.refunded).toBeGreaterThan(0n)
    expect(payment.refunded).toBeLessThanOrEqual(payment.spent)
  })
})
