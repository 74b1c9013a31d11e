import express from 'express'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { paidRoute } from '@cogpay/express'
import { createPayFetch, ErrorCodes, getPayment } from '@cogpay/fetch'
import { listen, startNetwork, type Network } from './support/network.ts'

// Issue 9, defect 5: a server that took the money and never answered kept payFetch waiting past
// 20 s (only undici's 300 s header timeout would have ended it), and what was spent was lost.
describe('payFetch against a server that takes the money and never answers', () => {
  let net: Network
  let server: Awaited<ReturnType<typeof listen>>
  beforeAll(async () => {
    net = await startNetwork()
    const app = express()
    app.get('/hang', paidRoute(100n, { receiver: net.receiver }), () => {
      // paid, and never answers
    })
    app.get('/overclaim', paidRoute(100n, { receiver: net.receiver }), (_req, res) => {
      res.set('Cogpay-Price', '500').send('served for less than it claims')
    })
    server = await listen(app)
  })
  afterAll(async () => {
    await server.close()
    await net.close()
  })

  it('payFetch rejects with COGPAY_RESPONSE_TIMEOUT after its timeout, carrying what was spent', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 200n, timeoutMs: 500 })
    const started = Date.now()
    const error = await payFetch(`${server.url}/hang`).catch((err: unknown) => err)
    expect(Date.now() - started).toBeLessThan(3000)
    expect(error).toMatchObject({ code: ErrorCodes.RESPONSE_TIMEOUT, spent: 100n })
    expect((error as Error).message).toContain('500 ms')
  })

  it('init.signal still aborts first, and the AbortError carries what was spent', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 200n })
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 300)
    const error = await payFetch(`${server.url}/hang`, { signal: controller.signal }).catch((err: unknown) => err)
    expect(error).toMatchObject({ name: 'AbortError', spent: 100n })
  })

  it('the default timeout is documented and finite', () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 200n })
    expect(payFetch.timeoutMs).toBe(60_000)
  })

  it('a response whose Cogpay-Price is above the cap is flagged (priceAboveCap), and spent is what was paid', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 200n })
    const response = await payFetch(`${server.url}/overclaim`)
    expect(await response.text()).toBe('served for less than it claims')
    expect(getPayment(response)).toMatchObject({ spent: 100n, price: 500n, priceAboveCap: true })
    const honest = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    expect(getPayment(await honest(`${server.url}/overclaim`))).toMatchObject({ priceAboveCap: false })
  })
})
