import { describe, expect, it } from 'vitest'
import { createPaymentServer, createPayer } from '@cogpay/ilp'
import { startTestnet } from '@cogpay/testnet'
import { sleep } from './support/wait.ts'

// Issue 9, defect 4: sockets that had gone idle and closed stayed in the server's table (1,500 of
// them at about 17.8 KiB of heap each), counted and held until the LRU happened to evict them.
describe('the payment server forgets sockets that closed', () => {
  it('dead sockets are purged: after their payers go idle and the sockets close, the server holds none', async () => {
    const testnet = await startTestnet()
    const server = createPaymentServer({ uplink: testnet.uri('server'), socketIdleMs: 300 })
    const payers = Array.from({ length: 20 }, () => createPayer({ uplink: testnet.uri('payer') }))
    try {
      await Promise.all(payers.map((payer) => payer.start()))
      await Promise.all(
        payers.map(async (payer) => {
          const payment = await payer.expect('http://api.example', 10n)
          const collection = await server.collect({ payment: payment.headers, amount: 10n })
          collection.close()
          await payment.finish()
        }),
      )
      expect(server.socketCount).toBe(20)
      expect(server.received).toBe(200n)
      // Idle past socketIdleMs: STREAM closes each connection; none may stay in the table.
      for (let i = 0; i < 100 && server.socketCount > 0; i++) await sleep(30)
      expect(server.socketCount).toBe(0)
      // And a payer that comes back gets a new socket and pays as before.
      const again = await payers[0]!.expect('http://api.example', 10n)
      const collection = await server.collect({ payment: again.headers, amount: 10n })
      collection.close()
      expect(await again.finish()).toBe(10n)
      expect(server.socketCount).toBe(1)
    } finally {
      await Promise.all(payers.map((payer) => payer.close()))
      await server.close()
      await testnet.close()
    }
  }, 20_000)
})
