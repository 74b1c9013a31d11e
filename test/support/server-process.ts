// A paid Express server in its own process, so that a test can measure its memory alone.
// Usage: server-process.ts <uplink> <options JSON>. Prints `{ url }` once it listens.
// GET /paid costs 10; GET /stats (free; ?gc=1 collects first, with --expose-gc) answers its heap,
// RSS and payment counters.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import express from 'express'
import { paidRoute } from '@cogpay/express'
import { createPaymentServer, type PaymentServerOptions } from '@cogpay/ilp'

const [uplink, json] = process.argv.slice(2)
const receiver = createPaymentServer({ uplink: uplink!, ...(JSON.parse(json ?? '{}') as PaymentServerOptions) })
const app = express()
app.get('/paid', paidRoute(10n, { receiver }), (_req, res) => void res.send('ok'))
app.get('/stats', (req, res) => {
  // ?gc=1: collect first, so heapUsed is what is live, not garbage waiting for the collector.
  if (req.query.gc) globalThis.gc?.()
  const { heapUsed, rss } = process.memoryUsage()
  res.json({ heapUsed, rss, sockets: receiver.socketCount, collected: receiver.paymentsCollected, received: receiver.received.toString() })
})
const server = createServer(app)
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
await receiver.uplink.connect()
process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })}\n`)
