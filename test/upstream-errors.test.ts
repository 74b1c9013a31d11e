import { createServer as createTcpServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import express, { type NextFunction, type Request, type Response } from 'express'
import Koa from 'koa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CogpayError, ErrorCodes, Headers, SCHEME } from '@cogpay/core'
import { paidRoute as expressPaidRoute } from '@cogpay/express'
import { paidRoute as koaPaidRoute } from '@cogpay/koa'
import { createPayer, createPaymentServer, type PaymentServer } from '@cogpay/ilp'
import { createPayFetch } from '@cogpay/fetch'
import { listen, startNetwork, type Network } from './support/network.ts'

/** Valid payment headers naming a payer address that nobody holds on the hub. */
function headersFor(address: string): Record<string, string> {
  return {
    [Headers.scheme]: SCHEME,
    [Headers.address]: address,
    [Headers.secret]: Buffer.alloc(32, 7).toString('base64url'),
    [Headers.requestId]: 'upstream-error-test-0001',
  }
}

/** Starts the same paid route on Express and Koa, each with an error handler that records what it got. */
async function startApps(receiver: PaymentServer) {
  const seen: unknown[] = []
  const app = express()
  app.get('/paid', expressPaidRoute(100n, { receiver }), (_req, res) => {
    res.send('unreachable')
  })
  app.use((err: CogpayError, _req: Request, res: Response, _next: NextFunction) => {
    seen.push(err)
    res.status(err.status).set(err.headers).json(err.toJSON())
  })
  const koa = new Koa()
  koa.on('error', (err) => seen.push(err))
  koa.use(koaPaidRoute(100n, { receiver }))
  koa.use((ctx) => {
    ctx.body = 'unreachable'
  })
  const servers = [await listen(app), await listen(koa.callback())]
  return { seen, servers, close: () => Promise.all(servers.map((s) => s.close())) }
}

/** A port that accepts nothing: bind one, note it, close it. */
async function closedPort(): Promise<number> {
  const probe = createTcpServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as AddressInfo
  await new Promise((resolve) => probe.close(resolve))
  return port
}

describe('ILP-side failures answer 502/503 through the framework error path', () => {
  let net: Network
  beforeAll(async () => {
    net = await startNetwork({ connectTimeoutMs: 1500 })
  })
  afterAll(async () => {
    await net.close()
  })

  it('a payer address nobody holds: 502 COGPAY_PAYER_UNREACHABLE, and the socket is not kept', async () => {
    const apps = await startApps(net.receiver)
    try {
      for (const [index, { url }] of apps.servers.entries()) {
        const response = await fetch(`${url}/paid`, { headers: headersFor(`${net.testnet.childPrefix}.nobody${index}`) })
        expect(response.status).toBe(502)
        expect(response.headers.get('cogpay-error')).toBe(ErrorCodes.PAYER_UNREACHABLE)
        expect(await response.text()).not.toContain('unreachable"') // the handler never ran
      }
      // Both frameworks handed the error to the app's error handling, as a CogpayError.
      expect(apps.seen).toHaveLength(2)
      for (const err of apps.seen) {
        expect(err).toBeInstanceOf(CogpayError)
        expect((err as CogpayError).code).toBe(ErrorCodes.PAYER_UNREACHABLE)
      }
      expect(net.receiver.socketCount).toBe(0)
      expect(net.receiver.uplink.channelCount).toBe(0)
    } finally {
      await apps.close()
    }
  })

  it("the server's own uplink is down: 503 COGPAY_UPLINK_UNAVAILABLE after connectTimeoutMs, not a hang", async () => {
    const port = await closedPort()
    const receiver = createPaymentServer({ uplink: `btp+ws://down:secret@127.0.0.1:${port}`, connectTimeoutMs: 500 })
    const apps = await startApps(receiver)
    try {
      for (const { url } of apps.servers) {
        const response = await fetch(`${url}/paid`, { headers: headersFor(`${net.testnet.childPrefix}.someone`) })
        expect(response.status).toBe(503)
        expect(response.headers.get('cogpay-error')).toBe(ErrorCodes.UPLINK_UNAVAILABLE)
        // Without payment headers the price cannot be quoted in an unknown asset either: 503, not 402.
        const bare = await fetch(`${url}/paid`)
        expect(bare.status).toBe(503)
      }
    } finally {
      await apps.close()
      await receiver.close().catch(() => {})
    }
  })

  it("the client's uplink is down: payFetch rejects with COGPAY_UPLINK_UNAVAILABLE instead of hanging", async () => {
    const payer = createPayer({ uplink: `btp+ws://down:secret@127.0.0.1:${await closedPort()}`, connectTimeoutMs: 500 })
    try {
      const payFetch = createPayFetch({ payer, maxSpend: 100n })
      const error = await payFetch('http://127.0.0.1:9/never-reached').catch((err: unknown) => err)
      expect(error).toBeInstanceOf(CogpayError)
      expect((error as CogpayError).code).toBe(ErrorCodes.UPLINK_UNAVAILABLE)
      expect(payer.spent).toBe(0n)
    } finally {
      await payer.close()
    }
  })
})
