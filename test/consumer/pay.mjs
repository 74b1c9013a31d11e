// A consumer of the installed tarballs, in plain JavaScript: no workspace, no tsx, no patches.
// Starts the embedded network, pays an Express paidRoute, a Koa paidRoute and a meteredRoute,
// and checks the exact amounts on both sides; then runs the installed `cogpay` bin against a
// paid route. Exits non-zero, with a message, on the first thing that is not as expected.
import { execFile } from 'node:child_process'
import { strict as assert } from 'node:assert'
import { once } from 'node:events'
import { createServer } from 'node:http'
import { promisify } from 'node:util'
import express from 'express'
import Koa from 'koa'
import * as cogpayExpress from '@cogpay/express'
import * as cogpayKoa from '@cogpay/koa'
import { createPaymentServer } from '@cogpay/ilp'
import { createPayFetch, getPayment } from '@cogpay/fetch'
import { startTestnet } from '@cogpay/testnet'

const listen = async (listener) => {
  const server = createServer(listener)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { server, url: `http://127.0.0.1:${server.address().port}` }
}

/** The server counts a metered stream once it has closed it: wait for that, at most 2 s. */
const settled = async (read, expected) => {
  for (let i = 0; i < 200 && read() !== expected; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  return read()
}

const net = await startTestnet()
const receiver = createPaymentServer({ uplink: net.uri('server') })

const app = express()
app.get('/weather', cogpayExpress.paidRoute(100n, { receiver }), (_req, res) => {
  res.json({ paid: res.locals.payment.paid.toString() })
})
app.get('/steps/:n', cogpayExpress.meteredRoute({ receiver }), async (req, res) => {
  const meter = res.locals.meter
  for (let step = 0; step < Number(req.params.n); step++) await meter.charge(7n)
  res.json({ charged: meter.charged.toString(), paid: meter.paid.toString() })
})
const koa = new Koa()
const koaWeather = cogpayKoa.paidRoute(40n, { receiver })
koa.use((ctx, next) =>
  ctx.path === '/weather' ? koaWeather(ctx, async () => void (ctx.body = { paid: ctx.state.payment.paid.toString() })) : next(),
)

const expressServer = await listen(app)
const koaServer = await listen(koa.callback())
const payFetch = createPayFetch({ uplink: net.uri('client'), maxSpend: 1000n })
try {
  const paid = async (url, price) => {
    const response = await payFetch(url)
    assert.equal(response.status, 200, `${url}: status ${response.status}`)
    const body = await response.json()
    assert.equal(getPayment(response)?.spent, price, `${url}: client spent ${getPayment(response)?.spent}`)
    return body
  }
  let before = receiver.received
  assert.deepEqual(await paid(`${expressServer.url}/weather`, 100n), { paid: '100' })
  assert.equal(receiver.received - before, 100n, 'express: the server received the price')
  before = receiver.received
  assert.deepEqual(await paid(`${koaServer.url}/weather`, 40n), { paid: '40' })
  assert.equal(receiver.received - before, 40n, 'koa: the server received the price')
  before = receiver.received
  assert.deepEqual(await paid(`${expressServer.url}/steps/5`, 35n), { charged: '35', paid: '35' })
  const start = before
  assert.equal(await settled(() => receiver.received - start, 35n), 35n, 'metered: the server received 5 steps of 7')

  // The installed bin, as a user runs it.
  before = receiver.received
  const { stdout, stderr } = await promisify(execFile)(
    'node_modules/.bin/cogpay',
    ['fetch', `${expressServer.url}/weather`, '--max', '150', '--uplink', net.uri('cli')],
    { timeout: 20_000 },
  )
  assert.deepEqual(JSON.parse(stdout), { paid: '100' })
  assert.match(stderr, /spent 100 of max 150/)
  assert.equal(receiver.received - before, 100n, 'cogpay fetch: the server received the price')

  // A one-shot script on the process-wide payer exits by itself once it closed it.
  before = receiver.received
  const oneshot = await promisify(execFile)('node', ['oneshot.mjs', `${expressServer.url}/weather`], {
    timeout: 15_000,
    env: { ...process.env, COGPAY_UPLINK: net.uri('oneshot') },
  })
  assert.equal(oneshot.stdout.trim(), 'oneshot: 200 {"paid":"100"} spent 100')
  assert.equal(receiver.received - before, 100n, 'oneshot: the server received the price')
  console.log(`consumer: paid express 100, koa 40, metered 35, cogpay fetch 100, oneshot 100; server received ${receiver.received}`)
} finally {
  await payFetch.payer.close()
  await receiver.close()
  expressServer.server.close()
  koaServer.server.close()
  await net.close()
}
