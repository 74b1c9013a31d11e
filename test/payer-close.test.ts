import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'
import { startTestnet } from '@cogpay/testnet'
import { createPayer, createPlugin } from '@cogpay/ilp'

const IlpStream = createRequire(import.meta.url)('ilp-protocol-stream') as typeof import('ilp-protocol-stream')

describe('Payer.close()', () => {
  // Found by the hosting example's restart test: a host that closed while the payer still had a
  // socket to it left payer.close() waiting for BTP's 10 s response timeout, then rejecting with
  // "<requestId> timed out" (an unhandled rejection in a CLI that awaited it at the top level).
  it('payer.close() does not wait for, or reject on, a server that stopped answering', async () => {
    const testnet = await startTestnet()
    const payer = createPayer({ uplink: testnet.uri('payer') })
    const server = createPlugin(testnet.uri('silent'))
    try {
      await payer.start()
      const payment = await payer.expect('http://api.example', 100n)
      await server.connect()
      // A server (the STREAM client of a reverse socket) connects to the payer as usual...
      const connection = await IlpStream.createConnection({
        plugin: server,
        destinationAccount: payment.headers.address,
        sharedSecret: Buffer.from(payment.headers.secret),
      })
      connection.on('error', () => {})
      // ...then goes silent: every packet the payer sends it is never answered.
      server.deregisterDataHandler()
      server.registerDataHandler(() => new Promise<Buffer>(() => {}))
      payment.abort()
      const started = Date.now()
      await expect(payer.close()).resolves.toBeUndefined()
      expect(Date.now() - started).toBeLessThan(3000)
    } finally {
      await server.disconnect().catch(() => {})
      await testnet.close()
    }
  }, 20_000)
})
