import { randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import express from 'express'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ErrorCodes, Headers, SCHEME } from '@cogpay/core'
import { paidRoute } from '@cogpay/express'
import { createPayFetch, getPayment } from '@cogpay/fetch'
import { createPaymentServer, createPlugin, type IlpPlugin, type PaymentServer } from '@cogpay/ilp'
import { startTestnet, type Testnet } from '@cogpay/testnet'
import { listen } from './support/network.ts'

/** A GET with payment headers from a given local address (the client's "IP" on loopback). */
function attack(url: string, from: string, address: string): Promise<{ status: number; code: string | undefined; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        localAddress: from,
        headers: {
          [Headers.scheme]: SCHEME,
          [Headers.address]: address,
          [Headers.secret]: randomBytes(32).toString('base64url'),
          [Headers.requestId]: randomBytes(12).toString('base64url'),
        },
      },
      (res) => {
        res.resume()
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            code: res.headers['cogpay-error'] as string | undefined,
            retryAfter: res.headers['retry-after'] as string | undefined,
          }),
        )
      },
    )
    req.once('error', reject)
    req.end()
  })
}

// Issue 9, defect 3: one client's slow requests (payer addresses that never answer) filled the
// server-wide maxOpening, and 14 of 15 new payers got 503 COGPAY_UPLINK_UNAVAILABLE.
describe('one client cannot lock out the others', () => {
  let testnet: Testnet
  let receiver: PaymentServer
  let server: Awaited<ReturnType<typeof listen>>
  const silent: IlpPlugin[] = []
  const silentAddresses: string[] = []

  beforeAll(async () => {
    testnet = await startTestnet()
    receiver = createPaymentServer({ uplink: testnet.uri('server'), maxOpening: 8, maxPendingPerClient: 4, connectTimeoutMs: 2000 })
    // Three hub accounts that never answer a packet: sockets to them hang until connectTimeoutMs.
    for (let i = 0; i < 3; i++) {
      const uri = testnet.uri(`silent${i}`)
      const plugin = createPlugin(uri)
      await plugin.connect()
      plugin.registerDataHandler(() => new Promise<Buffer>(() => {}))
      silent.push(plugin)
      silentAddresses.push(`${testnet.childPrefix}.${new URL(uri).username}`)
    }
    const app = express()
    app.get('/paid', paidRoute(10n, { receiver }), (_req, res) => res.send('ok'))
    server = await listen(app)
  })
  afterAll(async () => {
    await server.close()
    await receiver.close()
    await Promise.all(silent.map((plugin) => plugin.disconnect()))
    await testnet.close()
  })

  it('a flood of never-paying requests from one IP gets 429 past its share, and an honest payer is still served at once', async () => {
    // 30 requests from 127.0.0.2, to payer addresses under three accounts that never answer.
    const flood = Array.from({ length: 30 }, (_, i) =>
      attack(`${server.url}/paid`, '127.0.0.2', `${silentAddresses[i % 3]}.x${i}`),
    )
    // While those hang, an honest client (another IP, its own payer) pays and is served.
    await new Promise((resolve) => setTimeout(resolve, 100))
    const payFetch = createPayFetch({ uplink: testnet.uri('honest'), maxSpend: 100n })
    try {
      const started = Date.now()
      const response = await payFetch(`${server.url}/paid`)
      expect(response.status).toBe(200)
      expect(await response.text()).toBe('ok')
      expect(getPayment(response)?.spent).toBe(10n)
      expect(Date.now() - started).toBeLessThan(1500)
    } finally {
      await payFetch.payer.close()
    }
    const answers = await Promise.all(flood)
    const limited = answers.filter((a) => a.status === 429)
    // At most its share (4) was let through to open sockets; every other got 429 at once.
    expect(limited.length).toBeGreaterThanOrEqual(26)
    for (const answer of limited) expect(answer).toEqual({ status: 429, code: ErrorCodes.TOO_MANY_REQUESTS, retryAfter: '1' })
    expect(answers.filter((a) => a.status !== 429).every((a) => a.status === 502)).toBe(true)
  }, 20_000)

  it('many payer addresses under one account, from many IPs, are held to the account\'s share too', async () => {
    const from = ['127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7', '127.0.0.8']
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) => attack(`${server.url}/paid`, from[i % from.length]!, `${silentAddresses[0]}.y${i}`)),
    )
    expect(answers.filter((a) => a.status === 429).length).toBeGreaterThanOrEqual(6)
  }, 20_000)

  it('the server-wide limit says what it is: 503 COGPAY_SERVER_BUSY with Retry-After', async () => {
    // Eight IPs, two requests each, all to never-answering payers: past maxOpening (8), the rest get 503.
    const answers = await Promise.all(
      Array.from({ length: 16 }, (_, i) => attack(`${server.url}/paid`, `127.0.1.${1 + (i % 8)}`, `${silentAddresses[i % 3]}.z${i}`)),
    )
    const busy = answers.filter((a) => a.status === 503)
    expect(busy.length).toBeGreaterThan(0)
    for (const answer of busy) expect(answer).toEqual({ status: 503, code: ErrorCodes.SERVER_BUSY, retryAfter: '1' })
  }, 20_000)
})
