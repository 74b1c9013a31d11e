import express from 'express'
import { describe, expect, it } from 'vitest'
import { paidRoute } from '@cogpay/express'
import { createPayFetch } from '@cogpay/fetch'
import { createPaymentServer } from '@cogpay/ilp'
import { startTestnet } from '@cogpay/testnet'
import { listen } from './support/network.ts'

// Issue 9, defect 7 (first part): after the hub restarted, paid requests failed for about 10 s.
// ilp-plugin-btp reconnects without a word, and each packet lost with the old connection waited
// out its 10 s response timeout, stalling its STREAM connection behind it.
describe('the hub restarts', () => {
  it('after the hub restarts, a paid request succeeds within 2 s of it being back, and both sides agree', async () => {
    let testnet = await startTestnet()
    const port = testnet.port
    const receiver = createPaymentServer({ uplink: testnet.uri('server') })
    const app = express()
    app.get('/paid', paidRoute(10n, { receiver }), (_req, res) => res.send('ok'))
    const server = await listen(app)
    const payFetch = createPayFetch({ uplink: testnet.uri('client'), maxSpend: 100n, timeoutMs: 3000 })
    try {
      expect((await payFetch(`${server.url}/paid`)).status).toBe(200)
      // Down right after a payment (its stream's close is in flight), for half a second.
      await testnet.close()
      await new Promise((resolve) => setTimeout(resolve, 500))
      testnet = await startTestnet({ port })
      const back = Date.now()
      let served = 0
      const failures: string[] = []
      for (let i = 0; i < 40 && Date.now() - back < 5000 && served === 0; i++) {
        try {
          const response = await payFetch(`${server.url}/paid`)
          if (response.status === 200) served = Date.now() - back
          else failures.push(String(response.status))
        } catch (err) {
          failures.push((err as { code?: string }).code ?? String(err))
        }
        if (served === 0) await new Promise((resolve) => setTimeout(resolve, 100))
      }
      expect(served, `failures before the first success: ${failures.join(', ')}`).toBeGreaterThan(0)
      expect(served).toBeLessThan(2000)
      // Nothing was in flight with money at the crash, so the two sides agree exactly.
      expect(payFetch.payer.spent).toBe(20n)
      expect(receiver.received).toBe(20n)
    } finally {
      await payFetch.payer.close()
      await receiver.close()
      await server.close()
      await testnet.close()
    }
  }, 30_000)
})
