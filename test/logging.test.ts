import { Writable } from 'node:stream'
import express from 'express'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { meteredRoute, paidRoute } from '@cogpay/express'
import type { Meter } from '@cogpay/core'
import { createPayFetch } from '@cogpay/fetch'
import { createPayer, createPaymentServer } from '@cogpay/ilp'
import { startTestnet } from '@cogpay/testnet'
import { listen } from './support/network.ts'

/** A pino logger at debug whose every line lands in `lines`. */
function capture(lines: string[]) {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean))
      done()
    },
  })
  return pino({ level: 'debug' }, sink)
}

describe('structured logging (pino) carries no secret', () => {
  it("at debug, the server's and the payer's log lines name what happened and never carry a shared secret or an uplink password", async () => {
    const lines: string[] = []
    const testnet = await startTestnet()
    const serverUri = testnet.uri('server')
    const clientUri = testnet.uri('client')
    const deadUri = 'btp+ws://ghost:ghost-uplink-password@127.0.0.1:9'
    const receiver = createPaymentServer({ uplink: serverUri, logger: capture(lines).child({ side: 'server' }) })
    const payer = createPayer({ uplink: clientUri, logger: capture(lines).child({ side: 'payer' }) })
    const dead = createPayer({ uplink: deadUri, connectTimeoutMs: 200, logger: capture(lines).child({ side: 'dead' }) })
    const secrets: string[] = [new URL(serverUri).password, new URL(clientUri).password, 'ghost-uplink-password']
    const app = express()
    app.get('/paid', paidRoute(100n, { receiver }), (_req, res) => res.send('ok'))
    app.get('/metered', meteredRoute({ receiver }), async (_req, res) => {
      const meter: Meter = res.locals.meter
      for (let i = 0; i < 5; i++) await meter.charge(7n)
      res.send('done')
    })
    const server = await listen(app)
    // Record every shared secret the payer hands out, in both encodings a log might use.
    const expect_ = payer.expect.bind(payer)
    payer.expect = async (origin, maxSpend, options) => {
      const pending = await expect_(origin, maxSpend, options)
      secrets.push(Buffer.from(pending.headers.secret).toString('base64url'), Buffer.from(pending.headers.secret).toString('base64'))
      return pending
    }
    const payFetch = createPayFetch({ payer, maxSpend: 50n })
    try {
      await payFetch(`${server.url}/paid`, { maxSpend: 200n })
      await payFetch(`${server.url}/metered`, { maxSpend: 200n }).then((r) => r.text())
      await payFetch(`${server.url}/paid`).catch(() => {}) // over the cap: refused
      await payFetch(`${server.url}/metered`, { maxSpend: 20n }).then((r) => r.text()).catch(() => {}) // cap mid-work
      await dead.start().catch(() => {}) // an uplink that is not there
    } finally {
      await payer.close()
      await dead.close()
      await receiver.close()
      await server.close()
      await testnet.close()
    }
    const messages = lines.map((line) => (JSON.parse(line) as { msg: string }).msg)
    // It logged what happened: so the grep below reads real lines.
    expect(messages).toContain('payment socket opened')
    expect(messages).toContain('payment collected')
    expect(messages).toContain('payer paid')
    expect(messages).toContain('payer reached a request cap')
    expect(messages).toContain('payer uplink did not connect')
    expect(lines.length).toBeGreaterThan(10)
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(4)
      expect(lines.filter((line) => line.includes(secret))).toEqual([])
    }
  }, 30_000)
})
